"""Rollouts: any SB3-style ``predict`` over a vectorised env, episode seeds fixed, results in episode order.

:func:`evaluate` is the whole job: it rolls a policy out on tasks and returns raw scores (the undiscounted sum
of the env's rewards; Atari: whole games, unclipped), normalised scores and per-domain aggregates, with the
provenance of every number (env ids and versions, seeds, model config, machine).
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from jat_policy.evaluation.results import (
    EvaluationResult,
    TaskResult,
    aggregate_results,
    jsonable,
    machine,
    package_versions,
)
from jat_policy.evaluation.scores import NormalizedScores, get_reference_scores, lookup_task
from jat_policy.evaluation.video import RecordEpisodeVideo
from jat_policy.tasks import RL_DOMAINS, resolve_tasks
from jat_policy.wrappers.common import vector_step_success

__all__ = [
    "EnvFn",
    "PolicyFactory",
    "Predictor",
    "RandomPolicy",
    "evaluate",
    "expand_tasks",
    "jat_policy_factory",
    "random_policy_factory",
]


# --------------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------------
@runtime_checkable
class Predictor(Protocol):
    """Anything with stable-baselines3's ``predict`` contract (``JatPolicy``, SB3 models, ...)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Returns a batch of actions and the next recurrent state."""
        ...


PolicyFactory = Callable[[str, gym.Env], Predictor]
"""``policy_for(task_name, env) -> predictor``: one JAT model serves tasks with different spaces."""

EnvFn = Callable[[str], gym.Env]
"""``env_fn(task_name) -> gym.Env``: builds one (unbatched) environment for a task."""


class RandomPolicy:
    """A uniform random policy with the SB3 ``predict`` contract (random baselines, tests).

    Args:
        action_space: The (unbatched) action space to sample from.
        seed: Seed of the action space's generator.

    Example:
        >>> import gymnasium as gym
        >>> policy = RandomPolicy(gym.spaces.Discrete(3), seed=0)
        >>> actions, state = policy.predict({"x": [0, 0]}, episode_start=np.ones(2, dtype=bool))
        >>> actions.shape
        (2,)
    """

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        if not isinstance(action_space, gym.Space):
            raise TypeError(f"RandomPolicy needs a gymnasium action space, got {type(action_space).__name__}.")
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Samples one action per env; the batch size is ``len(episode_start)`` (1 unbatched action if None)."""
        if episode_start is None:
            return np.asarray(self.action_space.sample()), state
        return np.stack([self.action_space.sample() for _ in range(len(episode_start))]), state


def random_policy_factory(seed: int | None = 0) -> PolicyFactory:
    """Returns ``policy_for(task, env)`` building a :class:`RandomPolicy` for each task's action space."""

    def build(task: str, env: gym.Env) -> Predictor:
        return RandomPolicy(env.action_space, seed=seed)

    return build


class _JatPolicyFactory:
    """``policy_for(task, env)`` building a ``JatPolicy``; carries the checkpoint's training references."""

    def __init__(self, model_dir: str | os.PathLike, policy_kwargs: dict[str, Any]) -> None:
        from jat_policy.training_data import read_training_references

        self.model_dir = model_dir
        self.policy_kwargs = policy_kwargs
        # {task: ScoreReference} of the datasets the checkpoint was trained on (its training_data.json)
        self.reference_scores = read_training_references(model_dir) if os.path.isdir(model_dir) else {}

    def __call__(self, task: str, env: gym.Env) -> Predictor:
        try:
            from jat_policy.policy import JatPolicy
        except ImportError as err:  # pragma: no cover - depends on what is installed
            raise ImportError(
                f"Evaluating the checkpoint {str(self.model_dir)!r} needs jat_policy.policy.JatPolicy, which failed "
                f"to import ({err}). Use --model random for a uniform random policy."
            ) from err
        return JatPolicy.from_pretrained(self.model_dir, env.observation_space, env.action_space, **self.policy_kwargs)


