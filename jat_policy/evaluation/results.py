"""Evaluation results: per-task scores, per-domain aggregates, provenance, strict JSON."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jat_policy.evaluation.scores import NormalizedScores, ScoreReference, aggregate_scores, summary

__all__ = ["EvaluationResult", "TaskResult", "aggregate_results"]

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
        successes: ``(n_episodes,)`` success flags (see ``success_definition``), or None where there is no criterion.
        reference: The random / expert / human scores used, or None.
        expert_normalized: Expert-normalised scores.
        human_normalized: Human-normalised scores (Atari).
        paper_jat_score: The paper's raw JAT score on this task, if registered.
        paper_jat_normalized: The paper's expert-normalised JAT score, if registered.
        wall_time_s: Seconds spent on this task.
        success_definition: What counts as a success on this task (the env's ``info["success"]``, BabyAI's
            completed mission, the spec's ``reward_threshold``), or why there is none.
        video: The MP4 of the first episode, when ``evaluate(..., video_dir=...)`` recorded one.
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
    success_definition: str | None = None
    video: str | None = None

    @property
    def mean_return(self) -> float:
        """Mean raw return over episodes."""
        return float(np.mean(self.returns))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (raw and normalised scores, reference and its source, env ids, seeds)."""
        raw = summary(self.returns)
        return {
            "task": self.task,
            "domain": self.domain,
            "env_id": self.env_id,
            "env_spec_id": self.env_spec_id,
            "max_episode_steps": self.max_episode_steps,
            "seeds": list(self.seeds),
            "raw": {"returns": raw["scores"], "mean": raw["mean"], "std": raw["std"], "lengths": _ints(self.lengths)},
            "success_rate": None if self.successes is None else float(np.mean(self.successes)),
            "success_definition": self.success_definition,
            "reference": None if self.reference is None else dataclasses.asdict(self.reference),
            "expert_normalized": self.expert_normalized.to_dict(),
            "human_normalized": self.human_normalized.to_dict(),
            "paper_jat": {"raw": self.paper_jat_score, "normalized": self.paper_jat_normalized},
            "wall_time_s": round(self.wall_time_s, 3),
            "video": self.video,
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
        path.write_text(json.dumps(jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n")
        return path


def jsonable(value: Any) -> Any:
    """Converts numpy scalars/arrays, paths and NaN into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


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


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, Any]:
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
