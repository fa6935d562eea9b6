"""The paper's figures: per-task normalised bars per domain (the paper's JAT beside ours), per-domain IQM + CI."""

from __future__ import annotations

import json
import os
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
