"""Precision fidelity: each precision's deterministic actions and scores beside fp32's, on trained checkpoints.

For every task of a trained checkpoint and every precision (``JatPolicy(..., precision=...)``, quantised at load
from the same fp32 safetensors):

* **agreement**: the fp32 policy drives ``--episodes`` episodes (deterministic actions); at every step each other
  precision sees the same observation with the same context (its ``a_{t-1}`` forced to fp32's), so the comparison
  isolates the arithmetic: the share of equal argmax actions (discrete) and max / mean ``|Δ|`` of the clipped
  actions (continuous);
* **scores**: each precision then runs its own ``--episodes`` deterministic episodes (same seeds) through
  :func:`jat_policy.evaluation.evaluate`; expert-normalised with the reference scores of the training data
  (as benchmarks/learning.py does), mean and 95% bootstrap CI (rliable). The goal (issue 15): no precision's
  mean outside fp32's CI.

Results: ``benchmarks/results/precision_fidelity.json`` and a Markdown table ``precision_fidelity.md``.

Usage::

    python benchmarks/precision_fidelity.py                          # the checkpoint trained below (~15 min)
    python benchmarks/precision_fidelity.py --checkpoint DIR --data DATA_DIR --tasks a b --episodes 100

The committed table's checkpoint: one jat-tiny over a discrete task and two continuous ones, trained by the learning
benchmark for 20 minutes in fp32 on both cores (``runs/fidelity/``), then this script with its defaults::

    OMP_NUM_THREADS=2 python benchmarks/learning.py --configs multi --threads 2 --workers 2 --bf16 no \
        --multi-tasks babyai-go-to-red-ball,metaworld-reach,mujoco-pendulum --budget-minutes 20 --episodes 20000 \
        --metaworld-episodes 1000 --mujoco-episodes 100 --scratch runs/fidelity/scratch \
        --results runs/fidelity/results
    python benchmarks/precision_fidelity.py --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from machine_info import cpu_info, key_flags  # benchmarks/ is on sys.path when a script here runs

from jat_policy.evaluation import evaluate, jat_policy_factory
from jat_policy.evaluation.scores import aggregate_scores
from jat_policy.precision import int8_engine, kv_cache_dtype

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CHECKPOINT = ROOT / "runs" / "fidelity" / "scratch" / "runs" / "multi" / "final"  # jat-tiny, trained as above
DATA = ROOT / "runs" / "fidelity" / "scratch" / "data"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(CHECKPOINT), help="trained checkpoint directory (fp32)")
    parser.add_argument("--data", default=str(DATA), help="folder with one dataset per task (reference scores)")
    parser.add_argument("--tasks", nargs="+", default=["babyai-go-to-red-ball", "metaworld-reach", "mujoco-pendulum"])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "int8"], choices=["bf16", "int8"])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per task and precision (>= 50)")
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20_000_000, help="episode k starts from reset(seed + k)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="e.g. cuda (int8 is CPU only: pass --precisions bf16)")
    parser.add_argument("--out", default=str(RESULTS / "precision_fidelity"))
    return parser.parse_args()


class Lockstep:
    """An SB3-style predictor: fp32 acts; every other policy predicts on the same inputs and fp32's past actions."""

    def __init__(self, reference, others: dict) -> None:
        self.reference, self.others = reference, others
        self.states: dict = dict.fromkeys(others)
        self.equal = dict.fromkeys(others, 0)
        self.count = 0
        self.abs_diff: dict[str, list[np.ndarray]] = {name: [] for name in others}

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        past = None if state is None else state.last_actions  # fp32's a_{t-1}, forced on the others
        actions, state = self.reference.predict(observation, state, episode_start, deterministic=True)
        for name, policy in self.others.items():
            mine = self.states[name]
            if mine is not None and past is not None:
                mine = replace(mine, last_actions=past.to(mine.last_actions.dtype))
            theirs, self.states[name] = policy.predict(observation, mine, episode_start, deterministic=True)
            if isinstance(policy.action_space, spaces.Discrete):
                self.equal[name] += int((theirs == actions).sum())
            else:
                self.abs_diff[name].append(np.abs(theirs.astype(np.float64) - actions).reshape(len(actions), -1))
        self.count += len(actions)
        return actions, state

    def report(self) -> dict:
        out = {}
        for name, policy in self.others.items():
            if isinstance(policy.action_space, spaces.Discrete):
                out[name] = {"equal_argmax_share": self.equal[name] / self.count, "steps": self.count}
            else:
                diff = np.concatenate(self.abs_diff[name])
                out[name] = {
                    "max_abs_diff": float(diff.max()),
                    "mean_abs_diff": float(diff.mean()),
                    "steps": len(diff),
                }
        return out


