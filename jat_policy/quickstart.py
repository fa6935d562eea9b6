"""``jat-policy demo``: the offline quickstart, end to end on a CPU.

1. Collect expert demonstrations in the Hub's schema: BabyAI GoToRedBall with minigrid's bot and
   Meta-World reach with its scripted policy (reference scores are measured on the way).
2. Train one tiny JAT on both tasks by behaviour cloning (``transformers.Trainer``).
3. Evaluate it with :func:`jat_policy.evaluation.evaluate`, normalising against the collected expert
   and random scores, and print a table plus the paths of the plots and of one short GIF per task (its first
   evaluation episode).

Everything is real: the numbers printed come from rollouts of the model just trained.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jat_policy.utils.cli_args import parse_args

DEMO_TASKS = ("babyai-go-to-red-ball", "metaworld-reach")


@dataclass
class DemoOptions:
    """Options of ``jat-policy demo``."""

    out_dir: str = field(default="quickstart", metadata={"help": "Folder for data, checkpoints and results."})
    tasks: list[str] = field(default_factory=lambda: list(DEMO_TASKS), metadata={"help": "Tasks to learn."})
    episodes: int = field(default=1000, metadata={"help": "Expert episodes collected per BabyAI (or other) task."})
    metaworld_episodes: int = field(
        default=300, metadata={"help": "Expert episodes per Meta-World task (100 steps each, slower to simulate)."}
    )
    preset: str = field(default="jat-tiny", metadata={"help": "Model preset (or a checkpoint dir to fine-tune)."})
    max_steps: int = field(default=1500, metadata={"help": "Optimizer steps of behaviour cloning."})
    batch_size: int = field(default=16, metadata={"help": "Windows per optimizer step."})
    window: int = field(default=64, metadata={"help": "Timesteps per training window."})
    eval_episodes: int = field(default=50, metadata={"help": "Evaluation episodes per task."})
    eval_envs: int = field(default=8, metadata={"help": "Environments stepped together during evaluation."})
    seed: int = field(default=0, metadata={"help": "Seed of collection, training and evaluation."})
    workers: int = field(default=1, metadata={"help": "Worker processes for collection (0: all cores)."})
    overwrite: bool = field(default=False, metadata={"help": "Re-collect and re-train even if outputs exist."})


def requested_episodes(metadata: Mapping[str, Any]) -> int | None:
    """Episodes a stored collection was asked for: those kept in its splits plus the failed ones dropped."""
    try:
        kept = sum(split["episodes"] for split in metadata["splits"].values())
        return int(kept + metadata["failed"]["count"])
    except (KeyError, TypeError):
        return None


def collect_tasks(
    tasks: list[str],
    data_dir: Path,
    episodes: int | Mapping[str, int],
    *,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    experts: dict[str, Any] | None = None,
    test_fraction: float = 0.1,
) -> dict[str, Any]:
    """Collects expert episodes for each task and returns their scores.

    A dataset already on disk is reused when it was collected with the episode count, seed and test split asked
    for; otherwise it is collected again.

    Args:
        tasks: Task names.
        data_dir: Parent folder of the datasets (``<data_dir>/<task>/``).
        episodes: Episodes per task, or ``{task: episodes}``.
        seed: Base seed; task ``i`` uses seeds from ``seed + 1_000_000·i``.
        workers: Worker processes.
        overwrite: Re-collect datasets that exist.
        experts: ``{task: expert}`` (a name, a ``.zip`` path or a callable) overriding the default ``"auto"``
            expert (bot / scripted).
        test_fraction: Share of each task's episodes (the last ones) held out in its ``test`` split.

    Returns:
        ``{task: scores}`` as stored in each dataset's metadata.
    """
    from jat_policy.data import collect

    summary = {}
    for i, task in enumerate(tasks):
        existing = data_dir / task / "jat_metadata.json"
        n_episodes = episodes[task] if isinstance(episodes, Mapping) else episodes
        task_seed = seed + 1_000_000 * i
        if existing.is_file() and not overwrite:
            metadata = json.loads(existing.read_text())
            split = metadata.get("collection", {}).get("test_fraction")
            held = requested_episodes(metadata), metadata.get("base_seed"), split
            if held == (n_episodes, task_seed, test_fraction):
                print(f"[collect] {task}: reusing {existing.parent}")
                summary[task] = metadata["scores"]
                continue
            print(
                f"[collect] {task}: {existing.parent} holds {held[0]} episodes from seed {held[1]} with a test split "
                f"of {held[2]}, not the {n_episodes} from seed {task_seed} with {test_fraction} asked for: "
                "collecting again"
            )
        start = time.perf_counter()
        result = collect(
            task,
            (experts or {}).get(task, "auto"),
            n_episodes,
            out=data_dir,
            seed=task_seed,
            workers=workers,
            random_episodes=50,
            overwrite=True,
            test_fraction=test_fraction,
        )
        print(
            f"[collect] {task}: {n_episodes} episodes in {time.perf_counter() - start:.0f}s, "
            f"expert return {result.expert_score:.3f}, random {result.random_score:.3f}, "
            f"success {result.success_rate}"
        )
        summary[task] = result.metadata["scores"]
    return summary


def _train(options: DemoOptions, data_dir: Path, run_dir: Path) -> Path:
    from jat_policy.trainers.bc import TrainOptions, train

    final = run_dir / "final"
    if (final / "model.safetensors").is_file() and not options.overwrite:
        print(f"[train] reusing {final}")
        return final
    train_options = TrainOptions(
        tasks=list(options.tasks),
        data=str(data_dir),
        model=options.preset,
        output_dir=str(run_dir),
        max_steps=options.max_steps,
        per_device_batch_size=options.batch_size,
        window=options.window,
        seed=options.seed,
        save_steps=max(options.max_steps // 3, 1),
    )
    start = time.perf_counter()
    path = train(train_options)
    print(f"[train] {options.max_steps} steps in {time.perf_counter() - start:.0f}s -> {path}")
    return path


def _normalised_mean(res: Any) -> float | None:
    scores = res.expert_normalized.scores
    return None if scores is None else float(scores.mean())


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Runs collect → train → evaluate and returns the summary that is also written to ``results.json``.

    Args:
        options: The demo options.

    Returns:
        A summary with the checkpoint path, the evaluation JSON path, the plot paths and per-task scores.
    """
    from jat_policy.evaluation import evaluate, jat_policy_factory, plot_results
    from jat_policy.evaluation.report import format_results
    from jat_policy.evaluation.video import gif_from_mp4
    from jat_policy.model_card import update_model_card

    out = Path(options.out_dir)
    data_dir, run_dir, results_dir = out / "data", out / "run", out / "results"
    episodes = {
        t: options.metaworld_episodes if t.startswith("metaworld-") else options.episodes for t in options.tasks
    }
    collected = collect_tasks(
        list(options.tasks),
        data_dir,
        episodes,
        seed=options.seed,
        workers=options.workers,
        overwrite=options.overwrite,
    )
    checkpoint = _train(options, data_dir, run_dir)
    print(f"[evaluate] {options.eval_episodes} episodes per task, {options.eval_envs} envs")
    result = evaluate(
        jat_policy_factory(checkpoint, context_window=options.window),
        list(options.tasks),
        n_episodes=options.eval_episodes,
        n_envs=options.eval_envs,
        seed=options.seed + 10_000_000,  # evaluation seeds differ from the training episodes'
        dataset_path={task: data_dir / task for task in options.tasks},
        model_info={"checkpoint": str(checkpoint), "preset": options.preset},
        video_dir=results_dir / "videos",
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = result.save_json(results_dir / "evaluation.json")
    plots = plot_results(result, results_dir)
    gifs = [gif_from_mp4(res.video, results_dir / f"{task}.gif") for task, res in result.tasks.items() if res.video]
    card = update_model_card(checkpoint, result)
    print()
    print(format_results(result))
    print(f"results: {json_path}")
    for plot in plots:
        print(f"plot: {plot}")
    for gif in gifs:
        print(f"gif: {gif}")
    print(f"model card: {card}")
    summary = {
        "options": asdict(options),
        "checkpoint": str(checkpoint),
        "evaluation": str(json_path),
        "plots": [str(p) for p in plots],
        "gifs": [str(g) for g in gifs],
        "collected_scores": collected,
        "scores": {
            task: {"mean_return": res.mean_return, "expert_normalized": _normalised_mean(res)}
            for task, res in result.tasks.items()
        },
    }
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def cli_main(argv: list[str] | None = None) -> int:
    """``jat-policy demo [options]``."""
    options = parse_args(DemoOptions, argv, prog="jat-policy demo", description=__doc__)
    run_demo(options)
    return 0
