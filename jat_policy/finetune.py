"""``jat-policy finetune``: a JAT policy for a new environment in one command.

It composes the public steps (the README's CartPole snippet as a command):

1. register the env as a user task (a Gymnasium id or ``module:factory``; a JAT task name is used as is);
2. :func:`jat_policy.data.collect` expert episodes (an SB3 ``.zip``, ``module:callable``, ``bot``,
   ``scripted``, ``random``) with a random-policy reference score;
3. :func:`jat_policy.trainers.bc.train` from a preset or fine-tune a checkpoint;
4. :func:`jat_policy.evaluation.evaluate` the final checkpoint, normalised by the collected scores, with a video of
   the first episode; the results go into the checkpoint's model card.

Layout of ``--output-dir D``: ``D/data/<task>/`` (dataset), ``D/run/final/`` (checkpoint + ``README.md`` card),
``D/results/`` (``evaluation.json``, plots) and ``D/videos/<task>-episode-0.mp4``.

Example::

    jat-policy finetune --env CartPole-v1 --expert my_controllers:balance --episodes 20 --output-dir runs/cartpole
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FinetuneOptions", "FinetuneResult", "cli_main", "finetune", "import_object", "task_name_for"]


@dataclass
class FinetuneOptions:
    """Collect expert episodes on an env, train (or fine-tune) JAT on them, evaluate it, report: one command."""

    env: str = field(
        default="",
        metadata={
            "help": "Gymnasium id (CartPole-v1), a JAT task, or module:factory returning an env (with --video the "
            "factory gets render_mode='rgb_array')"
        },
    )
    expert: str = field(
        default="auto",
        metadata={"help": "SB3 .zip | module:callable (obs -> action) | bot | scripted | random | auto"},
    )
    model: str = field(default="jat-tiny", metadata={"help": "preset to train from scratch, or a checkpoint"})
    episodes: int = field(default=100, metadata={"help": "expert episodes to collect"})
    max_steps: int = field(default=500, metadata={"help": "optimizer steps of behaviour cloning"})
    output_dir: str = field(default="runs/finetune", metadata={"help": "folder for data, run, results, videos"})
    task: str = field(default="", metadata={"help": "task name; empty: made from --env (CartPole-v1 -> cartpole)"})
    episode_steps: int = field(default=0, metadata={"help": "cap episodes at this many env steps (0: the env's)"})
    random_episodes: int = field(default=20, metadata={"help": "random-policy episodes for the reference score"})
    batch_size: int = field(default=8, metadata={"help": "windows per optimizer step"})
    window: int = field(default=0, metadata={"help": "timesteps per training window (0: the trainer's default)"})
    eval_episodes: int = field(default=10, metadata={"help": "evaluation episodes"})
    eval_envs: int = field(default=4, metadata={"help": "envs stepped together during evaluation"})
    seed: int = field(default=0, metadata={"help": "seed of collection, training and evaluation"})
    trust_pickle: bool = field(
        default=False, metadata={"help": "let SB3 unpickle the expert .zip (runs its code: trusted files only)"}
    )
    video: bool = field(default=True, metadata={"help": "record the first evaluation episode as MP4"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        task: The task name the env was registered under.
        checkpoint: The final checkpoint (with its ``README.md`` model card).
        evaluation: The :class:`~jat_policy.evaluation.EvaluationResult`.
        evaluation_json: Where the evaluation's JSON report is.
        plots: The plots written.
        video: The MP4 of the first evaluation episode, if recorded.
    """

    task: str
    checkpoint: Path
    evaluation: Any
    evaluation_json: Path
    plots: list[Path]
    video: Path | None