def score_summary(result, task: str, seed: int) -> dict:
    res = result.tasks[task]
    scores = res.expert_normalized.scores
    agg = aggregate_scores(np.asarray(scores)[:, None], reps=2000, seed=seed)
    return {
        "mean": float(np.mean(scores)),
        "ci95": list(agg.mean_ci),
        "mean_return": res.mean_return,
        "success_rate": None if res.successes is None else float(np.mean(res.successes)),
        "episodes": len(scores),
    }


def evaluate_task(args, task: str, data: Path) -> dict:
    factory = {
        p: jat_policy_factory(args.checkpoint, precision=p, device=args.device) for p in ["fp32", *args.precisions]
    }
    common = {
        "n_episodes": args.episodes,
        "n_envs": args.n_envs,
        "seed": args.seed,
        "deterministic": True,
        "dataset_path": {task: data / task},
        "progress": False,
    }
    lockstep: dict = {}

    def build_lockstep(name: str, env):
        lockstep["it"] = Lockstep(factory["fp32"](name, env), {p: factory[p](name, env) for p in args.precisions})
        return lockstep["it"]

    start = time.perf_counter()
    fp32 = evaluate(build_lockstep, [task], **common)  # fp32's own scores, with the others in lockstep
    entry = {"agreement": lockstep["it"].report(), "scores": {"fp32": score_summary(fp32, task, args.seed)}}
    for name in args.precisions:
        entry["scores"][name] = score_summary(evaluate(factory[name], [task], **common), task, args.seed)
    low, high = entry["scores"]["fp32"]["ci95"]
    for name in args.precisions:
        entry["scores"][name]["inside_fp32_ci"] = bool(low <= entry["scores"][name]["mean"] <= high)
    entry["seconds"] = time.perf_counter() - start
    return entry


def table(report: dict) -> str:
    lines = [
        "| task | precision | equal argmax (discrete) | max / mean abs diff (continuous) | normalised score "
        "(95% CI) | inside fp32's CI |",
        "|---|---|---|---|---|---|",
    ]
    for task, entry in report["tasks"].items():
        for name, score in entry["scores"].items():
            agree = entry["agreement"].get(name, {})
            equal = f"{agree['equal_argmax_share']:.1%}" if "equal_argmax_share" in agree else "-"
            diff = f"{agree['max_abs_diff']:.3g} / {agree['mean_abs_diff']:.3g}" if "max_abs_diff" in agree else "-"
            ci = f"{score['mean']:.3f} ({score['ci95'][0]:.3f}-{score['ci95'][1]:.3f})"
            inside = "reference" if name == "fp32" else ("yes" if score["inside_fp32_ci"] else "**no**")
            lines.append(f"| {task} | {name} | {equal} | {diff} | {ci} | {inside} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    name, flags = cpu_info()
    report = {
        "benchmark": "precision_fidelity",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": name or platform.processor(),
            "cpu_count": os.cpu_count(),
            "cpu_key_flags": key_flags(flags),
            "torch": torch.__version__,
            # what int8 means on this CPU (both change its numerics): its KV cache dtype and its kernels' engine
            "int8_kv_cache_dtype": str(kv_cache_dtype("int8")).removeprefix("torch."),
            "int8_engine": int8_engine(),
            "threads": args.threads,
            "device": args.device,
        },
        "load_average_start": list(os.getloadavg()),
        "options": vars(args),
        "method": (
            "agreement: fp32 drives deterministic episodes; each precision predicts on the same observations with "
            "a_{t-1} forced to fp32's. scores: each precision's own deterministic episodes (same seeds), "
            "expert-normalised with the training data's random/expert scores; 95% CI = rliable bootstrap of the mean."
        ),
        "tasks": {},
    }
    for task in args.tasks:
        print(f"[{task}]", flush=True)
        report["tasks"][task] = evaluate_task(args, task, Path(args.data))
        print(json.dumps(report["tasks"][task]["agreement"]), flush=True)
        print(
            {
                k: (round(v["mean"], 3), [round(c, 3) for c in v["ci95"]])
                for k, v in report["tasks"][task]["scores"].items()
            }
        )
    report["load_average_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(report))
    print(table(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