def jat_policy_factory(
    model_dir: str | os.PathLike, precision: str | None = None, **policy_kwargs: Any
) -> PolicyFactory:
    """Returns ``policy_for(task, env)`` that builds a ``JatPolicy`` for each task's spaces.

    The checkpoint is loaded lazily (``jat_policy.policy`` imports torch), once per task, with
    ``JatPolicy.from_pretrained(model_dir, observation_space, action_space, **policy_kwargs)``. The factory's
    ``reference_scores`` are those of the datasets the checkpoint was trained on (``training_data.json``), which
    :func:`evaluate` normalises with by default.

    Args:
        model_dir: A checkpoint directory (``save_pretrained``) or Hub id.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``, applied to the fp32 checkpoint at load (default: fp32 on
            the CPU, bf16 on CUDA).
        **policy_kwargs: Forwarded to ``JatPolicy.from_pretrained`` (e.g. a context window).

    Returns:
        The policy factory to pass to :func:`evaluate`.
    """
    return _JatPolicyFactory(model_dir, {"precision": precision, **policy_kwargs})


# --------------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------------
class _WholeGames(gym.Wrapper):
    """Turns Atari life losses back into ordinary steps, so an episode is a whole game.

    An episodic-life wrapper reports ``terminated`` on each life lost; like the reference's
    ``eval_jat.py`` we then call ``reset`` (which only takes a no-op step and keeps the game going)
    and carry on *without* telling the policy a new episode started. Other envs pass through.
    """

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        ale = getattr(self.env.unwrapped, "ale", None)
        if terminated and not truncated and ale is not None and not ale.game_over():
            obs, info = self.env.reset()
        return obs, reward, terminated and (ale is None or ale.game_over()), truncated, info


@dataclass
class _Episodes:
    """Outcome of a rollout, indexed by episode number."""

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray | None


def _default_env_fn(env_kwargs: Mapping[str, Any]) -> EnvFn:
    """``make_env(task, text_as_bytes=True, **env_kwargs)``.

    Text missions become fixed-size UTF-8 byte arrays, which batch into plain arrays like every other
    key (and are what a checkpoint evaluated through SB3 VecEnvs sees too). ``make_env``'s Atari defaults
    (``episodic_life=False``, ``clip_reward=False``) already give whole games with raw rewards.
    """

    def make(task: str) -> gym.Env:
        from jat_policy.wrappers import make_env

        return make_env(task, **{"text_as_bytes": True, **env_kwargs})

    return make


@dataclass
class _Video:
    """Where to record episode 0 of each task, and how to build the env that renders it."""

    folder: Path
    env_fn: EnvFn


def _make_vector_env(
    task: str, env_fn: EnvFn, n_envs: int, max_episode_steps: int | None, video: _Video | None = None
) -> gym.vector.SyncVectorEnv:
    def one(record: bool) -> gym.Env:
        env = (video.env_fn if record else env_fn)(task)
        if max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        env = _WholeGames(env)
        # Outside _WholeGames: its reset after an Atari life loss is not the end of the recorded episode.
        return RecordEpisodeVideo(env, video.folder, name_prefix=task) if record else env

    # Env 0 starts episode 0 (see _rollout), so only it renders, and only its first episode is recorded.
    # Resets are ours to do (DISABLED): each episode gets its own seed, and no step is wasted on
    # NEXT_STEP's "reset step" whose action is ignored.
    makers = [partial(one, video is not None and i == 0) for i in range(n_envs)]
    return gym.vector.SyncVectorEnv(makers, autoreset_mode=gym.vector.AutoresetMode.DISABLED)


_SUCCESS_BY_DOMAIN = {
    "babyai": "mission completed: the episode terminated with a positive reward (minigrid rewards nothing else)",
    "metaworld": "info['success'] at any step (Meta-World's own criterion, e.g. reach: within 5 cm of the goal)",
}


def _success(episodes: _Episodes, domain: str, spec: gym.envs.registration.EnvSpec | None) -> tuple[Any, str]:
    """Per-episode success flags (or None) and their definition, the same for every domain.

    The env's own success signal when it gives one; otherwise the return reaching the env spec's
    ``reward_threshold`` (Gymnasium's "solved" bar: InvertedPendulum 950, CartPole 475); otherwise none (Atari).
    """
    if episodes.successes is not None:
        return episodes.successes, _SUCCESS_BY_DOMAIN.get(domain, "info['success'] (or 'is_success') at any step")
    threshold = None if spec is None else spec.reward_threshold
    if threshold is not None:
        return episodes.returns >= threshold, f"return >= {threshold:g} (reward_threshold of {spec.id})"
    return None, "none: the env reports no success and its spec has no reward_threshold"


