"""``jat-policy collect``: the command line of :func:`jat_policy.data.collect.collect`."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import field
from typing import Any

from jat_policy.data.collect import CollectResult, collect
from jat_policy.data.experts import expert_option


@dataclasses.dataclass
class CollectOptions:
    """Collect expert demonstrations into a Hub-schema dataset (<out>/<task>/ + jat_metadata.json)."""

    task: str = field(default="", metadata={"help": "task name (babyai-go-to-red-ball) or a Gymnasium id"})
    episodes: int = field(default=100, metadata={"help": "successful episodes to collect"})
    out: str = field(default="data", metadata={"help": "parent folder; data goes to <out>/<task>/"})
    expert: str = field(
        default="auto",
        metadata={
            "help": "bot | scripted | ram | random | SB3 .zip | auto (BabyAI bot, Meta-World scripted, Atari ram)"
        },
    )
    trust_pickle: bool = field(
        default=False,
        metadata={"help": "let SB3 unpickle the expert .zip's pickled entries (runs its code: trusted files only)"},
    )
    test_fraction: float = field(default=0.1, metadata={"help": "share of episodes in the test split"})
    seed: int = field(default=0, metadata={"help": "episode i uses seed + i"})
    workers: int = field(
        default=0, metadata={"help": "worker processes (0: all cores, or 1 under 20 episodes; 1: this process)"}
    )
    max_steps: int = field(default=0, metadata={"help": "truncate episodes after this many steps (0: env limit)"})
    random_episodes: int = field(default=100, metadata={"help": "episodes of a random policy for the random score"})
    format: str = field(default="disk", metadata={"help": "output format", "choices": ["disk", "parquet"]})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing dataset"})
    push_to_hub: str = field(default="", metadata={"help": "also upload to this Hub dataset repo (config = task)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def cli_main(argv: list[str]) -> int:
    """``jat-policy collect``: collects, writes and summarises a dataset."""
    from jat_policy.utils.cli_args import parse_args, usage_error

    options = parse_args(CollectOptions, argv, prog="jat-policy collect")
    if not options.task:
        return usage_error("jat-policy collect", "--task is required (e.g. --task babyai-go-to-red-ball)")
    try:
        result = _collect_from_options(options)
    except KeyboardInterrupt:
        print("\njat-policy collect: interrupted; no partial dataset was written.", file=sys.stderr)
        return 130
    meta = result.metadata
    success = f", success {result.success_rate:.1%}" if result.success_rate is not None else ""
    random = f", random {result.random_score:.4g}" if result.random_score is not None else ""
    print(
        f"Wrote {meta['splits']['train']['episodes']} train + {meta['splits']['test']['episodes']} test episodes "
        f"({meta['collection']['steps']} steps, {meta['collection']['seconds']:.1f} s) to {result.path}: "
        f"expert return {result.expert_score:.4g}{random}{success}, {result.n_failed} failed episodes dropped."
    )
    return 0


def _expert_from_options(options: CollectOptions) -> Any:
    """``--expert`` with ``--trust-pickle`` applied (:func:`~jat_policy.data.experts.expert_option`)."""
    return expert_option(options.expert, options.task, options.trust_pickle)


def _collect_from_options(options: CollectOptions) -> CollectResult:
    return collect(
        options.task,
        _expert_from_options(options),
        options.episodes,
        out=options.out,
        test_fraction=options.test_fraction,
        seed=options.seed,
        workers=options.workers if options.workers > 0 or options.episodes >= 20 else 1,
        max_steps=options.max_steps or None,
        random_episodes=options.random_episodes,
        format=options.format,
        overwrite=options.overwrite,
        push_to_hub_repo=options.push_to_hub or None,
        progress=options.progress,
    )
