"""``make_env(task)`` and the Gymnasium ids ``jat/<task>``.

Why no entry-point plugin: Gymnasium 1.x no longer loads the ``gymnasium.envs`` entry points of installed
packages (``gymnasium/envs/registration.py`` has no plugin loading any more), so ids cannot appear in the
registry without importing something. Two ways work:

- ``gym.make("jat_policy:jat/atari-pong")``: Gymnasium imports the module named before the colon, and
  ``import jat_policy`` registers every ``jat/<task>`` id (this also works in subprocesses of vector envs);
- ``import jat_policy`` once, then ``gym.make("jat/atari-pong")``.

Registering is cheap: it reads the task table (standard library) and imports gymnasium and numpy; no torch and
no optional domain (ale-py, minigrid, metaworld, mujoco) is imported until an env of that domain is built.
Keyword arguments of ``gym.make("jat/<task>", ...)`` go to :func:`make_env`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from jat_policy import tasks as _tasks
from jat_policy.wrappers.atari import make_atari
from jat_policy.wrappers.babyai import make_babyai
from jat_policy.wrappers.generic import wrap_env
from jat_policy.wrappers.metaworld import make_metaworld
from jat_policy.wrappers.mujoco import make_mujoco
from jat_policy.wrappers.rendering import ensure_offscreen_rendering

__all__ = ["GYM_NAMESPACE", "gym_id", "make_env", "register_envs"]

GYM_NAMESPACE = "jat"
_ENTRY_POINT = "jat_policy.wrappers.registration:make_env"
_DOMAIN_MAKERS = {"atari": make_atari, "babyai": make_babyai, "metaworld": make_metaworld, "mujoco": make_mujoco}


def gym_id(task: str) -> str:
    """The Gymnasium id of a task: ``"atari-pong"`` -> ``"jat/atari-pong"``."""
    return f"{GYM_NAMESPACE}/{task}"


def _make_user_task(name: str, render_mode: str | None, text_as_bytes: bool, kwargs: dict[str, Any]) -> gym.Env:
    factory, env_kwargs = _tasks.user_task_factory(name)
    env_kwargs.update(kwargs)
    if render_mode is not None:
        env_kwargs["render_mode"] = render_mode
    ensure_offscreen_rendering(render_mode)  # a user task may be a MuJoCo env
    env = gym.make(factory, **env_kwargs) if isinstance(factory, str) else factory(**env_kwargs)
    return wrap_env(env, text_as_bytes=text_as_bytes)


def make_env(task: str, *, text_as_bytes: bool = False, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Build a task's environment as a JAT step-dict env.

    Args:
        task: A task name (``"atari-pong"``, ``"babyai-go-to"``, ``"metaworld-reach"``, ``"mujoco-pendulum"``, a
            name given to :func:`jat_policy.tasks.register_task`), with or without the ``"jat/"`` prefix, or any
            registered Gymnasium id (``"CartPole-v1"``), which is built and passed to :func:`wrap_env`.
        text_as_bytes: BabyAI/text envs: mission as ``(256,)`` uint8 UTF-8 bytes instead of a ``Text`` space
            (what SB3's ``DummyVecEnv``/``SubprocVecEnv`` need); read it back with ``decode_text``.
        render_mode: Passed to the underlying env.
        **kwargs: Domain options: Atari ``episodic_life=False``, ``clip_reward=False``, ``noop_max=30``,
            ``fire_reset=True``; Meta-World ``max_episode_steps=100``; MuJoCo ``version=None`` (``"v5"``); and
            otherwise arguments of ``gymnasium.make``.

    Returns:
        A ``gymnasium.Env`` whose observation space is the step-dict ``gymnasium.spaces.Dict``.

    Raises:
        KeyError: For an unknown task (with close matches).
        ValueError: For a text task (those have no environment).
        ImportError: If the domain's optional dependency is missing (the message names the extra).

    Example:
        >>> from jat_policy import make_env
        >>> env = make_env("mujoco-pendulum")
        >>> obs, info = env.reset(seed=0)
        >>> obs["continuous_observation"].shape
        (5,)
    """
    name = task.removeprefix(f"{GYM_NAMESPACE}/")
    try:
        spec = _tasks.get_task(name)
    except KeyError:
        if name in gym.registry:
            ensure_offscreen_rendering(render_mode)  # any Gymnasium id may be a MuJoCo env
            return wrap_env(gym.make(name, render_mode=render_mode, **kwargs), text_as_bytes=text_as_bytes)
        raise
    if spec.domain == "text":
        raise ValueError(f"{name!r} is a text dataset task: it has no environment. RL tasks: list_tasks().")
    if spec.domain == "user":
        return _make_user_task(name, render_mode, text_as_bytes, kwargs)
    return _DOMAIN_MAKERS[spec.domain](spec.env_id, text_as_bytes=text_as_bytes, render_mode=render_mode, **kwargs)


def register_gym_id(task: str) -> None:
    """Register ``jat/<task>`` with Gymnasium (no-op if already there)."""
    env_id = gym_id(task)
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=_ENTRY_POINT, kwargs={"task": task})


def unregister_gym_id(task: str) -> None:
    """Remove ``jat/<task>`` from Gymnasium's registry (no-op if absent)."""
    gym.registry.pop(gym_id(task), None)


def infer_modality_and_actions(task: str) -> tuple[str, str]:
    """Build a task's env once and read what its step dict holds: ``(modality, action_type)``."""
    env = make_env(task)
    try:
        keys = set(env.observation_space.keys())
        action_type = "discrete" if isinstance(env.action_space, gym.spaces.Discrete) else "continuous"
    finally:
        env.close()
    for key, modality in (("image_observation", "image"), ("continuous_observation", "continuous")):
        if key in keys:
            return modality, action_type
    return "discrete", action_type


def register_envs() -> None:
    """Register ``jat/<task>`` for every task that has an environment (157 JAT tasks + user tasks)."""
    _tasks.set_env_backend(infer_modality_and_actions, register_gym_id, unregister_gym_id)
    for task in _tasks.list_tasks():
        register_gym_id(task)
