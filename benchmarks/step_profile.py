r"""Where a behaviour-cloning step's time goes: data, discrete-slot encoder, backbone, head + loss, optimiser.

The learning benchmark's single configuration (``benchmarks/learning.py``: jat-tiny, 64 windows of <= 64 timesteps
per batch, AdamW, gradient clipping at 1) on one BabyAI task's bot data, on one thread. Each step runs the model's
own pieces in the order ``JatModel._forward_rl`` does, with the tensor between two pieces detached, so that the
forward **and** the backward of every piece are timed on their own and the gradients are the full model's:

- ``data``: sampler + dataset rows + ``TaskBatchCollator`` (``JatProcessor.pad``);
- ``encoder``: ``embed_observations`` (the discrete-slot encoder of the 212 slots, with the reward);
- ``action_embed``: ``embed_actions`` (``wte``) and the interleave;
- ``backbone``: ``JatTransformer`` (positions, attention biases, blocks, final LayerNorm);
- ``head_loss``: action head (``single_discrete_decoder``) and the masked cross-entropy;
- ``optimizer``: gradient clipping, ``AdamW.step`` and ``zero_grad``.

Every precision in ``--modes`` (fp32; bf16 autocast as ``--bf16 yes`` trains) runs the same batches, interleaved
step by step so both see the same machine load. The JSON also holds the length statistics of the task's windows
(real timesteps vs the padded batch), the whole-step time of a plain ``model(**batch)`` step for comparison, and
the steps/s of the real ``train()`` loop (``transformers.Trainer``) on the same options.

Usage::

    python benchmarks/step_profile.py --data runs/learning/local2/data --task babyai-go-to-local
    python benchmarks/step_profile.py --data runs/learning/local2/data --steps 10 --trainer-steps 0  # quick look

Writes benchmarks/results/step_profile.{json,png} (``--out``). Times are CPU seconds of the process
(``time.process_time``), not wall time: the 2-core box is shared, and the neighbours' load would otherwise be
measured as much as the step.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from learning import Args as LearningArgs  # benchmarks/ is on sys.path when a script here runs
from learning import machine, train_options
from transformers import TrainerCallback

from jat_policy.losses import compute_ce_loss
from jat_policy.trainers.bc import TrainOptions, load_model_and_processor, load_task_windows, train
from jat_policy.trainers.sampling import MultiTaskDataset, TaskBatchCollator, TaskBatchSampler
from jat_policy.utils.cli_args import parse_args

HERE = Path(__file__).resolve().parent
SECTIONS = ("data", "encoder", "action_embed", "backbone", "head_loss", "optimizer")


@dataclass
class Args:
    """Options of the step profile."""

    data: str = field(default="runs/learning/local2/data", metadata={"help": "Dataset folder (<data>/<task>/)."})
    task: str = field(default="babyai-go-to-local", metadata={"help": "The task profiled."})
    preset: str = field(default="jat-tiny", metadata={"help": "Model preset."})
    batch_size: int = field(default=64, metadata={"help": "Windows per step."})
    window: int = field(default=64, metadata={"help": "Timesteps per training window."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    max_episodes: int | None = field(default=20_000, metadata={"help": "Episodes loaded (None: all)."})
    group_by_length: bool = field(default=True, metadata={"help": "Batches of similar lengths (the trainer's)."})
    steps: int = field(default=50, metadata={"help": "Timed steps per precision (after --warmup)."})
    warmup: int = field(default=5, metadata={"help": "Untimed steps first."})
    modes: list[str] = field(
        default_factory=lambda: ["fp32:direct", "fp32", "bf16"],
        metadata={"help": "Precisions fp32 / bf16; ':direct' applies the slot encoder as written (the baseline)."},
    )
    trainer_steps: int = field(
        default=150, metadata={"help": "Steps of the real train() loop timed per precision (0: skip)."}
    )
    threads: int = field(default=1, metadata={"help": "torch threads."})
    seed: int = field(default=0, metadata={"help": "Seed of the model and the batch order."})
    out: str = field(default=str(HERE / "results" / "step_profile.json"), metadata={"help": "JSON report."})


def autocast(mode: str):
    """bf16 autocast as the Trainer applies it (``--bf16 yes``), or nothing for fp32."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if mode.startswith("bf16") else nullcontext()


def direct_observations(model, batch: dict) -> torch.Tensor:
    """The discrete-slot encoder applied as written (embedding, per-slot linear, ReLU, flatten, linear), with the
    reward: what ``JatModel`` computed before ``jat_policy.discrete_slots``, kept here as the side-by-side baseline.
    """
    embed, squeeze, act, flatten, project = model.multi_discrete_encoder
    slots = torch.nn.functional.embedding(batch["discrete_observations"], squeeze(embed.weight))  # (B, L, X, S)
    x = project(flatten(act(slots)))  # (B, L, H - 1)
    return torch.cat((x, batch["rewards"].unsqueeze(-1).to(x.dtype)), dim=-1)  # (B, L, H)


def clock() -> float:
    """CPU seconds of this process: on a shared 2-core box, wall time measures the neighbours' load as much as us.

    One torch thread and no DataLoader workers run everything on this thread, so CPU time is the step's cost.
    """
    return time.process_time()


