"""Evaluation: vectorised rollouts, raw and normalised scores, IQM with bootstrap CIs, plots, CLI.

The numbers follow the JAT paper (arXiv 2402.09844) and its ``eval_jat.py`` / ``utils.normalize``:

* the **raw score** of an episode is the undiscounted sum of the env's rewards; for Atari an episode
  is a whole game (life losses are not episode ends) and rewards are unclipped;
* the **expert-normalised score** is ``(score - random) / (expert - random)``, and the
  **human-normalised score** (Atari only) uses the human score instead of the expert's. Where the
  reference is not above random (``atari-bowling``: expert 20.4 < random 23.1; ``atari-venture``:
  0 = 0) the score is *undefined*: we report ``None`` and leave the task out of aggregates,
  where the reference code silently returned 1.0;
* per domain we report the mean and the interquartile mean (IQM) over an
  ``(n_episodes, n_tasks)`` matrix, with stratified-bootstrap confidence intervals from
  `rliable <https://github.com/google-research/rliable>`_ (episodes play the role of runs).

Every result carries its provenance (env ids and versions, seeds, model config, machine), and
:func:`plot_results` draws the paper's figures: per-task normalised bars per domain with the
paper's JAT score beside ours, and the per-domain IQM with its CI.

Example:
    >>> import gymnasium as gym
    >>> from jat_policy.evaluation import RandomPolicy, evaluate
    >>> result = evaluate(
    ...     lambda task, env: RandomPolicy(env.action_space, seed=0),
    ...     "cartpole", n_episodes=4, n_envs=2, seed=0, progress=False,
    ...     env_fn=lambda task: gym.make("CartPole-v1"), reference_scores={"cartpole": (22.0, 500.0)},
    ... )
    >>> len(result.tasks["cartpole"].returns)
    4
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

__all__ = [
    "AggregateScore",
    "EvaluateArgs",
    "EvaluationResult",
    "NormalizedScores",
    "Predictor",
    "RandomPolicy",
    "ScoreReference",
    "TaskResult",
    "aggregate_results",
    "aggregate_scores",
    "cli_main",
    "evaluate",
    "expand_tasks",
    "get_reference_scores",
    "jat_policy_factory",
    "normalize",
    "normalize_score",
    "plot_results",
    "random_policy_factory",
]

DOMAINS = ("atari", "babyai", "metaworld", "mujoco")
# Packages whose versions decide what a score means (env dynamics, ROMs, physics).
_VERSIONED_PACKAGES = (
    "jat-policy",
    "gymnasium",
    "ale-py",
    "minigrid",
    "metaworld",
    "mujoco",
    "numpy",
    "torch",
    "transformers",
    "stable-baselines3",
    "rliable",
)
_EVAL_EXTRA = 'pip install "jat-policy[eval]"'


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


def jat_policy_factory(model_dir: str | os.PathLike, **policy_kwargs: Any) -> PolicyFactory:
    """Returns ``policy_for(task, env)`` that builds a ``JatPolicy`` for each task's spaces.

    The checkpoint is loaded lazily (``jat_policy.policy`` imports torch), once per task, with
    ``JatPolicy.from_pretrained(model_dir, observation_space, action_space, **policy_kwargs)``.

    Args:
        model_dir: A checkpoint directory (``save_pretrained``) or Hub id.
        **policy_kwargs: Forwarded to ``JatPolicy.from_pretrained`` (e.g. a context window).

    Returns:
        The policy factory to pass to :func:`evaluate`.
    """

    def build(task: str, env: gym.Env) -> Predictor:
        try:
            from jat_policy.policy import JatPolicy
        except ImportError as err:  # pragma: no cover - depends on what is installed
            raise ImportError(
                f"Evaluating the checkpoint {str(model_dir)!r} needs jat_policy.policy.JatPolicy, which failed to "
                f"import ({err}). Use --model random for a uniform random policy."
            ) from err
        return JatPolicy.from_pretrained(model_dir, env.observation_space, env.action_space, **policy_kwargs)

    return build


# --------------------------------------------------------------------------------------------------
# Reference scores and normalisation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreReference:
    """Scores that normalise a task's raw returns.

    Attributes:
        random: Mean return of a uniform random policy.
        expert: Mean return of the expert that produced the dataset.
        human: Mean human score (Atari only), or None.
        source: Where the numbers come from: ``"registry"``, ``"dataset"`` or ``"user"``.
    """

    random: float
    expert: float
    human: float | None = None
    source: str = "user"


_REFERENCE_KEYS = tuple(f"{who}_{what}" for who in ("random", "expert", "human") for what in ("score", "mean"))


def _first_key(value: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if value.get(key) is not None:
            return value[key]
    return None


def _as_reference(value: Any, source: str) -> ScoreReference | None:
    """Accepts a ScoreReference, a ``(random, expert[, human])`` tuple, a mapping or a TaskSpec-like object."""
    if value is None or isinstance(value, ScoreReference):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (2, 3):
        human = value[2] if len(value) == 3 else None
        return ScoreReference(float(value[0]), float(value[1]), None if human is None else float(human), source)
    if not isinstance(value, Mapping):  # TaskSpec (*_score) or jat_policy.data.ReferenceScores (*_mean)
        value = {name: getattr(value, name) for name in _REFERENCE_KEYS if hasattr(value, name)}
    random = _first_key(value, ("random", "random_score", "random_mean"))
    expert = _first_key(value, ("expert", "expert_score", "expert_mean"))
    human = _first_key(value, ("human", "human_score", "human_mean"))
    if random is None or expert is None:
        if source == "user":
            raise ValueError(
                f"Reference scores must give a random and an expert score, e.g. (random, expert) or "
                f"{{'random': r, 'expert': e}}; got {value!r}."
            )
        return None
    return ScoreReference(float(random), float(expert), None if human is None else float(human), source)


def _lookup_task(task: str) -> Any | None:
    """The registry's TaskSpec, or None for unregistered tasks (or while the registry is unavailable)."""
    try:
        from jat_policy.tasks import get_task
    except ImportError:
        return None
    try:
        return get_task(task)
    except (KeyError, ValueError):
        return None


