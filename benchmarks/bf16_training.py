"""bf16 autocast vs fp32 training, side by side: steps/s and what the model learns in the same wall-clock time.

Decides whether ``jat-policy train --bf16 auto`` should switch bf16 on where the CPU has native bf16 (AVX-512 BF16
or AMX). The same learning run (``benchmarks/learning.py``: same data, seed, budget and LR schedule) is started
twice at once, one process per precision on one thread each, so both see the same machine load; the data are
collected once beforehand. The report gives each run's optimizer steps per second, the bf16 / fp32 ratio, and each
task's expert-normalised score +- 95% CI.

It takes the learning benchmark's options (``benchmarks/learning.py --help``); its defaults are ``DEFAULTS`` below.

Usage::

    python benchmarks/bf16_training.py                     # 20 minutes per run (both at once), ~30 min in all
    python benchmarks/bf16_training.py --budget-minutes 1 --episodes 200 --eval-episodes 50   # a smoke run

Writes benchmarks/results/bf16_training.{json,png}; each run's own learning.json lies in a subfolder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from learning import Args, collect_data, machine  # benchmarks/ is on sys.path when a script here runs

from jat_policy.trainers.bc import cpu_supports_bf16
from jat_policy.utils.cli_args import parse_args

HERE = Path(__file__).resolve().parent
MODES = {"bf16": "yes", "fp32": "no"}


# The learning benchmark's options this comparison runs with unless the command line says otherwise: one multi-task
# model on a BabyAI and a Meta-World task, 20 minutes, one thread each (both runs share the 2 cores).
DEFAULTS = [
    "--configs", "multi",
    "--multi-tasks", "babyai-go-to-red-ball,metaworld-reach",
    "--episodes", "20000",
    "--metaworld-episodes", "1000",
    "--mujoco-episodes", "100",
    "--budget-minutes", "20",
    "--threads", "1",
    "--scratch", "runs/bf16",
    "--results", str(HERE / "results"),
]  # fmt: skip


def learning_command(argv: list[str], args: Args, data: Path, name: str) -> list[str]:
    """The learning benchmark's command line for one precision: the options given, then this run's own."""
    return [
        sys.executable,
        str(HERE / "learning.py"),
        *DEFAULTS,
        *argv,
        "--bf16", MODES[name],
        "--data", str(data),
        "--scratch", str(Path(args.scratch) / name),
        "--results", str(Path(args.results) / "bf16_training" / name),
    ]  # fmt: skip


def summarise(runs: dict[str, dict]) -> dict:
    """steps/s per run, their ratio, and per-task score +- 95% CI per run."""
    speed = {name: run["steps_per_second"] for name, run in runs.items()}
    tasks = {}
    for task in runs["fp32"]["tasks"]:
        tasks[task] = {
            name: {
                "expert_normalized": run["tasks"][task]["expert_normalized"],
                "ci95": 1.96 * (run["tasks"][task]["expert_normalized_se"] or 0.0),
                "success_rate": run["tasks"][task]["success_rate"],
            }
            for name, run in runs.items()
        }
    return {
        "steps_per_second": speed,
        "steps_done": {name: run["steps_done"] for name, run in runs.items()},
        "bf16_over_fp32_steps_per_second": speed["bf16"] / speed["fp32"],
        "tasks": tasks,
    }


def plot(summary: dict, title: str, path: Path) -> None:
    """Left: steps/s per precision; right: score +- 95% CI per task and precision."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    speed_ax, score_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    names = list(MODES)
    speed_ax.bar(names, [summary["steps_per_second"][n] for n in names], color=["tab:orange", "tab:blue"])
    speed_ax.set_ylabel("optimizer steps / s (1 thread)")
    speed_ax.set_title(f"bf16 / fp32 = {summary['bf16_over_fp32_steps_per_second']:.2f}", fontsize=9)
    tasks = list(summary["tasks"])
    x = np.arange(len(tasks))
    for offset, name, color in ((-0.2, "bf16", "tab:orange"), (0.2, "fp32", "tab:blue")):
        rows = [summary["tasks"][t][name] for t in tasks]
        means = [r["expert_normalized"] or 0.0 for r in rows]
        score_ax.bar(x + offset, means, 0.4, yerr=[r["ci95"] for r in rows], capsize=3, color=color, label=name)
    score_ax.set_xticks(x, tasks, fontsize=8)
    score_ax.set_ylabel("expert-normalised (95% CI)")
    score_ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Collects once, runs both precisions at once, writes the side-by-side report."""
    argv = sys.argv[1:]
    prog = "benchmarks/bf16_training.py"
    doc = f"{__doc__}\nThis script's defaults, which replace those listed below: {' '.join(DEFAULTS)}"
    args = parse_args(Args, DEFAULTS + argv, prog=prog, description=doc)
    if args.data or args.configs != ["multi"]:
        print(f"{prog}: error: --data and --configs are this script's to set (see {prog} --help)", file=sys.stderr)
        raise SystemExit(2)
    data = Path(args.scratch) / "data"
    collect_data(args, args.multi_tasks, data)  # once, before both runs
    procs = {name: subprocess.Popen(learning_command(argv, args, data, name)) for name in MODES}
    codes = {name: proc.wait() for name, proc in procs.items()}
    if any(codes.values()):
        raise SystemExit(f"a learning run failed: exit codes {codes}")
    runs = {}
    for name in MODES:
        report = json.loads((Path(args.results) / "bf16_training" / name / "learning.json").read_text())
        runs[name] = report["results"]["multi"]
    summary = summarise(runs)
    info = machine()
    report = {
        "summary": summary,
        "options": asdict(args),
        "machine": {**info, "torch_threads": 1, "native_bf16": cpu_supports_bf16()},
        "notes": "Both runs at once, one thread each, same data/seed/budget; steps/s = optimizer steps / train time.",
    }
    out = Path(args.results)
    (out / "bf16_training.json").write_text(json.dumps(report, indent=2) + "\n")
    native = "native bf16" if report["machine"]["native_bf16"] else "bf16 emulated"
    title = f"{info['cpu']} ({native}), {args.budget_minutes:g} min per run, side by side"
    plot(summary, title, out / "bf16_training.png")
    print(f"steps/s: bf16 {summary['steps_per_second']['bf16']:.2f}, fp32 {summary['steps_per_second']['fp32']:.2f}")
    print(f"bf16 / fp32 steps per second: {summary['bf16_over_fp32_steps_per_second']:.2f} ({native})")
    for task, row in summary["tasks"].items():
        cells = [f"{n} {row[n]['expert_normalized']:.3f} +- {row[n]['ci95']:.3f}" for n in MODES]
        print(f"{task:<28} " + "   ".join(cells))
    print(f"results: {out / 'bf16_training.json'}, plot: {out / 'bf16_training.png'}")


if __name__ == "__main__":
    main()
