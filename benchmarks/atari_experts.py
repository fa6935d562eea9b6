r"""Raw scores of the Atari RAM experts (jat_policy.data.atari_experts) beside the paper's expert and random.

Each game is played whole (all lives, ``make_env``'s Atari stack: ALE v5, no sticky actions, frame skip 4, up
to 30 no-ops on reset) with unclipped rewards, from ``env.reset(seed=seed + i)``; the 95% interval is
1.96 standard errors. Results: benchmarks/results/atari_experts.json.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/atari_experts.py --games 10
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from machine_info import cpu_info  # benchmarks/ is on sys.path when a script here runs

from jat_policy.data.experts import make_expert
from jat_policy.tasks import get_task
from jat_policy.utils.cli_args import parse_args
from jat_policy.wrappers import make_env


@dataclass
class Args:
    """Options of the Atari expert benchmark."""

    tasks: list[str] = field(default_factory=lambda: ["atari-pong", "atari-breakout"], metadata={"help": "Tasks."})
    games: int = field(default=10, metadata={"help": "Whole games per expert."})
    seed: int = field(default=0, metadata={"help": "Game i starts from env.reset(seed=seed + i)."})
    results: str = field(default="benchmarks/results/atari_experts.json", metadata={"help": "Output JSON."})


def play(task: str, games: int, seed: int, save: Callable[[dict], None]) -> dict:
    """Plays ``games`` whole games with the task's RAM expert; returns raw scores, lengths and timing.

    ``save`` gets the summary after every game, so a long run leaves its finished games on disk.
    """
    env, expert = make_env(task), make_expert("ram", task)
    scores: list[float] = []
    lengths: list[int] = []
    start = time.perf_counter()
    for i in range(games):
        obs, _ = env.reset(seed=seed + i)
        expert.reset(env, seed + i)
        score, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(expert(obs))
            score, steps, done = score + float(reward), steps + 1, terminated or truncated
        scores.append(score)
        lengths.append(steps)
        print(f"{task} game {i}: {score:g} in {steps} steps", flush=True)
        save(summary(task, expert.name, scores, lengths, time.perf_counter() - start))
    env.close()
    return summary(task, expert.name, scores, lengths, time.perf_counter() - start)


def summary(task: str, name: str, scores: list[float], lengths: list[int], seconds: float) -> dict:
    """Mean, 95% interval and the paper's reference scores of the games played so far."""
    values = np.asarray(scores)
    spec = get_task(task)
    return {
        "expert": name,
        "scores": scores,
        "lengths": lengths,
        "mean": float(values.mean()),
        "ci95": float(1.96 * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None,
        "seconds": seconds,
        "paper_expert": spec.expert_score,
        "paper_random": spec.random_score,
        "human": spec.human_score,
        "paper_jat": spec.paper_jat_score,
    }


def main() -> None:
    """Plays every task and writes the JSON."""
    args = parse_args(Args, None, prog="benchmarks/atari_experts.py", description=__doc__)
    results: dict[str, dict] = {}
    report = {
        "results": results,
        "options": asdict(args),
        "env": "make_env(task): ALE v5, repeat_action_probability=0, frame skip 4, noop_max 30, whole games, raw",
        "machine": cpu_info()[0],
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)

    for task in args.tasks:

        def save(partial: dict, task: str = task) -> None:
            results[task] = partial
            out.write_text(json.dumps(report, indent=2) + "\n")

        save(play(task, args.games, args.seed, save))
    print(f"{'task':<16} {'RAM expert':>16} {'paper expert':>13} {'random':>8} {'human':>8}")
    for task, r in results.items():
        ours = f"{r['mean']:.1f} ± {r['ci95'] or 0:.1f}"
        print(f"{task:<16} {ours:>16} {r['paper_expert']:>13.1f} {r['paper_random']:>8.1f} {r['human']:>8.1f}")


if __name__ == "__main__":
    main()