def get_reference_scores(
    task: str,
    reference_scores: Mapping[str, Any] | None = None,
    dataset_path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
) -> ScoreReference | None:
    """Finds the random / expert (/ human) scores of a task.

    Priority: ``reference_scores[task]`` (explicit), then the metadata of the dataset at
    ``dataset_path`` (``jat_policy.data.load_reference_scores``, for user tasks), then the registry
    (``jat_policy.tasks.get_task``: the JAT tasks' published numbers).

    Args:
        task: Task name.
        reference_scores: ``{task: (random, expert[, human])}`` (or mappings / ScoreReference).
        dataset_path: A collected dataset whose metadata holds the scores, or ``{task: path}``.

    Returns:
        The scores, or None if no source knows the task.
    """
    if reference_scores and task in reference_scores:
        return _as_reference(reference_scores[task], "user")
    path = dataset_path.get(task) if isinstance(dataset_path, Mapping) else dataset_path
    if path is not None:
        from jat_policy.data import load_reference_scores

        try:
            found = _as_reference(load_reference_scores(path, task), "dataset")
        except FileNotFoundError:  # the dataset has no such task: registered tasks still have scores
            found = None
        if found is not None:  # a dataset without a random score falls through to the registry
            return found
    return _as_reference(_lookup_task(task), "registry")


def normalize_score(score: Any, random_score: float, reference_score: float) -> Any:
    """``(score - random) / (reference - random)``, or None where ``reference <= random`` (undefined).

    Args:
        score: A raw score or an array of them.
        random_score: The random policy's mean score.
        reference_score: The expert's (or human's) mean score.

    Returns:
        The normalised score(s) (float or array, like ``score``), or None if undefined.
    """
    if reference_score <= random_score:
        return None
    normalized = (np.asarray(score, dtype=np.float64) - random_score) / (reference_score - random_score)
    return float(normalized) if normalized.ndim == 0 else normalized


