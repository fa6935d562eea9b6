r"""Train vs held-out fit of behaviour-cloning checkpoints: is a learning run short of optimisation steps, or of data?

For each checkpoint, on ``--episodes`` episodes of its training data and on as many fresh episodes that the same
expert plays from seeds no training episode used: the mean negative log-likelihood of the expert's actions, the
share the model's argmax gets right, and the mean probability it gives the expert's action (what sampled-action
evaluation draws from). All under the model's full-vocabulary softmax, as the training loss computes it. A train fit
that keeps rising while the held-out fit stays flat means the run memorises its episodes: more steps on the same
data will not raise the score; more episodes, or a regulariser that works, would. For discrete-action tasks
(BabyAI, Atari).

The held-out episodes are collected once (``--scratch``, the same expert as ``jat-policy collect``), from seed
``--heldout-seed`` on; it is refused if that range overlaps the training data's seeds (its ``jat_metadata.json``).

Usage::

    python benchmarks/generalisation.py --data runs/learning/local3/data --task babyai-go-to-local \
        --checkpoints runs/learning/local4/runs/single-babyai-go-to-local/checkpoint-45000,\
    runs/learning/local4/runs/single-babyai-go-to-local/final

(``--checkpoints`` is comma-separated.) The last run's numbers are in the README's learning section.

Writes benchmarks/results/generalisation.{json,png} (``--out``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from learning import machine  # benchmarks/ is on sys.path when a script here runs

from jat_policy.modeling import JatModel
from jat_policy.quickstart import collect_tasks, requested_episodes
from jat_policy.trainers.bc import TrainOptions, load_model_and_processor, load_task_windows
from jat_policy.trainers.sampling import MultiTaskDataset, TaskBatchCollator
from jat_policy.utils.cli_args import parse_args, usage_error

HERE = Path(__file__).resolve().parent
PROG = "benchmarks/generalisation.py"
METRICS = ("nll", "accuracy", "p_expert_action")


@dataclass
class Args:
    """Options of the generalisation benchmark."""

    data: str = field(default="runs/learning/data", metadata={"help": "Training data folder (<data>/<task>/)."})
    task: str = field(default="babyai-go-to-local", metadata={"help": "The task (discrete actions)."})
    checkpoints: list[str] = field(
        default_factory=list, metadata={"help": "Checkpoint folders to measure, comma-separated."}
    )
    episodes: int = field(default=3000, metadata={"help": "Episodes of each side (training data, held-out)."})
    heldout_seed: int = field(default=7_000_000, metadata={"help": "First seed of the held-out episodes."})
    window: int = field(default=64, metadata={"help": "Timesteps per window (the learning benchmark's)."})
    batch_size: int = field(default=128, metadata={"help": "Windows per forward pass."})
    threads: int = field(default=2, metadata={"help": "torch threads."})
    scratch: str = field(default="runs/heldout", metadata={"help": "Where the held-out episodes are collected."})
    out: str = field(default=str(HERE / "results" / "generalisation.json"), metadata={"help": "JSON report."})


def seed_range(metadata_path: Path) -> tuple[int, int]:
    """``[first, last]`` seeds of a collected dataset, from its metadata (base seed + episodes asked for)."""
    metadata = json.loads(metadata_path.read_text())
    episodes = requested_episodes(metadata)
    if episodes is None or "base_seed" not in metadata:
        raise ValueError(f"{metadata_path} lacks the base seed or the split/failed counts: recollect the dataset.")
    return metadata["base_seed"], metadata["base_seed"] + episodes - 1


def heldout_data(args: Args) -> Path:
    """Collects (once) the held-out episodes into ``<scratch>``, after checking their seeds are new."""
    first, last = seed_range(Path(args.data) / args.task / "jat_metadata.json")
    if first <= args.heldout_seed + args.episodes - 1 and args.heldout_seed <= last:
        raise ValueError(
            f"--heldout-seed {args.heldout_seed} overlaps the training data's seeds {first}..{last}: pick a seed "
            f"above {last} so that no held-out episode was trained on."
        )
    folder = Path(args.scratch)
    collect_tasks([args.task], folder, args.episodes, seed=args.heldout_seed, workers=2)
    return folder


class Batches:
    """The first ``episodes`` episodes of a data folder as collated batches (cut into windows as in training)."""

    def __init__(self, args: Args, data: Path | str, model: JatModel, processor) -> None:
        options = TrainOptions(tasks=[args.task], data=str(data), window=args.window, max_episodes=args.episodes)
        windows = load_task_windows(args.task, options, processor, model.config.max_position_embeddings)
        dataset, collate = MultiTaskDataset([windows]), TaskBatchCollator(processor, [windows])
        if "discrete_actions" not in dataset[0]:
            raise ValueError(f"{args.task} has continuous actions: this benchmark measures discrete-action tasks.")
        self.batches = [
            collate([dataset[i] for i in range(start, min(len(dataset), start + args.batch_size))])
            for start in range(0, len(dataset), args.batch_size)
        ]


@torch.no_grad()
def fit(model: JatModel, batches: Batches) -> dict[str, float]:
    """Mean NLL, argmax accuracy and probability of the expert's actions over the batches' real timesteps."""
    totals, count = dict.fromkeys(METRICS, 0.0), 0
    for batch in batches.batches:
        logp = torch.log_softmax(model(**batch).pred_actions.float(), dim=-1)  # (B, L, vocab)
        actions, real = batch["discrete_actions"], batch["attention_mask"].bool()  # (B, L)
        expert = logp.gather(-1, actions[..., None])[..., 0][real]  # (n,)
        totals["nll"] -= float(expert.sum())
        totals["accuracy"] += float((logp.argmax(-1) == actions)[real].sum())
        totals["p_expert_action"] += float(expert.exp().sum())
        count += int(real.sum())
    return {name: value / count for name, value in totals.items()}


def short_labels(paths: list[str]) -> list[str]:
    """The path components that tell checkpoints apart (``local4/final`` for ``runs/learning/local4/.../final``)."""
    parts = [Path(p).parts for p in paths]
    if len(paths) < 2 or len({len(p) for p in parts}) > 1:
        return [Path(p).name if len(paths) == 1 else p for p in paths]
    keep = [i for i in range(len(parts[0])) if len({p[i] for p in parts}) > 1 or i == len(parts[0]) - 1]
    return ["/".join(p[i] for i in keep) for p in parts]


def plot(report: dict, path: Path) -> None:
    """Probability of the expert's action, training data vs held-out, per checkpoint."""
    from matplotlib.figure import Figure

    names = list(report["results"])
    fig = Figure(figsize=(max(5, 1.8 * len(names)), 4))
    ax = fig.subplots()
    x = np.arange(len(names))
    lowest = 1.0
    for offset, side in ((-0.2, "train"), (0.2, "heldout")):
        values = [report["results"][name][side]["p_expert_action"] for name in names]
        ax.bar(x + offset, values, width=0.4, label=side)
        lowest = min(lowest, *values)
    ax.set_xticks(x, short_labels(names), fontsize=7, rotation=15)
    ax.set_ylim(max(0.0, lowest - 0.05), 1.0)
    ax.set_ylabel("mean p(expert action)")
    ax.set_title(f"{report['task']}: fit on {report['episodes']} training vs held-out episodes")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Measures every checkpoint and writes the report."""
    args = parse_args(Args, None, prog=PROG, description=__doc__)
    if not args.checkpoints:
        raise SystemExit(usage_error(PROG, "pass the checkpoints to measure: --checkpoints DIR[,DIR...]"))
    try:
        heldout = heldout_data(args)
    except ValueError as error:
        raise SystemExit(usage_error(PROG, str(error))) from None
    torch.set_num_threads(args.threads)
    first, processor = load_model_and_processor(args.checkpoints[0])  # the checkpoints share one processor
    sides = {"train": Batches(args, args.data, first, processor), "heldout": Batches(args, heldout, first, processor)}
    results = {}
    for index, checkpoint in enumerate(args.checkpoints):
        model = (first if index == 0 else JatModel.from_pretrained(checkpoint)).eval()  # the first is loaded already
        results[checkpoint] = {side: fit(model, batches) for side, batches in sides.items()}
        measured = results[checkpoint]
        row = "  ".join(f"{side} " + " ".join(f"{v:.4f}" for v in res.values()) for side, res in measured.items())
        print(f"{checkpoint}: ({', '.join(METRICS)}) {row}", flush=True)
    report = {
        "task": args.task,
        "episodes": args.episodes,
        "results": results,
        "options": asdict(args),
        "machine": machine(),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    plot(report, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
