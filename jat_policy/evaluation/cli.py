"""``jat-policy evaluate``: roll out a checkpoint (or a random policy), write the JSON report and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jat_policy.evaluation.plots import plot_results
from jat_policy.evaluation.results import EvaluationResult
from jat_policy.evaluation.rollout import evaluate, jat_policy_factory, random_policy_factory

__all__ = ["EvaluateArgs", "cli_main"]


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
    from jat_policy.utils.cli_args import parse_args, usage_error

    args = parse_args(EvaluateArgs, argv, prog="jat-policy evaluate")
    if not args.model or not args.tasks:
        return usage_error("jat-policy evaluate", "give --model <dir>|random and --tasks a,b (see --help)")
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