def normalize(
    score: Any,
    task: str,
    kind: str = "expert",
    reference_scores: Mapping[str, Any] | None = None,
    dataset_path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
) -> Any:
    """Normalises a raw score of ``task`` by its expert (default) or human (Atari) score.

    Args:
        score: A raw score or an array of them.
        task: Task name, e.g. ``"atari-pong"``.
        kind: ``"expert"`` or ``"human"``.
        reference_scores: Explicit ``{task: (random, expert[, human])}``; see :func:`get_reference_scores`.
        dataset_path: Dataset whose metadata holds the scores (user tasks).

    Returns:
        The normalised score(s), or None where undefined: reference <= random (atari-bowling,
        atari-venture) or, for ``kind="human"``, a task without a human score.

    Raises:
        ValueError: On an unknown ``kind``.
        KeyError: If no source has reference scores for ``task``.
    """
    if kind not in ("expert", "human"):
        raise ValueError(f"kind must be 'expert' or 'human', got {kind!r}.")
    ref = get_reference_scores(task, reference_scores, dataset_path)
    if ref is None:
        raise KeyError(
            f"No reference scores for task {task!r}: it is not in the registry. Pass "
            f"reference_scores={{{task!r}: (random, expert)}} or the dataset it was collected into."
        )
    upper = ref.expert if kind == "expert" else ref.human
    return None if upper is None else normalize_score(score, ref.random, upper)


@dataclass
class NormalizedScores:
    """Per-episode normalised scores of one task, or why there are none.

    Attributes:
        status: ``"ok"``, ``"undefined"`` (reference <= random) or ``"unavailable"`` (no reference).
        scores: ``(n_episodes,)`` normalised scores when ``status == "ok"``.
        reason: Human-readable reason when there are no scores.
    """

    status: str
    scores: np.ndarray | None = None
    reason: str | None = None

    @classmethod
    def compute(cls, returns: np.ndarray, ref: ScoreReference | None, kind: str) -> NormalizedScores:
        """Normalises ``returns`` by ``ref``'s expert or human score, recording why when impossible."""
        upper = None if ref is None else (ref.expert if kind == "expert" else ref.human)
        if ref is None or upper is None:
            what = "random/expert" if kind == "expert" else "human (Atari only)"
            return cls("unavailable", reason=f"no {what} reference score")
        scores = normalize_score(returns, ref.random, upper)
        if scores is None:
            return cls("undefined", reason=f"{kind} score {upper:g} <= random score {ref.random:g}")
        return cls("ok", np.atleast_1d(scores))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: status, reason, per-episode scores, mean and std."""
        out: dict[str, Any] = {"status": self.status, "reason": self.reason}
        out.update(_summary(self.scores) if self.scores is not None else {"scores": None, "mean": None, "std": None})
        return out


def _summary(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    return {"scores": [float(v) for v in values], "mean": float(values.mean()), "std": float(values.std())}


# --------------------------------------------------------------------------------------------------
# Aggregation (rliable)
# --------------------------------------------------------------------------------------------------
@dataclass
class AggregateScore:
    """Mean and IQM of a ``(n_runs, n_tasks)`` score matrix with stratified-bootstrap CIs.

    Attributes:
        mean: Mean over tasks of the per-task means.
        iqm: Interquartile mean (25% trimmed mean) over all runs and tasks.
        mean_ci: ``(low, high)`` CI of the mean; None with fewer than 2 runs per task.
        iqm_ci: ``(low, high)`` CI of the IQM; None with fewer than 2 runs per task.
        n_runs: Runs (episodes) per task.
        n_tasks: Tasks aggregated.
        confidence: CI coverage.
        reps: Bootstrap replications.
    """

    mean: float
    iqm: float
    mean_ci: tuple[float, float] | None
    iqm_ci: tuple[float, float] | None
    n_runs: int
    n_tasks: int
    confidence: float
    reps: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _import_rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as err:
        raise ImportError(f"Aggregate scores (IQM, bootstrap CIs) need rliable: {_EVAL_EXTRA}. ({err})") from err
    return library, metrics


def aggregate_scores(scores: np.ndarray, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> AggregateScore:
    """Mean and IQM of a score matrix with rliable's stratified-bootstrap confidence intervals.

    Args:
        scores: ``(n_runs, n_tasks)`` normalised scores (a 1-D array is one task).
        reps: Bootstrap replications.
        confidence: CI coverage, e.g. 0.95.
        seed: Seed of the bootstrap, so CIs are reproducible.

    Returns:
        The aggregate. With a single run per task the bootstrap has nothing to resample, so the
        CIs are None rather than a misleading zero-width interval.
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores  # (n_runs,) -> (n_runs, 1)
    if scores.ndim != 2 or scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError(f"scores must be a finite, non-empty (n_runs, n_tasks) matrix, got shape {scores.shape}.")
    library, metrics = _import_rliable()

    def both(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])

    n_runs, n_tasks = scores.shape
    mean, iqm = both(scores)
    mean_ci = iqm_ci = None
    if n_runs >= 2:
        # rliable 1.2's StratifiedBootstrap draws its indices from the *global* numpy RNG (its random_state
        # only reaches arch), so seed that for reproducible CIs and give the caller's RNG state back after.
        global_state = np.random.get_state()  # noqa: NPY002 - rliable uses the legacy global RNG
        np.random.seed(seed)  # noqa: NPY002
        try:
            with warnings.catch_warnings():  # arch's FutureWarning about RandomState, which rliable passes
                warnings.simplefilter("ignore", FutureWarning)
                _, intervals = library.get_interval_estimates(
                    {"x": scores},
                    both,
                    reps=reps,
                    confidence_interval_size=confidence,
                    random_state=np.random.RandomState(seed),
                )
        finally:
            np.random.set_state(global_state)  # noqa: NPY002
        ci = intervals["x"]  # (2 bounds, 2 metrics)
        mean_ci, iqm_ci = (float(ci[0, 0]), float(ci[1, 0])), (float(ci[0, 1]), float(ci[1, 1]))
    return AggregateScore(float(mean), float(iqm), mean_ci, iqm_ci, n_runs, n_tasks, confidence, reps)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