def _rollout(
    vec: gym.vector.SyncVectorEnv,
    predictor: Predictor,
    n_episodes: int,
    seed: int,
    deterministic: bool,
    on_episode: Callable[[float], None],
) -> _Episodes:
    """Runs exactly ``n_episodes`` episodes; episode ``k`` always starts from ``reset(seed=seed + k)``.

    Env ``i`` starts episode ``i``; whenever an env finishes, it takes the next unstarted episode
    number. Results are stored by episode number, so which env ran an episode (and so ``n_envs``)
    does not change the env side of any episode; only a stochastic policy's sampling order can.
    Envs with no episode left keep stepping (their results are dropped) until all are done.
    """
    n_envs = vec.num_envs
    episode_of = np.arange(n_envs)  # episode number each env is running; >= n_episodes: idle
    next_episode = n_envs
    returns, lengths = np.zeros(n_episodes), np.zeros(n_episodes, dtype=np.int64)
    successes: np.ndarray | None = None
    ep_return, ep_length = np.zeros(n_envs), np.zeros(n_envs, dtype=np.int64)
    ep_success = np.zeros(n_envs, dtype=bool)
    obs, _ = vec.reset(seed=[seed + int(k) for k in episode_of])
    episode_start, state, n_done = np.ones(n_envs, dtype=bool), None, 0
    while n_done < n_episodes:
        actions, state = predictor.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        ep_return += rewards
        ep_length += 1
        flags = vector_step_success(infos, n_envs)
        if flags is not None:
            ep_success |= flags
            successes = np.zeros(n_episodes, dtype=bool) if successes is None else successes
        done = terminated | truncated
        for i in np.flatnonzero(done):
            k = episode_of[i]
            if k < n_episodes:
                returns[k], lengths[k] = ep_return[i], ep_length[i]
                if successes is not None:
                    successes[k] = ep_success[i]
                n_done += 1
                on_episode(float(ep_return[i]))
            episode_of[i], next_episode = next_episode, next_episode + 1
        if done.any():
            seeds = [seed + int(k) if d and k < n_episodes else None for k, d in zip(episode_of, done, strict=True)]
            obs, _ = vec.reset(seed=seeds, options={"reset_mask": done})
            ep_return[done], ep_length[done], ep_success[done] = 0.0, 0, False
        episode_start = done
    return _Episodes(returns, lengths, successes)


# --------------------------------------------------------------------------------------------------
# evaluate()
# --------------------------------------------------------------------------------------------------
def expand_tasks(tasks: str | Sequence[str]) -> list[str]:
    """:func:`jat_policy.tasks.resolve_tasks` that passes unregistered names (Gymnasium ids) and refuses none."""
    out = resolve_tasks(tasks, allow_unknown=True)
    if not out:
        raise ValueError(f"No tasks to evaluate in {tasks!r}; give task names such as 'atari-pong,mujoco-pendulum'.")
    return out


def _domain_of(task: str, spec: Any | None) -> str:
    if spec is not None and getattr(spec, "domain", None):
        return str(spec.domain)
    prefix = task.split("-", 1)[0]
    return prefix if prefix in RL_DOMAINS else "user"


def _resolve_predictor(policy: Predictor | PolicyFactory, task: str, env: gym.Env) -> Predictor:
    if hasattr(policy, "predict"):
        return policy  # type: ignore[return-value]
    if callable(policy):
        predictor = policy(task, env)
        if not hasattr(predictor, "predict"):
            raise TypeError(
                f"policy_for({task!r}, env) returned {type(predictor).__name__}, which has no predict(); it must "
                "return an object with SB3's predict(obs, state, episode_start, deterministic)."
            )
        return predictor
    raise TypeError(
        f"policy must have SB3's predict() (e.g. JatPolicy) or be policy_for(task, env) -> predictor, "
        f"got {type(policy).__name__}."
    )


