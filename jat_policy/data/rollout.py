"""Playing episodes: one episode -> one dataset row, and the worker-process side of the collector.

This module imports numpy, gymnasium (through the wrappers) and the expert adapters, never
``datasets``: the collector's worker processes import only this, so they start fast.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import field
from typing import Any

import numpy as np

from jat_policy.data.columns import ACTION_COLUMNS, OBSERVATION_COLUMNS, REWARD_COLUMN
from jat_policy.data.experts import ExpertFailure, silenced_stdout
from jat_policy.wrappers.common import update_success


@dataclasses.dataclass
class EpisodeResult:
    """One played episode (``row`` is ``None`` when the expert failed)."""

    index: int
    seed: int
    row: dict[str, Any] | None
    episode_return: float = 0.0
    length: int = 0
    success: bool | None = None
    failure: str | None = None
    seconds: float = 0.0


class _Recorder:
    """Accumulates one episode's steps in the dataset's column format."""

    def __init__(self, env: Any):
        from gymnasium import spaces

        self.keys = [key for key in OBSERVATION_COLUMNS if key in env.observation_space.spaces]
        self.discrete = isinstance(env.action_space, spaces.Discrete)
        self.low, self.high = (None, None) if self.discrete else (env.action_space.low, env.action_space.high)
        self.steps: dict[str, list] = {OBSERVATION_COLUMNS[key]: [] for key in self.keys}
        self.actions: list = []
        self.rewards: list[float] = []

    def observe(self, obs: dict[str, Any]) -> None:
        from jat_policy.data.images import encode_frame

        for key in self.keys:
            value = obs[key]
            if key == "continuous_observation":
                value = np.asarray(value, dtype=np.float32)[:-1]  # raw obs: drop the appended reward
            elif key == "discrete_observation":
                value = np.asarray(value, dtype=np.int64).reshape(-1)
            elif key == "text_observation":
                from jat_policy.wrappers import decode_text

                value = decode_text(value)
            else:
                value = encode_frame(value)  # one RGBA PNG per step, as on the Hub
            self.steps[OBSERVATION_COLUMNS[key]].append(value)

    def act(self, action: Any) -> Any:
        """Records the action as executed (continuous ones clipped to the space) and returns it."""
        if self.discrete:
            action = int(np.asarray(action).reshape(()))
        else:
            action = np.clip(np.asarray(action, dtype=np.float32).reshape(self.low.shape), self.low, self.high)
        self.actions.append(action)
        return action

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for column, values in self.steps.items():
            row[column] = np.stack(values) if column.startswith(("continuous", "discrete")) else values
        action_column = ACTION_COLUMNS["discrete" if self.discrete else "continuous"]
        row[action_column] = np.asarray(self.actions, dtype=np.int64 if self.discrete else np.float32)
        row[REWARD_COLUMN] = np.asarray(self.rewards, dtype=np.float32)
        return row


def run_episode(
    env: Any, expert: Callable[[dict[str, Any]], Any], seed: int, max_steps: int | None = None, index: int = 0
) -> EpisodeResult:
    """Plays one episode and returns it as a dataset row (or the expert's failure).

    Args:
        env: A wrapped env (step-dict observations).
        expert: ``expert(obs) -> action``, with an optional ``reset(env, seed)`` hook.
        seed: Passed to ``env.reset`` and to the expert's hook.
        max_steps: Truncate the episode after this many steps (``None``: the env's own limit).
        index: Episode index (recorded in the result).

    Returns:
        The episode (``row`` in the dataset's column format) or the failure reason.
    """
    start = time.perf_counter()
    recorder = _Recorder(env)
    obs, info = env.reset(seed=seed)
    success: bool | None = None
    try:
        if hasattr(expert, "reset"):
            expert.reset(env, seed)
        while True:
            recorder.observe(obs)
            action = recorder.act(expert(obs))
            obs, reward, terminated, truncated, info = env.step(action)
            recorder.rewards.append(float(reward))
            success = update_success(success, info)
            if terminated or truncated or (max_steps is not None and len(recorder.rewards) >= max_steps):
                break
    except ExpertFailure as failure:
        return EpisodeResult(index, seed, None, failure=str(failure), seconds=time.perf_counter() - start)
    rewards = recorder.rewards
    return EpisodeResult(
        index, seed, recorder.row(), float(np.sum(rewards, dtype=np.float64)), len(rewards), success,
        seconds=time.perf_counter() - start,
    )  # fmt: skip


@dataclasses.dataclass
class EnvSource:
    """How to (re)build the env in a worker: a task name / Gymnasium id, or a picklable factory."""

    task: str | None = None
    factory: Callable[[], Any] | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """Builds the wrapped env (step-dict observations)."""
        from jat_policy.wrappers import make_env, wrap_env

        if self.factory is not None:
            return wrap_env(self.factory())
        _import_env_package(self.task or "")
        return make_env(self.task, **self.env_kwargs)


def _import_env_package(env_id: str) -> None:
    """Registers ids of optional packages, so ``make_env("ALE/Pong-v5")`` finds them."""
    import gymnasium as gym

    if env_id.startswith("ALE/"):
        import ale_py

        gym.register_envs(ale_py)
    elif env_id.startswith(("BabyAI-", "MiniGrid-")):
        import minigrid  # noqa: F401
    elif env_id.startswith("Meta-World/"):
        import metaworld  # noqa: F401


_WORKER: dict[str, Any] = {}


def init_worker(source: EnvSource, experts: dict[str, Any], max_steps: int | None, quiet: bool) -> None:
    """Pool initializer: only stores its arguments (a failing initializer would make the pool respawn forever)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker
    _WORKER.update(source=source, experts=experts, max_steps=max_steps, quiet=quiet)


def play_chunk(key: str, jobs: list[tuple[int, int]]) -> list[EpisodeResult]:
    """Plays ``(index, seed)`` jobs in a worker; the env is built on first use, so a failing build is reported."""
    if "env" not in _WORKER:
        _WORKER["env"] = _WORKER["source"].build()
    env, expert = _WORKER["env"], _WORKER["experts"][key]
    return [play(env, expert, index, seed, _WORKER["max_steps"], _WORKER["quiet"]) for index, seed in jobs]


def play(env: Any, expert: Any, index: int, seed: int, max_steps: int | None, quiet: bool) -> EpisodeResult:
    """:func:`run_episode`, with stdout silenced when ``quiet``."""
    if not quiet:
        return run_episode(env, expert, seed, max_steps, index)
    with silenced_stdout():
        return run_episode(env, expert, seed, max_steps, index)
