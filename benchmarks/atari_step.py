"""One Atari training step of jat-tiny, fp32 vs bf16 autocast, side by side: why the four-domain run trains in bf16.

An Atari batch of the learning benchmark's four-domain configuration is 64 windows of 4 timesteps of 84x84x4 frames
(256 frames through the image encoder, and through the image decoder when the observation loss is on). Each
iteration is forward + backward + AdamW step on the same random batch; fp32 and bf16 (``torch.autocast``, as
``--bf16 yes`` trains) iterations are interleaved, so both see the same machine load, and the median CPU seconds per
step are reported (``time.process_time``: on the shared 2-core box, wall time would measure the neighbours too).
With and without the observation loss (``observation_loss_coef`` 0.005, the model's default, and 0).

Usage::

    python benchmarks/atari_step.py                 # ~2 min on one thread
    python benchmarks/atari_step.py --iters 2       # a smoke run

Writes benchmarks/results/atari_step.{json,png}; the JSON holds the machine and its AVX/AMX flags.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from learning import machine  # benchmarks/ is on sys.path when a script here runs

from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel

RESULTS = Path(__file__).parent / "results"
MODES = ("fp32", "bf16")


def atari_batch(batch: int, steps: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A processed Atari batch: frames scaled to [-1, 1], ``(B, L, 4, 84, 84)``, Breakout's 4 actions."""
    return {
        "image_observations": torch.rand(batch, steps, 4, 84, 84, generator=generator) * 2 - 1,
        "discrete_actions": torch.randint(0, 4, (batch, steps), generator=generator),
        "rewards": torch.zeros(batch, steps),
        "attention_mask": torch.ones(batch, steps, dtype=torch.long),
    }


def step(model: JatModel, optimizer: torch.optim.Optimizer, batch: dict, mode: str) -> float:
    """One training step; returns its CPU seconds."""
    start = time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else nullcontext():
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.process_time() - start


def measure(observation_loss_coef: float, args: argparse.Namespace) -> dict:
    """Median CPU seconds per step for each mode, the two modes interleaved iteration by iteration."""
    torch.manual_seed(args.seed)
    config = JatConfig.from_preset(args.preset, observation_loss_coef=observation_loss_coef)
    models = {mode: JatModel(config).train() for mode in MODES}
    models["bf16"].load_state_dict(models["fp32"].state_dict())  # the same weights in both
    optimizers = {mode: torch.optim.AdamW(m.parameters(), lr=1e-3) for mode, m in models.items()}
    batch = atari_batch(args.batch_size, args.window, torch.Generator().manual_seed(args.seed))
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i in range(args.warmup + args.iters):
        for mode in MODES:
            seconds = step(models[mode], optimizers[mode], batch, mode)
            if i >= args.warmup:
                times[mode].append(seconds)
    median = {mode: statistics.median(t) for mode, t in times.items()}
    return {
        "observation_loss_coef": observation_loss_coef,
        "median_step_s": median,
        "step_s": times,
        "bf16_speedup": median["fp32"] / median["bf16"],
    }


def plot(report: dict, path: Path) -> None:
    """Seconds per step, fp32 beside bf16, with and without the observation loss."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    rows = report["results"]
    for offset, mode, color in ((-0.2, "fp32", "tab:blue"), (0.2, "bf16", "tab:orange")):
        ax.bar([i + offset for i in range(len(rows))], [r["median_step_s"][mode] for r in rows], 0.4, label=mode,
               color=color)  # fmt: skip
    labels = [f"obs. loss {r['observation_loss_coef']:g}\nbf16 {r['bf16_speedup']:.2f}x faster" for r in rows]
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("CPU s per training step")
    cfg = report["config"]
    ax.set_title(f"{cfg['preset']}, {cfg['batch_size']} x {cfg['window']} Atari frames, {cfg['threads']} thread; "
                 f"{report['machine']['cpu']}", fontsize=8)  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Measures both settings and writes benchmarks/results/atari_step.{json,png}."""
    parser = argparse.ArgumentParser(prog="benchmarks/atari_step.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="jat-tiny", help="Model preset.")
    parser.add_argument("--batch-size", type=int, default=64, help="Windows per step (the learning benchmark's).")
    parser.add_argument("--window", type=int, default=4, help="Timesteps per Atari window (the four-domain run's).")
    parser.add_argument("--iters", type=int, default=8, help="Timed steps per mode and setting.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed steps first.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the weights and the batch.")
    parser.add_argument("--out", default=str(RESULTS), help="Results folder.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "benchmark": "atari_step",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "torch": torch.__version__,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "results": [measure(coef, args) for coef in (0.005, 0.0)],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "atari_step.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "atari_step.png")
    for row in report["results"]:
        fp32, bf16 = row["median_step_s"]["fp32"], row["median_step_s"]["bf16"]
        print(f"observation loss {row['observation_loss_coef']:g}: fp32 {fp32:.2f} s, bf16 {bf16:.2f} s per step, "
              f"bf16 {row['bf16_speedup']:.2f}x faster")  # fmt: skip
    print(f"results: {out / 'atari_step.json'}, plot: {out / 'atari_step.png'}")


if __name__ == "__main__":
    main()