def _model_config(predictor: Any) -> dict[str, Any] | None:
    config = getattr(getattr(predictor, "model", None), "config", None)
    if config is None:
        return None
    data = config.to_dict() if hasattr(config, "to_dict") else config
    return {"policy_class": type(predictor).__name__, "config": jsonable(data)}


def _evaluate_task(
    task: str,
    policy: Predictor | PolicyFactory,
    env_fn: EnvFn,
    options: _Options,
    model_info: dict[str, Any],
) -> TaskResult:
    from jat_policy.utils.progress import progress_bar

    started = time.perf_counter()
    spec = lookup_task(task)
    vec = _make_vector_env(task, env_fn, options.n_envs, options.max_episode_steps, options.video)
    try:
        predictor = _resolve_predictor(policy, task, vec.envs[0])
        config = _model_config(predictor)
        if config is not None and "config" not in model_info:
            model_info.update(config)
        with progress_bar(options.n_episodes, f"evaluate {task}", "ep", enabled=options.progress) as bar:

            def tick(episode_return: float) -> None:
                bar.update(1)
                bar.set_postfix(last_return=f"{episode_return:.4g}")

            episodes = _rollout(vec, predictor, options.n_episodes, options.seed, options.deterministic, tick)
        built = vec.envs[0].spec
    finally:
        vec.close()  # writes the video of an episode still running (RecordVideo.close)
    saved = getattr(vec.envs[0], "saved", None)
    ref = get_reference_scores(task, options.reference_scores, options.dataset_path, options.training_scores)
    domain = _domain_of(task, spec)
    successes, success_definition = _success(episodes, domain, built)
    return TaskResult(
        task=task,
        domain=domain,
        env_id=getattr(spec, "env_id", None),
        env_spec_id=None if built is None else built.id,
        max_episode_steps=None if built is None else built.max_episode_steps,
        seeds=[options.seed + k for k in range(options.n_episodes)],
        returns=episodes.returns,
        lengths=episodes.lengths,
        successes=successes,
        success_definition=success_definition,
        reference=ref,
        expert_normalized=NormalizedScores.compute(episodes.returns, ref, "expert"),
        human_normalized=NormalizedScores.compute(episodes.returns, ref, "human"),
        paper_jat_score=getattr(spec, "paper_jat_score", None),
        paper_jat_normalized=getattr(spec, "paper_jat_normalized", None),
        wall_time_s=time.perf_counter() - started,
        video=str(saved[0]) if saved else None,
    )


@dataclass
class _Options:
    n_episodes: int
    n_envs: int
    seed: int
    deterministic: bool
    max_episode_steps: int | None
    reference_scores: Mapping[str, Any] | None
    dataset_path: Any
    progress: bool
    training_scores: Mapping[str, Any] | None = None
    video: _Video | None = None


