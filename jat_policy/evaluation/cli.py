"""``jat-policy evaluate``: roll out a checkpoint (or a random policy), write the JSON report and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jat_policy.evaluation.plots import plot_results
from jat_policy.evaluation.report import format_results
from jat_policy.evaluation.rollout import evaluate, jat_policy_factory, random_policy_factory
from jat_policy.model_card import CARD_NAME, update_model_card
from jat_policy.precision import PRECISIONS

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
    precision: str = field(
        default="",
        metadata={"help": "fp32|bf16|int8 weights, quantised at load (default: fp32 on CPU, bf16 on CUDA)"},
    )
    context_window: int = field(
        default=0,
        metadata={
            "help": "timesteps of each env's rolling context, even (default 0: the longest window the checkpoint "
            "was trained on, from its config)"
        },
    )
    output: str = field(
        default="", metadata={"help": "JSON path (default: <model>/evaluations.json, or ./evaluations.json)"}
    )
    dataset: str = field(
        default="",
        metadata={
            "help": "collected dataset folder (the --out of `jat-policy collect`) whose jat_metadata.json reference "
            "scores normalise every task it holds, registered or not (default: the checkpoint's training data, "
            "then the registry)"
        },
    )
    checkpoint_references: bool = field(
        default=True,
        metadata={
            "help": "normalise with the reference scores of the datasets the checkpoint was trained on (its "
            "training_data.json); --no-checkpoint-references: the registry's (the JAT paper's experts)"
        },
    )
    plots: bool = field(default=True, metadata={"help": "save PNG plots next to the JSON"})
    bootstrap_reps: int = field(default=2000, metadata={"help": "bootstrap replications for the CIs"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    update_card: bool = field(
        default=False, metadata={"help": "merge the results into the checkpoint's model card (<model>/README.md)"}
    )
    video: str = field(
        default="", metadata={"help": "record the first episode of each task as <video>/<task>-episode-0.mp4"}
    )


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
    for name in ("episodes", "n_envs", "bootstrap_reps"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            return usage_error("jat-policy evaluate", f"{flag} must be >= 1, got {getattr(args, name)}")
    if args.precision and args.precision not in PRECISIONS:
        return usage_error(
            "jat-policy evaluate", f"--precision must be one of {', '.join(PRECISIONS)}, got {args.precision!r}"
        )
    if args.context_window and (args.context_window < 2 or args.context_window % 2):
        message = f"--context-window must be an even number of timesteps >= 2, got {args.context_window}"
        return usage_error("jat-policy evaluate", message)
    is_random = args.model == "random"
    if args.update_card and (is_random or not (Path(args.model) / CARD_NAME).is_file()):
        message = f"--update-card needs a checkpoint directory with a {CARD_NAME} model card, got --model {args.model}"
        return usage_error("jat-policy evaluate", message)
    precision = args.precision or None
    window = {"context_window": args.context_window} if args.context_window else {}
    if is_random:
        policy, info = random_policy_factory(args.seed), {"path": args.model}
    else:
        policy = jat_policy_factory(args.model, precision=precision, **window)
        info = {"path": args.model, "precision": precision or "default", **window}
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
        model_info=info,
        checkpoint_references=args.checkpoint_references,
        video_dir=args.video or None,
    )
    if args.output:
        output = Path(args.output)
    elif not is_random and Path(args.model).is_dir():
        output = Path(args.model) / "evaluations.json"  # where the reference's eval_jat.py writes it
    else:
        output = Path("evaluations.json")
    result.save_json(output)
    print(format_results(result))
    print(f"Saved {output}")
    if args.plots:
        for path in plot_results(result, output.parent, prefix=f"{output.stem}_"):
            print(f"Saved {path}")
    for task_result in result.tasks.values():
        if task_result.video:
            print(f"Saved {task_result.video}")
    if args.update_card:
        print(f"Updated {update_model_card(args.model, result)}")
    return 0