class Timer:
    """Accumulates CPU seconds per section of the current step."""

    def __init__(self) -> None:
        self.step: dict[str, float] = defaultdict(float)

    def run(self, name: str, fn: Callable[[], object]) -> object:
        start = clock()
        out = fn()
        self.step[name] += clock() - start
        return out


def leaf(t: torch.Tensor) -> torch.Tensor:
    """The tensor cut from its graph, as the next piece's input that collects its gradient."""
    return t.detach().requires_grad_(True)


def profiled_step(model, optimizer, batch: dict, mode: str, timer: Timer) -> float:
    """One training step of ``JatModel._forward_rl``'s pieces for discrete observations/actions, each timed."""
    mask, weights = batch["attention_mask"], batch["loss_weight"]
    with autocast(mode):
        if mode.endswith(":direct"):
            obs = timer.run("encoder", lambda: direct_observations(model, batch))  # (B, L, H)
        else:
            obs = timer.run(
                "encoder",
                lambda: model.embed_observations(
                    batch["rewards"], discrete_observations=batch["discrete_observations"]
                ),
            )  # (B, L, H)
        act = timer.run("action_embed", lambda: model.embed_actions(discrete_actions=batch["discrete_actions"]))
        obs_in, act_in = leaf(obs), leaf(act)
        tokens = timer.run("action_embed", lambda: model.interleave(obs_in, act_in))  # (B, 2L, H)
        tokens_in = leaf(tokens)
        token_mask = mask.repeat_interleave(2, dim=1)  # (B, 2L)
        hidden = timer.run("backbone", lambda: model.transformer(tokens_in, token_mask)[0])  # (B, 2L, H)
        hidden_in = leaf(hidden)

        def head_loss() -> torch.Tensor:
            logits = model.decode_actions(hidden_in[:, ::2], None)  # (B, L, vocab)
            action_loss = compute_ce_loss(logits, batch["discrete_actions"], mask, weights)
            return model.config.action_loss_coef * action_loss  # discrete observations: no observation loss

        loss = timer.run("head_loss", head_loss)
    # Backward, piece by piece in reverse order, each passing its input's gradient to the piece before.
    timer.run("head_loss", loss.backward)
    timer.run("backbone", lambda: hidden.backward(hidden_in.grad))
    timer.run("action_embed", lambda: tokens.backward(tokens_in.grad))
    timer.run("action_embed", lambda: act.backward(act_in.grad))
    timer.run("encoder", lambda: obs.backward(obs_in.grad))

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timer.run("optimizer", step)
    return float(loss.detach())


def plain_step(model, optimizer, batch: dict, mode: str) -> float:
    """The same step as one ``model(**batch)`` call (what Trainer's training_step runs); returns CPU seconds."""
    start = clock()
    with autocast(mode):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return clock() - start


def window_stats(lengths: np.ndarray, sampler: TaskBatchSampler, batches: int) -> dict:
    """Real timesteps per window and the padding the sampler's batches carry."""
    real, padded = 0, 0
    for i, (_, windows) in enumerate(sampler.global_batches()):
        if i == batches:
            break
        real += int(lengths[windows].sum())
        padded += int(lengths[windows].max()) * len(windows)
    return {
        "windows": len(lengths),
        "length_mean": float(lengths.mean()),
        "length_percentiles": {str(p): float(np.percentile(lengths, p)) for p in (50, 90, 99, 100)},
        "batches_measured": batches,
        "real_fraction_of_batch_steps": real / padded,
        "batch_length_mean": padded / (batches * sampler.batch_size),
    }


class StepClock(TrainerCallback):
    """CPU seconds between consecutive optimizer steps of the real Trainer loop (data loading included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last: float | None = None

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D102
        now = clock()
        if self.last is not None:
            self.times.append(now - self.last)
        self.last = now


def learning_args(args: Args) -> LearningArgs:
    """The learning benchmark's options with this profile's values for the fields both have (preset, batch size,
    window, LR, seed, threads, data): the trainer is then run exactly as ``benchmarks/learning.py`` runs it."""
    shared = {f.name for f in fields(LearningArgs)} & {f.name for f in fields(Args)}
    return LearningArgs(**{name: getattr(args, name) for name in shared})


def trainer_rate(args: Args, mode: str) -> dict:
    """Steps/s of ``train()`` itself (Trainer loop, logging, callbacks) with the learning benchmark's options."""
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        options = train_options(
            learning_args(args),
            [args.task],
            args.data,
            tmp,
            max_steps=args.trainer_steps,
            save_steps=10**9,
            bf16="yes" if mode == "bf16" else "no",
            max_episodes=args.max_episodes,
            report_to="none",
            group_by_length=args.group_by_length,
        )
        start = time.perf_counter()
        train(options, callbacks=[clock])
        total = time.perf_counter() - start
    steady = clock.times[args.warmup :]
    return {
        "steps": len(clock.times),
        "median_step_ms": 1e3 * statistics.median(steady),
        "steps_per_second_steady": 1.0 / statistics.mean(steady),  # per CPU second
        "wall_seconds_with_setup": total,
    }