def evaluate(
    policy: Predictor | PolicyFactory,
    tasks: str | Sequence[str],
    n_episodes: int = 2,
    n_envs: int = 1,
    seed: int = 0,
    *,
    deterministic: bool = False,
    reference_scores: Mapping[str, Any] | None = None,
    dataset_path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    env_fn: EnvFn | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
    bootstrap_reps: int = 2000,
    confidence: float = 0.95,
    progress: bool = True,
    model_info: Mapping[str, Any] | None = None,
    checkpoint_references: bool = True,
    video_dir: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Rolls out a policy on tasks and reports raw scores, normalised scores and per-domain aggregates.

    Each task runs ``n_envs`` copies of its env in a ``gymnasium.vector.SyncVectorEnv`` and calls
    ``predict(obs, state, episode_start, deterministic)`` on the whole batch each step, until exactly
    ``n_episodes`` episodes are complete. Episode ``k`` starts from ``reset(seed=seed + k)`` whichever
    env runs it, and results are kept in episode order, so a deterministic policy gets the same scores
    for any ``n_envs``.

    Args:
        policy: An object with SB3's ``predict`` (used for every task) or ``policy_for(task, env) ->
            predictor`` called once per task with one of its envs (for spaces), e.g.
            :func:`jat_policy_factory` or :func:`random_policy_factory`.
        tasks: Task names (list or ``"a,b"``); ``atari|babyai|metaworld|mujoco|all`` expand via the registry.
        n_episodes: Episodes per task (the reference's default is 2).
        n_envs: Parallel envs per task.
        seed: Base seed: episode ``k`` is reset with ``seed + k``; also seeds the bootstrap.
        deterministic: Passed to ``predict`` (the paper samples discrete actions: False).
        reference_scores: ``{task: (random, expert[, human])}`` overriding every other source.
        dataset_path: A collected dataset folder (or ``{task: path}``) whose ``jat_metadata.json`` scores normalise
            every task it holds, registered or not; they take precedence over the checkpoint's and the registry's.
        env_fn: ``env_fn(task) -> gym.Env``; default ``jat_policy.wrappers.make_env(task, text_as_bytes=True,
            **env_kwargs)``, which also builds any Gymnasium id (``"CartPole-v1"``).
        env_kwargs: Keyword arguments of the default ``make_env``.
        max_episode_steps: Optional extra time limit per episode (a guard for envs without one).
        bootstrap_reps: Bootstrap replications for the CIs.
        confidence: CI coverage.
        progress: Show progress per task: a tqdm bar on a terminal, a plain line every 30 s otherwise.
        model_info: Extra provenance about the model (e.g. its path), stored under ``provenance.model``.
        checkpoint_references: Normalise with the reference scores of the datasets the checkpoint was trained on
            (a :func:`jat_policy_factory`'s ``reference_scores``, from its ``training_data.json``) where neither
            ``reference_scores`` nor ``dataset_path`` gives one; False: the registry's.
        video_dir: Record the first episode of each task as ``<video_dir>/<task>-episode-0.mp4`` (Gymnasium's
            ``RecordVideo``, ``rgb_array`` frames, needs ``jat-policy[video]``); ``TaskResult.video`` holds the
            path. With the default ``env_fn`` the recording env is made with ``render_mode="rgb_array"``; a
            custom ``env_fn`` must build it so itself.

    Reference scores, first source that has the task: ``reference_scores`` > ``dataset_path`` > the
    checkpoint's training data > the registry. Each task's ``reference`` records which one, its env id and file.

    Returns:
        The :class:`EvaluationResult`; ``result.save_json(path)`` writes it, :func:`plot_results` plots it.
    """
    if n_episodes < 1 or n_envs < 1:
        raise ValueError(f"n_episodes and n_envs must be >= 1, got n_episodes={n_episodes}, n_envs={n_envs}.")
    names = expand_tasks(tasks)
    video = None
    if video_dir is not None:
        video = _Video(Path(video_dir), env_fn or _default_env_fn({**(env_kwargs or {}), "render_mode": "rgb_array"}))
    env_fn = env_fn if env_fn is not None else _default_env_fn(dict(env_kwargs or {}))
    training_scores = getattr(policy, "reference_scores", None) if checkpoint_references else None
    options = _Options(
        n_episodes, n_envs, seed, deterministic, max_episode_steps, reference_scores, dataset_path, progress,
        training_scores, video,
    )  # fmt: skip
    model: dict[str, Any] = dict(model_info or {})
    results = {task: _evaluate_task(task, policy, env_fn, options, model) for task in names}
    settings = {
        "n_episodes": n_episodes,
        "n_envs": n_envs,
        "seed": seed,
        "episode_seeds": "seed + episode index",
        "deterministic": deterministic,
        "max_episode_steps": max_episode_steps,
        "reference_priority": "reference_scores > dataset_path > checkpoint training data > registry",
        "checkpoint_references": checkpoint_references,
        "bootstrap_reps": bootstrap_reps,
        "confidence": confidence,
        "vector_env": "gymnasium.vector.SyncVectorEnv(autoreset_mode=DISABLED)",
        "video_dir": None if video_dir is None else str(video_dir),
    }
    provenance = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "packages": package_versions(),
        "machine": machine(),
        "model": jsonable(model) if model else None,
    }
    aggregates = aggregate_results(list(results.values()), bootstrap_reps, confidence, seed)
    return EvaluationResult(results, jsonable(aggregates), settings, provenance)
