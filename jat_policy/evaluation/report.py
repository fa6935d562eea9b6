"""The results table printed by ``jat-policy evaluate`` and ``jat-policy demo``: every number says what it is.

Per task: episodes, raw return, expert-normalised score, success rate, and the source of the reference scores;
below it, each reference in full (which dataset or registry file, which env version it was measured on, and a
warning when that is not the env evaluated), the per-domain aggregates (IQM *and* mean, with CIs) and what
counts as a success on each task.
"""

from __future__ import annotations

import re

from jat_policy.evaluation.results import EvaluationResult, TaskResult

__all__ = ["format_results"]

_SOURCES = {"dataset": "dataset", "registry": "the registry:", "user": "given by the caller"}
_COLUMNS = (("task", -28), ("episodes", 8), ("return", 17), ("normalised", 10), ("success", 7))


def _row(result: TaskResult) -> str:
    norm = result.expert_normalized
    shown = f"{norm.scores.mean():.3f}" if norm.scores is not None else norm.status
    success = "n/a" if result.successes is None else f"{result.successes.mean():.0%}"
    ret = f"{result.mean_return:.3f} ± {result.returns.std():.2f}"
    ref = result.reference
    version = re.search(r"v\d+$", ref.env_id or "") if ref is not None else None
    source = "-" if ref is None else f"{ref.source} {version.group(0)}" if version else ref.source
    cells = (result.task, len(result.returns), ret, shown, success)
    text = " ".join(f"{c!s:<{-w}}" if w < 0 else f"{c!s:>{w}}" for c, (_, w) in zip(cells, _COLUMNS, strict=True))
    paper = "" if result.paper_jat_normalized is None else f"{result.paper_jat_normalized:.2f}"
    return f"{text}  {source:<12} {paper:>9}"


def _reference_line(result: TaskResult) -> str:
    ref = result.reference
    if ref is None:
        return f"  {result.task}: no reference scores (pass --dataset or reference_scores): raw returns only"
    where = _SOURCES.get(ref.source, ref.source)
    origin = f" {ref.origin}" if ref.origin else ""
    line = f"  {result.task}: random {ref.random:.4g}, expert {ref.expert:.4g} from {where}{origin}"
    if ref.env_id:
        line += f", measured on {ref.env_id}"
        evaluated = result.env_spec_id or result.env_id
        if evaluated and ref.env_id != evaluated:
            line += f" (this run: {evaluated}, so the normalised score compares only approximately)"
    return line


def _aggregate_lines(result: EvaluationResult) -> list[str]:
    lines = []
    for domain, kinds in result.aggregates.items():
        for kind, agg in kinds.items():
            if agg is None:
                continue
            ci = "" if agg["iqm_ci"] is None else f" [{agg['iqm_ci'][0]:.3f}, {agg['iqm_ci'][1]:.3f}]"
            mean_ci = "" if agg["mean_ci"] is None else f" [{agg['mean_ci'][0]:.3f}, {agg['mean_ci'][1]:.3f}]"
            what = kind.replace("_normalized", "-normalised")
            lines.append(
                f"  {domain} {what}: IQM {agg['iqm']:.3f}{ci}, mean {agg['mean']:.3f}{mean_ci} "
                f"({agg['n_tasks']} tasks x {agg['n_runs']} episodes, {agg['confidence']:.0%} bootstrap CIs)"
            )
    return lines


def format_results(result: EvaluationResult) -> str:
    """The table of an evaluation, with the provenance of its reference scores and success rates.

    Args:
        result: What :func:`jat_policy.evaluation.evaluate` returned.

    Returns:
        Printable text (no trailing newline).
    """
    header = " ".join(f"{n:<{-w}}" if w < 0 else f"{n:>{w}}" for n, w in _COLUMNS)
    header += f"  {'reference':<12} {'paper JAT':>9}"
    lines = [header, "-" * len(header)]
    lines += [_row(r) for r in result.tasks.values()]
    lines.append("return: raw, mean ± std over episodes; normalised: (return - random) / (expert - random);")
    lines.append("paper JAT: the paper's expert-normalised score (its experts and env versions)")
    lines.append("Reference scores:")
    lines += [_reference_line(r) for r in result.tasks.values()]
    aggregates = _aggregate_lines(result)
    if aggregates:
        lines.append("Aggregates (IQM: interquartile mean over tasks x episodes; mean: of the task means):")
        lines += aggregates
    definitions: dict[str, list[str]] = {}
    for r in result.tasks.values():
        definitions.setdefault(r.success_definition or "not recorded", []).append(r.task)
    lines.append("Success:")
    lines += [f"  {', '.join(tasks)}: {definition}" for definition, tasks in definitions.items()]
    return "\n".join(lines)