def batches_of(sampler, dataset, collator) -> Iterator[tuple[dict, float]]:
    """Collated batches in the sampler's order with the CPU seconds each took to build."""
    for indices in sampler:
        start = clock()
        batch = collator([dataset[i] for i in indices])
        yield batch, clock() - start


def summarise(times: list[dict[str, float]]) -> dict:
    """Median CPU milliseconds per section and each section's share of the summed step."""
    med = {name: 1e3 * statistics.median(step.get(name, 0.0) for step in times) for name in SECTIONS}
    total = sum(med.values())
    return {
        "median_ms": med,
        "share": {name: value / total for name, value in med.items()},
        "step_ms": total,
        "steps_per_second": 1e3 / total,
    }


def main() -> None:
    """Profiles the step and writes the JSON report."""
    args = parse_args(Args, None, prog="benchmarks/step_profile.py", description=__doc__)
    torch.set_num_threads(args.threads)
    probe = TrainOptions(tasks=[args.task], data=args.data, window=args.window, max_episodes=args.max_episodes)
    models, optimizers = {}, {}
    for mode in args.modes:  # one model per precision, same init
        models[mode], processor = load_model_and_processor(args.preset, args.seed)
        optimizers[mode] = torch.optim.AdamW(  # fused: transformers' default optimizer (adamw_torch_fused)
            models[mode].parameters(), lr=args.learning_rate, weight_decay=0.0, fused=True
        )
    windows = load_task_windows(args.task, probe, processor, models[args.modes[0]].config.max_position_embeddings)
    dataset, collator = MultiTaskDataset([windows]), TaskBatchCollator(processor, [windows])
    total = args.warmup + args.steps

    def sampler(batches: int = total) -> TaskBatchSampler:
        lengths = [windows.lengths] if args.group_by_length else None
        return TaskBatchSampler([len(windows)], [1.0], args.batch_size, batches, args.seed, task_lengths=lengths)

    stats = window_stats(windows.lengths, sampler(200), 200)
    per_mode: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    plain: dict[str, list[float]] = {mode: [] for mode in args.modes}
    for i, (batch, data_s) in enumerate(batches_of(sampler(), dataset, collator)):
        for mode in args.modes:  # interleaved: the same batch and machine load for every precision
            timer = Timer()
            timer.step["data"] = data_s
            profiled_step(models[mode], optimizers[mode], batch, mode, timer)
            plain_s = plain_step(models[mode], optimizers[mode], batch, mode) if ":" not in mode else float("nan")
            if i >= args.warmup:
                per_mode[mode].append(dict(timer.step))
                plain[mode].append(plain_s + data_s)
    report = {
        "task": args.task,
        "window_stats": stats,
        "sections": {mode: summarise(times) for mode, times in per_mode.items()},
        "plain_step_ms_with_data": {mode: 1e3 * statistics.median(v) for mode, v in plain.items()},
        "trainer": {m: trainer_rate(args, m) for m in args.modes if ":" not in m} if args.trainer_steps else None,
        "options": asdict(args),
        "machine": machine(),
        "torch": torch.__version__,
    }
    base = report["sections"][args.modes[0]]["steps_per_second"]
    report["steps_per_second_vs_" + args.modes[0]] = {
        mode: res["steps_per_second"] / base for mode, res in report["sections"].items()
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    plot(report, Path(args.out).with_suffix(".png"))
    print_report(report)


def plot(report: dict, path: Path) -> None:
    """One stacked bar per precision / encoder: median CPU milliseconds of each section of a step."""
    from matplotlib.figure import Figure

    modes = list(report["sections"])
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    bottom = np.zeros(len(modes))
    for name in SECTIONS:
        values = np.array([report["sections"][mode]["median_ms"][name] for mode in modes])
        ax.bar(modes, values, bottom=bottom, label=name)
        bottom += values
    ax.set_ylabel("CPU ms per training step (median)")
    ax.set_title(f"{report['task']}, {report['options']['preset']}, batch {report['options']['batch_size']}, 1 thread")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_report(report: dict) -> None:
    """A table of median milliseconds and shares per section and precision."""
    stats = report["window_stats"]
    print(
        f"{report['task']}: {stats['windows']} windows, mean {stats['length_mean']:.1f} steps, percentiles "
        f"{stats['length_percentiles']}; batches {stats['batch_length_mean']:.1f} steps long, "
        f"{stats['real_fraction_of_batch_steps']:.0%} real"
    )
    for mode, res in report["sections"].items():
        parts = "  ".join(f"{k} {v:.1f}ms ({res['share'][k]:.0%})" for k, v in res["median_ms"].items())
        print(f"{mode}: {res['step_ms']:.1f} ms/step ({res['steps_per_second']:.1f}/s): {parts}")
        print(f"{mode}: plain model(**batch) step + data {report['plain_step_ms_with_data'][mode]:.1f} ms")
        if report["trainer"] and mode in report["trainer"]:
            t = report["trainer"][mode]
            print(f"{mode}: train() {t['steps_per_second_steady']:.1f} steps/s (median {t['median_step_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
