"""The paper's figures: per-task normalised bars per domain (the paper's JAT beside ours), per-domain IQM + CI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jat_policy.evaluation.results import EvaluationResult, jsonable
from jat_policy.evaluation.scores import EVAL_EXTRA

__all__ = ["plot_results"]


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def _import_figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"Plots need matplotlib: {EVAL_EXTRA}. ({err})") from err
    return Figure  # the object-oriented API renders with Agg and never touches pyplot's global backend


def mean_ci(scores: list[float] | None, confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean of per-episode scores; None with fewer than 2 episodes.

    The whiskers of the per-task bars: where the mean lies, not how single episodes spread (their std ran
    past 1.0 on tasks whose mean was well below it).
    """
    if scores is None or len(scores) < 2:
        return None
    from scipy import stats  # rliable's dependency: installed with the eval extra

    values = np.asarray(scores, dtype=np.float64)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def _env_versions(tasks: list[dict[str, Any]], paper: bool) -> str:
    """``"v3"``-style versions of the envs our scores (or the paper's) were measured on, e.g. Meta-World v3 / v2."""
    from jat_policy.tasks import get_task

    ids = []
    for t in tasks:
        env_id = t.get("env_spec_id") or t.get("env_id")
        if paper:
            try:
                env_id = get_task(t["task"]).reference_env_id
            except KeyError:
                env_id = None
        ids.append(env_id)
    versions = sorted({m.group(0) for i in ids if i and (m := re.search(r"v\d+$", i))})
    return "/".join(versions) or "unknown version"


def _plot_domain(tasks: list[dict[str, Any]], domain: str, path: Path) -> Path:
    figure_cls = _import_figure()
    height = 1.8 + 0.4 * len(tasks)
    fig = figure_cls(figsize=(7.5, height), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(tasks))
    ours = [t["expert_normalized"]["mean"] for t in tasks]
    cis = [mean_ci(t["expert_normalized"]["scores"]) for t in tasks]
    errs = np.array([[m - c[0], c[1] - m] if c else [0.0, 0.0] for m, c in zip(ours, cis, strict=True)]).T  # (2, n)
    paper = [t["paper_jat"]["normalized"] for t in tasks]
    n = max(len(t["raw"]["returns"]) for t in tasks)
    sources = "/".join(sorted({(t.get("reference") or {}).get("source", "no") for t in tasks}))
    label = f"ours on {_env_versions(tasks, paper=False)} envs, {sources} references: mean, 95% CI over {n} episodes"
    ax.barh(y - 0.2, [v or 0.0 for v in ours], 0.4, xerr=errs, capsize=2, label=label)
    if any(p is not None for p in paper):
        paper_label = f"paper JAT on {_env_versions(tasks, paper=True)} envs (its own experts)"
        ax.barh(y + 0.2, [p or 0.0 for p in paper], 0.4, label=paper_label, color="tab:gray")
    for i, t in enumerate(tasks):
        if ours[i] is None:
            ax.text(
                0.02, i, t["expert_normalized"]["status"], va="center", fontsize=7, transform=ax.get_yaxis_transform()
            )
    ax.set_yticks(y, [t["task"] for t in tasks], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("expert-normalised score (1 = expert, 0 = random)")
    ax.set_title(f"{domain}: per-task expert-normalised score")
    fig.legend(fontsize=7, loc="outside lower center", ncols=1)
    fig.savefig(path, dpi=120)
    return path


def _plot_aggregates(aggregates: Mapping[str, Any], path: Path) -> Path | None:
    rows = [(d, k, a) for d, kinds in aggregates.items() for k, a in kinds.items() if a is not None]
    if not rows:
        return None
    fig = _import_figure()(figsize=(6.5, 1.9 + 0.5 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    lowest = 0.0
    for i, (_, _, agg) in enumerate(rows):
        low, high = agg["iqm_ci"] or (agg["iqm"], agg["iqm"])
        lowest = min(lowest, low, agg["mean"])
        ax.errorbar(
            agg["iqm"], i, xerr=[[agg["iqm"] - low], [high - agg["iqm"]]], fmt="o", color="tab:blue", capsize=4
        )
        ax.plot(agg["mean"], i, "D", mfc="none", color="tab:orange", ms=6)
        if agg.get("paper_jat_iqm_of_task_means") is not None:
            ax.plot(agg["paper_jat_iqm_of_task_means"], i, "x", color="tab:gray", ms=9)
    ax.plot([], [], "o", color="tab:blue", label=f"ours: IQM, {rows[0][2]['confidence']:.0%} bootstrap CI")
    ax.plot([], [], "D", mfc="none", color="tab:orange", label="ours: mean of task means (the table's mean)")
    if any(agg.get("paper_jat_iqm_of_task_means") is not None for _, _, agg in rows):
        ax.plot([], [], "x", color="tab:gray", label="paper JAT: IQM of its task means (same tasks)")
    ax.set_yticks(
        range(len(rows)), [f"{d}\n{k.replace('_normalized', '-normalised')}" for d, k, _ in rows], fontsize=8
    )
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlim(left=lowest - 0.05 if lowest < 0 else 0.0)
    ax.set_xlabel("normalised score: IQM (interquartile mean over tasks x episodes)")
    ax.set_title("Per-domain IQM of normalised scores")
    fig.legend(fontsize=7, loc="outside lower center", ncols=1)
    fig.savefig(path, dpi=120)
    return path


def plot_results(
    result: EvaluationResult | Mapping[str, Any] | str | os.PathLike, out_dir: str | os.PathLike, prefix: str = ""
) -> list[Path]:
    """Draws the paper-style figures and saves them as PNG.

    One figure per domain with each task's expert-normalised score, whiskers the 95% CI of its mean over
    episodes (the paper's JAT score beside ours where the task is registered; the legend names the env versions
    of both, e.g. Meta-World v3 vs the paper's v2), and one with the per-domain IQM, its CI and the mean.

    Args:
        result: An :class:`EvaluationResult`, its ``to_dict()``, or the path of its JSON.
        out_dir: Directory for the PNG files (created).
        prefix: Prepended to each file name.

    Returns:
        Paths of the files written: ``{prefix}normalized_{domain}.png`` per domain with normalised
        scores, then ``{prefix}aggregate_iqm.png`` when there is an aggregate.
    """
    if isinstance(result, EvaluationResult):
        data = jsonable(result.to_dict())
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