@dataclass
class TaskResult:
    """Everything measured on one task.

    Attributes:
        task: Task name.
        domain: ``atari | babyai | metaworld | mujoco | user | ...``.
        env_id: The registry's env id (None for unregistered tasks).
        env_spec_id: The id of the env actually built (its ``spec.id``), e.g. ``"InvertedPendulum-v4"``.
        max_episode_steps: The built env's time limit, if any.
        seeds: ``(n_episodes,)`` reset seed of each episode (``seed + episode index``).
        returns: ``(n_episodes,)`` raw undiscounted returns (Atari: whole games, unclipped).
        lengths: ``(n_episodes,)`` episode lengths in agent steps.
        successes: ``(n_episodes,)`` success flags where the env reports ``info["success"]``, else None.
        reference: The random / expert / human scores used, or None.
        expert_normalized: Expert-normalised scores.
        human_normalized: Human-normalised scores (Atari).
        paper_jat_score: The paper's raw JAT score on this task, if registered.
        paper_jat_normalized: The paper's expert-normalised JAT score, if registered.
        wall_time_s: Seconds spent on this task.
    """

    task: str
    domain: str
    env_id: str | None
    env_spec_id: str | None
    max_episode_steps: int | None
    seeds: list[int]
    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray | None
    reference: ScoreReference | None
    expert_normalized: NormalizedScores
    human_normalized: NormalizedScores
    paper_jat_score: float | None = None
    paper_jat_normalized: float | None = None
    wall_time_s: float = 0.0

    @property
    def mean_return(self) -> float:
        """Mean raw return over episodes."""
        return float(np.mean(self.returns))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (raw and normalised scores, reference and its source, env ids, seeds)."""
        raw = _summary(self.returns)
        return {
            "task": self.task,
            "domain": self.domain,
            "env_id": self.env_id,
            "env_spec_id": self.env_spec_id,
            "max_episode_steps": self.max_episode_steps,
            "seeds": list(self.seeds),
            "raw": {"returns": raw["scores"], "mean": raw["mean"], "std": raw["std"], "lengths": _ints(self.lengths)},
            "success_rate": None if self.successes is None else float(np.mean(self.successes)),
            "reference": None if self.reference is None else dataclasses.asdict(self.reference),
            "expert_normalized": self.expert_normalized.to_dict(),
            "human_normalized": self.human_normalized.to_dict(),
            "paper_jat": {"raw": self.paper_jat_score, "normalized": self.paper_jat_normalized},
            "wall_time_s": round(self.wall_time_s, 3),
        }


def _ints(values: np.ndarray) -> list[int]:
    return [int(v) for v in values]


@dataclass
class EvaluationResult:
    """Results of :func:`evaluate`: per-task scores, per-domain aggregates and provenance.

    Attributes:
        tasks: ``{task: TaskResult}`` in evaluation order.
        aggregates: ``{domain: {"expert_normalized": {...}, "human_normalized": {...}}}``; each
            entry holds the AggregateScore dict, the tasks it covers and the tasks left out (why).
        settings: n_episodes, n_envs, seed, deterministic, bootstrap settings.
        provenance: Package versions, machine, model config, timestamp.
    """

    tasks: dict[str, TaskResult]
    aggregates: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    provenance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of everything."""
        return {
            "format": "jat-policy-evaluation/1",
            "score_definitions": {
                "raw": "undiscounted sum of env rewards per episode; Atari: whole games (all lives), unclipped",
                "expert_normalized": "(raw - random) / (expert - random); undefined where expert <= random",
                "human_normalized": "(raw - random) / (human - random), Atari only",
                "aggregate": "mean of task means and IQM over (episodes x tasks), stratified bootstrap CIs (rliable)",
            },
            "settings": self.settings,
            "provenance": self.provenance,
            "tasks": {name: result.to_dict() for name, result in self.tasks.items()},
            "aggregates": self.aggregates,
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Writes :meth:`to_dict` as strict JSON (no NaN) and returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n")
        return path


def _jsonable(value: Any) -> Any:
    """Converts numpy scalars/arrays, paths and NaN into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


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


def _make_vector_env(task: str, env_fn: EnvFn, n_envs: int, max_episode_steps: int | None) -> gym.vector.SyncVectorEnv:
    def one() -> gym.Env:
        env = env_fn(task)
        if max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        return _WholeGames(env)

    # Resets are ours to do (DISABLED): each episode gets its own seed, and no step is wasted on
    # NEXT_STEP's "reset step" whose action is ignored.
    return gym.vector.SyncVectorEnv([one] * n_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED)


def _success_flags(infos: Mapping[str, Any], n_envs: int) -> np.ndarray | None:
    if "success" not in infos:
        return None
    mask = np.asarray(infos.get("_success", np.ones(n_envs, dtype=bool)), dtype=bool)
    return mask & np.asarray(infos["success"]).astype(bool)


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
        flags = _success_flags(infos, n_envs)
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
    """Splits ``"a,b"`` and expands the keywords ``atari|babyai|metaworld|mujoco|user|all`` via the registry."""
    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    out: list[str] = []
    for name in filter(None, names):
        if name in DOMAINS or name in ("user", "all"):
            from jat_policy.tasks import list_tasks

            out += list_tasks() if name == "all" else list_tasks(name)
        else:
            out.append(name)
    if not out:
        raise ValueError(f"No tasks to evaluate in {tasks!r}; give task names such as 'atari-pong,mujoco-pendulum'.")
    return list(dict.fromkeys(out))  # keep order, drop duplicates


def _domain_of(task: str, spec: Any | None) -> str:
    if spec is not None and getattr(spec, "domain", None):
        return str(spec.domain)
    prefix = task.split("-", 1)[0]
    return prefix if prefix in DOMAINS else "user"


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
    return {"policy_class": type(predictor).__name__, "config": _jsonable(data)}


def _evaluate_task(
    task: str,
    policy: Predictor | PolicyFactory,
    env_fn: EnvFn,
    options: _Options,
    model_info: dict[str, Any],
) -> TaskResult:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    spec = _lookup_task(task)
    vec = _make_vector_env(task, env_fn, options.n_envs, options.max_episode_steps)
    try:
        predictor = _resolve_predictor(policy, task, vec.envs[0])
        config = _model_config(predictor)
        if config is not None and "config" not in model_info:
            model_info.update(config)
        with tqdm(total=options.n_episodes, desc=task, unit="ep", disable=not options.progress) as bar:

            def tick(episode_return: float) -> None:
                bar.update(1)
                bar.set_postfix(last_return=f"{episode_return:.4g}")

            episodes = _rollout(vec, predictor, options.n_episodes, options.seed, options.deterministic, tick)
        built = vec.envs[0].spec
    finally:
        vec.close()
    ref = get_reference_scores(task, options.reference_scores, options.dataset_path)
    return TaskResult(
        task=task,
        domain=_domain_of(task, spec),
        env_id=getattr(spec, "env_id", None),
        env_spec_id=None if built is None else built.id,
        max_episode_steps=None if built is None else built.max_episode_steps,
        seeds=[options.seed + k for k in range(options.n_episodes)],
        returns=episodes.returns,
        lengths=episodes.lengths,
        successes=episodes.successes,
        reference=ref,
        expert_normalized=NormalizedScores.compute(episodes.returns, ref, "expert"),
        human_normalized=NormalizedScores.compute(episodes.returns, ref, "human"),
        paper_jat_score=getattr(spec, "paper_jat_score", None),
        paper_jat_normalized=getattr(spec, "paper_jat_normalized", None),
        wall_time_s=time.perf_counter() - started,
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


def _aggregate_kind(results: Sequence[TaskResult], kind: str, reps: int, confidence: float, seed: int) -> dict | None:
    used = [r for r in results if getattr(r, kind).status == "ok"]
    excluded = {r.task: getattr(r, kind).reason for r in results if getattr(r, kind).status != "ok"}
    if not used:
        return None
    matrix = np.stack([getattr(r, kind).scores for r in used], axis=1)  # (n_episodes, n_tasks)
    out = aggregate_scores(matrix, reps=reps, confidence=confidence, seed=seed).to_dict()
    out.update(tasks=[r.task for r in used], excluded=excluded)
    paper = [r.paper_jat_normalized for r in used]
    # The paper's per-episode scores are not published; the IQM of its per-task means over the same tasks is
    # the closest comparable number (shown in plots as a marker, labelled as such).
    if kind == "expert_normalized" and all(p is not None for p in paper):
        out["paper_jat_iqm_of_task_means"] = aggregate_scores(np.array([paper]), reps=reps, seed=seed).iqm
    return out


def aggregate_results(
    results: Sequence[TaskResult], reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per-domain mean and IQM (with CIs) of expert-normalised and, for Atari, human-normalised scores.

    Tasks whose normalised score is undefined or unavailable are left out and listed under ``excluded``.

    Args:
        results: Task results (all with the same number of episodes).
        reps: Bootstrap replications.
        confidence: CI coverage.
        seed: Bootstrap seed.

    Returns:
        ``{domain: {"expert_normalized": {...} | None, "human_normalized": {...} | None}}``.
    """
    aggregates: dict[str, dict[str, Any]] = {}
    for domain in dict.fromkeys(r.domain for r in results):
        members = [r for r in results if r.domain == domain]
        aggregates[domain] = {
            kind: _aggregate_kind(members, kind, reps, confidence, seed)
            for kind in ("expert_normalized", "human_normalized")
        }
    return aggregates


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _machine() -> dict[str, Any]:
    machine: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        machine["torch_threads"] = torch.get_num_threads()
    return machine


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
        reference_scores: ``{task: (random, expert[, human])}`` overriding dataset/registry scores.
        dataset_path: Dataset (or ``{task: path}``) whose metadata has user tasks' reference scores.
        env_fn: ``env_fn(task) -> gym.Env``; default ``jat_policy.wrappers.make_env(task, text_as_bytes=True,
            **env_kwargs)``, which also builds any Gymnasium id (``"CartPole-v1"``).
        env_kwargs: Keyword arguments of the default ``make_env``.
        max_episode_steps: Optional extra time limit per episode (a guard for envs without one).
        bootstrap_reps: Bootstrap replications for the CIs.
        confidence: CI coverage.
        progress: Show a tqdm progress bar per task.
        model_info: Extra provenance about the model (e.g. its path), stored under ``provenance.model``.

    Returns:
        The :class:`EvaluationResult`; ``result.save_json(path)`` writes it, :func:`plot_results` plots it.
    """
    if n_episodes < 1 or n_envs < 1:
        raise ValueError(f"n_episodes and n_envs must be >= 1, got n_episodes={n_episodes}, n_envs={n_envs}.")
    names = expand_tasks(tasks)
    env_fn = env_fn if env_fn is not None else _default_env_fn(dict(env_kwargs or {}))
    options = _Options(
        n_episodes, n_envs, seed, deterministic, max_episode_steps, reference_scores, dataset_path, progress
    )
    model: dict[str, Any] = dict(model_info or {})
    results = {task: _evaluate_task(task, policy, env_fn, options, model) for task in names}
    settings = {
        "n_episodes": n_episodes,
        "n_envs": n_envs,
        "seed": seed,
        "episode_seeds": "seed + episode index",
        "deterministic": deterministic,
        "max_episode_steps": max_episode_steps,
        "bootstrap_reps": bootstrap_reps,
        "confidence": confidence,
        "vector_env": "gymnasium.vector.SyncVectorEnv(autoreset_mode=DISABLED)",
    }
    provenance = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "packages": _package_versions(),
        "machine": _machine(),
        "model": _jsonable(model) if model else None,
    }
    aggregates = aggregate_results(list(results.values()), bootstrap_reps, confidence, seed)
    return EvaluationResult(results, _jsonable(aggregates), settings, provenance)


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def _import_figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"Plots need matplotlib: {_EVAL_EXTRA}. ({err})") from err
    return Figure  # the object-oriented API renders with Agg and never touches pyplot's global backend


def _plot_domain(tasks: list[dict[str, Any]], domain: str, path: Path) -> Path:
    figure_cls = _import_figure()
    height = 1.8 + 0.4 * len(tasks)
    fig = figure_cls(figsize=(7.5, height), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(tasks))
    ours = [t["expert_normalized"]["mean"] for t in tasks]
    errs = [t["expert_normalized"]["std"] or 0.0 for t in tasks]
    paper = [t["paper_jat"]["normalized"] for t in tasks]
    ax.barh(y - 0.2, [v or 0.0 for v in ours], 0.4, xerr=errs, label="ours (mean ± std over episodes)")
    if any(p is not None for p in paper):
        ax.barh(y + 0.2, [p or 0.0 for p in paper], 0.4, label="paper JAT", color="tab:gray")
    for i, t in enumerate(tasks):
        if ours[i] is None:
            ax.text(
                0.02, i, t["expert_normalized"]["status"], va="center", fontsize=7, transform=ax.get_yaxis_transform()
            )
    ax.set_yticks(y, [t["task"] for t in tasks], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("expert-normalised score")
    ax.set_title(f"{domain}: per-task expert-normalised score")
    fig.legend(fontsize=7, loc="outside lower center", ncols=2)
    fig.savefig(path, dpi=120)
    return path


def _plot_aggregates(aggregates: Mapping[str, Any], path: Path) -> Path | None:
    rows = [(d, k, a) for d, kinds in aggregates.items() for k, a in kinds.items() if a is not None]
    if not rows:
        return None
    fig = _import_figure()(figsize=(6.5, 1.6 + 0.5 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    for i, (_, _, agg) in enumerate(rows):
        low, high = agg["iqm_ci"] or (agg["iqm"], agg["iqm"])
        ax.errorbar(
            agg["iqm"], i, xerr=[[agg["iqm"] - low], [high - agg["iqm"]]], fmt="o", color="tab:blue", capsize=4
        )
        if agg.get("paper_jat_iqm_of_task_means") is not None:
            ax.plot(agg["paper_jat_iqm_of_task_means"], i, "x", color="tab:gray", ms=9)
    ax.plot([], [], "o", color="tab:blue", label=f"ours: IQM, {rows[0][2]['confidence']:.0%} bootstrap CI")
    if any(agg.get("paper_jat_iqm_of_task_means") is not None for _, _, agg in rows):
        ax.plot([], [], "x", color="tab:gray", label="paper JAT: IQM of its task means (same tasks)")
    ax.set_yticks(range(len(rows)), [f"{d}\n{k.replace('_', '-')}" for d, k, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("normalised score (IQM)")
    fig.legend(fontsize=7, loc="outside lower center", ncols=2)
    fig.savefig(path, dpi=120)
    return path


def plot_results(
    result: EvaluationResult | Mapping[str, Any] | str | os.PathLike, out_dir: str | os.PathLike, prefix: str = ""
) -> list[Path]:
    """Draws the paper-style figures and saves them as PNG.

    One figure per domain with each task's expert-normalised score (the paper's JAT score beside
    ours where the task is registered), and one with the per-domain IQM and its CI.

    Args:
        result: An :class:`EvaluationResult`, its ``to_dict()``, or the path of its JSON.
        out_dir: Directory for the PNG files (created).
        prefix: Prepended to each file name.

    Returns:
        Paths of the files written: ``{prefix}normalized_{domain}.png`` per domain with normalised
        scores, then ``{prefix}aggregate_iqm.png`` when there is an aggregate.
    """
    if isinstance(result, EvaluationResult):
        data = _jsonable(result.to_dict())
    elif isinstance(result, Mapping):
        data = result
    else:
        data = json.loads(Path(result).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for task in data["tasks"].values():
        by_domain.setdefault(task["domain"], []).append(task)
    for domain, tasks in by_domain.items():
        if any(t["expert_normalized"]["status"] != "unavailable" for t in tasks):
            paths.append(_plot_domain(tasks, domain, out / f"{prefix}normalized_{domain}.png"))
    aggregate_path = _plot_aggregates(data["aggregates"], out / f"{prefix}aggregate_iqm.png")
    return paths + ([aggregate_path] if aggregate_path is not None else [])


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
@dataclass
class EvaluateArgs:
    """Roll out a JAT checkpoint (or a random policy) and report raw / normalised scores with IQM and CIs."""

    model: str = field(
        default="", metadata={"help": "checkpoint directory or Hub id, or 'random' for a uniform random policy"}
    )
    tasks: list[str] = field(
        default_factory=list, metadata={"help": "comma-separated tasks; atari|babyai|metaworld|mujoco|all expand"}
    )
    episodes: int = field(default=2, metadata={"help": "episodes per task"})
    n_envs: int = field(default=1, metadata={"help": "parallel envs per task"})
    seed: int = field(default=0, metadata={"help": "base seed: episode k is reset with seed + k"})
    deterministic: bool = field(default=False, metadata={"help": "greedy actions instead of sampling"})
    output: str = field(
        default="", metadata={"help": "JSON path (default: <model>/evaluations.json, or ./evaluations.json)"}
    )
    dataset: str = field(default="", metadata={"help": "dataset whose metadata holds user tasks' reference scores"})
    plots: bool = field(default=True, metadata={"help": "save PNG plots next to the JSON"})
    bootstrap_reps: int = field(default=2000, metadata={"help": "bootstrap replications for the CIs"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _print_summary(result: EvaluationResult) -> None:
    print(f"{'task':<36} {'raw mean ± std':>22} {'normalised':>11} {'paper JAT':>10}")
    for r in result.tasks.values():
        norm = r.expert_normalized
        shown = f"{norm.scores.mean():.3f}" if norm.scores is not None else norm.status
        paper = "-" if r.paper_jat_normalized is None else f"{r.paper_jat_normalized:.2f}"
        print(f"{r.task:<36} {f'{r.mean_return:.2f} ± {np.std(r.returns):.2f}':>22} {shown:>11} {paper:>10}")
    for domain, kinds in result.aggregates.items():
        for kind, agg in kinds.items():
            if agg is not None:
                ci = "n/a" if agg["iqm_ci"] is None else f"[{agg['iqm_ci'][0]:.3f}, {agg['iqm_ci'][1]:.3f}]"
                print(f"{domain} {kind}: IQM {agg['iqm']:.3f} CI {ci}, mean {agg['mean']:.3f}")


def cli_main(argv: list[str] | None = None) -> int:
    """``jat-policy evaluate --model <dir>|random --tasks a,b --episodes N [--n-envs K --seed S --output path]``.

    Args:
        argv: Command-line arguments without the program name.

    Returns:
        The exit code (0 on success, 2 on bad arguments).
    """
    from jat_policy.utils.cli_args import parse_args

    args = parse_args(EvaluateArgs, argv, prog="jat-policy evaluate")
    if not args.model or not args.tasks:
        print("jat-policy evaluate: give --model <dir>|random and --tasks a,b (see --help).", file=sys.stderr)
        return 2
    is_random = args.model == "random"
    policy = random_policy_factory(args.seed) if is_random else jat_policy_factory(args.model)
    result = evaluate(
        policy,
        args.tasks,
        n_episodes=args.episodes,
        n_envs=args.n_envs,
        seed=args.seed,
        deterministic=args.deterministic,
        dataset_path=args.dataset or None,
        bootstrap_reps=args.bootstrap_reps,
        progress=args.progress,
        model_info={"path": args.model},
    )
    if args.output:
        output = Path(args.output)
    elif not is_random and Path(args.model).is_dir():
        output = Path(args.model) / "evaluations.json"  # where the reference's eval_jat.py writes it
    else:
        output = Path("evaluations.json")
    result.save_json(output)
    _print_summary(result)
    print(f"Saved {output}")
    if args.plots:
        for path in plot_results(result, output.parent, prefix=f"{output.stem}_"):
            print(f"Saved {path}")
    return 0