def import_object(spec: str, what: str) -> Any:
    """``"package.module:name"`` -> the object (the form of ``--env`` factories and ``--expert`` callables).

    Args:
        spec: ``module:attribute`` (the attribute may be dotted).
        what: What the object is for, named in errors (``"--env"``).

    Returns:
        The object.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{what} {spec!r}: expected module:name, e.g. my_envs:make_env.")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{what} {spec!r}: cannot import module {module_name!r} ({err}).") from err
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {spec!r}: module {module_name!r} has no {attribute!r}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what} {spec!r} is a {type(obj).__name__}, not a callable.")
    return obj


def task_name_for(env: str) -> str:
    """A task name for an env: ``"CartPole-v1"`` -> ``"cartpole"``, ``"my_envs:make_maze"`` -> ``"make_maze"``."""
    base = env.rpartition(":")[2].rpartition(".")[2] if ":" in env else env.rpartition("/")[2]
    name = re.sub(r"-v\d+$", "", base).lower()
    return re.sub(r"[^\w.-]+", "-", name).strip("-_.") or "user-env"


def _register(options: FinetuneOptions) -> str:
    """Registers ``--env`` as a user task (a JAT or already registered task is used as is); returns its name."""
    import gymnasium as gym

    from jat_policy.tasks import get_task, register_task

    try:
        return get_task(options.task or options.env).name
    except KeyError:
        pass
    name = options.task or task_name_for(options.env)
    if ":" in options.env:
        register_task(name, env_fn=import_object(options.env, "--env"), overwrite=True)
    elif options.env in gym.registry:
        register_task(name, options.env, overwrite=True)
    else:
        raise ValueError(
            f"--env {options.env!r} is neither a Gymnasium id nor a JAT task nor module:factory (a Gymnasium id "
            "from a plugin package needs that package imported: use module:factory)."
        )
    return name


def _expert(options: FinetuneOptions, task: str) -> Any:
    from jat_policy.data.experts import expert_option

    if ":" in options.expert and not Path(options.expert).exists() and not options.trust_pickle:
        return import_object(options.expert, "--expert")
    return expert_option(options.expert, task, options.trust_pickle)


def _train(options: FinetuneOptions, task: str, data: Path) -> Path:
    from jat_policy.trainers.bc import TrainOptions, train

    return train(
        TrainOptions(
            tasks=[task],
            data=str(data),
            model=options.model,
            output_dir=str(Path(options.output_dir) / "run"),
            max_steps=options.max_steps,
            per_device_batch_size=options.batch_size,
            window=options.window or None,
            seed=options.seed,
            save_steps=options.max_steps,
            save_total_limit=1,
        )
    )


def finetune(options: FinetuneOptions) -> FinetuneResult:
    """Collects, trains and evaluates (see the module docstring); prints progress lines on the way.

    Args:
        options: The options.

    Returns:
        The checkpoint, the evaluation and the paths of its report, plots and video.
    """
    from jat_policy.data import collect
    from jat_policy.evaluation import evaluate, jat_policy_factory, plot_results
    from jat_policy.model_card import update_model_card

    if not options.env:
        raise ValueError("--env is required: a Gymnasium id (CartPole-v1), module:factory or a JAT task name.")
    out = Path(options.output_dir)
    task = _register(options)
    episode_steps = options.episode_steps or None
    print(f"[finetune] collecting {options.episodes} episodes of {task} with expert {options.expert}")
    collected = collect(task, _expert(options, task), options.episodes, out=out / "data", seed=options.seed,
                        max_steps=episode_steps, random_episodes=options.random_episodes, overwrite=True,
                        progress=options.progress)  # fmt: skip
    random = "-" if collected.random_score is None else f"{collected.random_score:.4g}"
    print(f"[finetune] {collected.path}: expert return {collected.expert_score:.4g}, random {random}")
    print(f"[finetune] training {options.model} for {options.max_steps} steps")
    checkpoint = _train(options, task, out / "data")
    result = evaluate(jat_policy_factory(checkpoint), [task], n_episodes=options.eval_episodes,
                      n_envs=options.eval_envs, seed=options.seed + 10_000_000, max_episode_steps=episode_steps,
                      dataset_path={task: out / "data" / task}, progress=options.progress,
                      model_info={"checkpoint": str(checkpoint), "base": options.model},
                      video_dir=out / "videos" if options.video else None)  # fmt: skip
    evaluation_json = result.save_json(out / "results" / "evaluation.json")
    plots = plot_results(result, out / "results")
    update_model_card(checkpoint, result)
    video = result.tasks[task].video
    return FinetuneResult(task, checkpoint, result, evaluation_json, plots, Path(video) if video else None)


def _report(done: FinetuneResult) -> None:
    from jat_policy.evaluation.report import format_results

    print()
    print(format_results(done.evaluation))
    print(f"results: {done.evaluation_json}")
    for plot in done.plots:
        print(f"plot: {plot}")
    if done.video is not None:
        print(f"video: {done.video}")
    print(f"checkpoint: {done.checkpoint} (model card: {done.checkpoint / 'README.md'})")


def cli_main(argv: list[str] | None = None) -> int:
    """``jat-policy finetune --env ... --expert ... --model ... --episodes N --max-steps M --output-dir D``."""
    from jat_policy.utils.cli_args import parse_args, usage_error

    options = parse_args(FinetuneOptions, argv, prog="jat-policy finetune")
    if not options.env:
        return usage_error("jat-policy finetune", "--env is required (a Gymnasium id, module:factory or a JAT task)")
    _report(finetune(options))
    return 0
