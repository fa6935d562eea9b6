"""Score maths: reference scores, expert/human normalisation, and IQM / mean with bootstrap CIs.

Importable without gymnasium or torch (numpy only; rliable is imported when an aggregate is computed).

The numbers follow the JAT paper (arXiv 2402.09844) and its ``eval_jat.py`` / ``utils.normalize``:

* the **expert-normalised score** is ``(score - random) / (expert - random)``, and the
  **human-normalised score** (Atari only) uses the human score instead of the expert's. Where the
  reference is not above random (``atari-bowling``: expert 20.4 < random 23.1; ``atari-venture``:
  0 = 0) the score is *undefined*: we report ``None`` and leave the task out of aggregates,
  where the reference code silently returned 1.0;
* per domain we report the mean and the interquartile mean (IQM) over an
  ``(n_episodes, n_tasks)`` matrix, with stratified-bootstrap confidence intervals from
  `rliable <https://github.com/google-research/rliable>`_ (episodes play the role of runs).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jat_policy.score_reference import ScoreReference

__all__ = [
    "AggregateScore",
    "NormalizedScores",
    "ScoreReference",
    "aggregate_scores",
    "get_reference_scores",
    "normalize",
    "normalize_score",
]

EVAL_EXTRA = 'pip install "jat-policy[eval]"'


# --------------------------------------------------------------------------------------------------
# Reference scores and normalisation
# --------------------------------------------------------------------------------------------------
def _as_reference(value: Any, source: str) -> ScoreReference | None:
    """Kept for callers of the old helper; :meth:`ScoreReference.coerce` owns the parsing."""
    return ScoreReference.coerce(value, source)


def lookup_task(task: str) -> Any | None:
    """The registry's TaskSpec, or None for unregistered tasks."""
    from jat_policy.tasks import get_task  # standard library only

    try:
        return get_task(task)
    except (KeyError, ValueError):
        return None


def get_reference_scores(
    task: str,
    reference_scores: Mapping[str, Any] | None = None,
    dataset_path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    training_scores: Mapping[str, ScoreReference] | None = None,
) -> ScoreReference | None:
    """Finds the random / expert (/ human) scores of a task.

    Priority: ``reference_scores[task]`` (explicit), then the metadata of the dataset at
    ``dataset_path`` (``jat_policy.data.load_reference_scores``), then ``training_scores`` (the datasets a
    checkpoint was trained on, :func:`jat_policy.training_data.read_training_references`), then the registry
    (``jat_policy.tasks.get_task``: the JAT tasks' published numbers).

    Args:
        task: Task name.
        reference_scores: ``{task: (random, expert[, human])}`` (or mappings / ScoreReference).
        dataset_path: A collected dataset whose metadata holds the scores, or ``{task: path}``.
        training_scores: ``{task: ScoreReference}`` recorded with the checkpoint.

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
    if training_scores and task in training_scores:
        return training_scores[task]
    return _as_reference(lookup_task(task), "registry")


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
        out.update(summary(self.scores) if self.scores is not None else {"scores": None, "mean": None, "std": None})
        return out


def summary(values: np.ndarray) -> dict[str, Any]:
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
        raise ImportError(f"Aggregate scores (IQM, bootstrap CIs) need rliable: {EVAL_EXTRA}. ({err})") from err
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
