"""Behaviour cloning of a JAT model on Hub-schema datasets, built on ``transformers.Trainer``.

One command trains from scratch (a preset such as ``jat-tiny``) or fine-tunes a checkpoint, on one CPU, under
``torchrun`` / ``accelerate launch`` (DDP) or with FSDP, with Trainer's TensorBoard logging, checkpoints and
``resume_from_checkpoint``::

    jat-policy train --tasks babyai-go-to-red-ball --data data/ --model jat-tiny --max-steps 2000 --output-dir runs/bc
    torchrun --nproc_per_node 2 -m jat_policy.trainers.bc --tasks metaworld-reach --data data/ --max-steps 100

The recipe follows the reference's ``scripts/train_jat.py``:

- every task's episodes are processed once (rewards shifted, cut into windows of 256 timesteps, 32 for Atari;
  text into windows of ``max_position_embeddings`` tokens), see :mod:`jat_policy.trainers.sampling`;
- every device micro-batch comes from one task, drawn by sampling weight (registry defaults: text x10,
  everything else x1);
- per-task loss weights from the registry follow the reference's **code**: Meta-World 50, MuJoCo 10,
  ``mujoco-pendulum`` (InvertedPendulum) 50, ``mujoco-doublependulum`` (InvertedDoublePendulum) 20. The paper's
  text swaps the last two; we keep the code's values, which trained the released model;
- loss = κ·observation_loss + 0.995·action_loss with κ = ``observation_loss_coef`` (0.005; 0 skips observation
  prediction), AdamW with linear decay, gradient accumulation, bf16 autocast on CUDA GPUs that support it
  (``--bf16 yes`` on CPUs).

Defaults differ from the reference, which trained the 193M jat-small on 8 GPUs with HF's defaults (5e-5, no
warm-up): the learning rate is 1e-3 for small models (hidden_size <= 256: jat-tiny, jat-mini; measured on
GoToRedBall, where 3e-4 learned about 3x slower) and 1e-4 above, with a 2% linear warm-up.

Checkpoints (``checkpoint-N/`` and the final ``final/``) hold ``model.safetensors``, ``config.json``, the
tokenizer and ``processor_config.json``: ``JatModel.from_pretrained``, ``JatProcessor.from_pretrained`` and
``JatPolicy.from_pretrained`` load them. Training arguments are written as JSON (``training_args.json``);
transformers' pickled ``training_args.bin`` is removed. ``training_data.json`` records each task's dataset and
its reference scores, which ``jat-policy evaluate`` normalises with (:mod:`jat_policy.training_data`). The
optimizer / scheduler / RNG files of ``checkpoint-N/`` are transformers' own resume files (``torch.save``; read
back with ``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader
from transformers import PrinterCallback, Trainer

from jat_policy.configuration import JatConfig
from jat_policy.modeling import WEIGHTS_NAME, JatModel
from jat_policy.trainers.options import (
    TrainOptions,
    cpu_supports_bf16,
    default_learning_rate,
    parse_task_values,
    resolve_bf16,
    use_cuda,
)
from jat_policy.trainers.sampling import MultiTaskDataset, TaskBatchSampler

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping, Sequence

    from transformers import TrainerCallback, TrainingArguments

    from jat_policy.processing import JatProcessor
    from jat_policy.trainers.sampling import TaskWindows

logger = logging.getLogger(__name__)

__all__ = [
    "JatTrainer",
    "TrainOptions",
    "cli_main",
    "cpu_supports_bf16",
    "end_distributed",
    "find_last_checkpoint",
    "load_task_windows",
    "resolve_bf16",
    "train",
]

OPTIONS_NAME = "train_options.json"
TRAINING_ARGS_JSON = "training_args.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_TEXT_DOMAIN = "text"


# --------------------------------------------------------------------------------------------------------------
# Model, tasks, data


def load_model_and_processor(
    model: str,
    seed: int = 0,
    observation_loss_coef: float | None = None,
    dropout: float | None = None,
    num_layers: int | None = None,
) -> tuple[JatModel, JatProcessor]:
    """A fresh preset model (seeded) or a checkpoint, with its processor.

    Args:
        model: Preset name (``jat-tiny``...) or checkpoint directory / Hub id.
        seed: Seed of a fresh model's init.
        observation_loss_coef: Overrides κ in the config when given.
        dropout: Overrides the embedding, attention and residual dropout (GPT-Neo's three) when given.
        num_layers: Transformer blocks of a fresh preset model (alternating global / local attention), when given.

    Returns:
        ``(model, processor)``.
    """
    from transformers import set_seed

    from jat_policy.modeling import JatModel
    from jat_policy.processing import JatProcessor

    overrides: dict[str, float] = {}
    if observation_loss_coef is not None:
        overrides["observation_loss_coef"] = observation_loss_coef
    if dropout is not None:
        overrides |= {name: dropout for name in ("embed_dropout", "attention_dropout", "resid_dropout")}
    if num_layers is not None:
        if model not in JatConfig.preset_names():
            raise ValueError(
                f"num_layers={num_layers} sizes a model trained from scratch, but {model!r} is a checkpoint, whose "
                "layers are fixed: drop --num-layers, or pass a preset name as --model."
            )
        overrides["num_layers"] = num_layers  # the preset alternates global and local attention over them
    set_seed(seed)
    if model in JatConfig.preset_names():
        config = JatConfig.from_preset(model, **overrides)
        jat, processor = JatModel(config), JatProcessor.from_config(config)
    else:
        jat = JatModel.from_pretrained(model, **overrides)
        try:
            processor = JatProcessor.from_pretrained(model)
        except OSError:
            logger.warning("%s has no tokenizer files; using the default processor for its config.", model)
            processor = JatProcessor.from_config(jat.config)
    if processor.vocab_size > jat.config.vocab_size:
        raise ValueError(
            f"The tokenizer has {processor.vocab_size} ids but the model's vocabulary is {jat.config.vocab_size}: "
            "missions and text would index past the embedding. Use the checkpoint's own tokenizer."
        )
    return jat.train(), processor


def resolve_task_names(names: list[str], data: str | None) -> list[str]:
    """:func:`jat_policy.tasks.resolve_tasks`; with local data, unknown names pass as user tasks."""
    from jat_policy.tasks import resolve_tasks

    return resolve_tasks(names, allow_unknown=data is not None)


def _task_info(name: str) -> tuple[str, float, float]:
    """(domain, loss weight, sample weight) from the registry; user tasks not registered get ("user", 1, 1)."""
    from jat_policy.tasks import get_task

    try:
        spec = get_task(name)
    except KeyError:
        logger.info("Task %r is not in the registry: loss and sampling weights 1.", name)
        return "user", 1.0, 1.0
    return spec.domain, spec.loss_weight, spec.sample_weight


def default_window(options: TrainOptions, max_position_embeddings: int) -> int:
    """Timesteps per window of non-Atari RL tasks: ``--window``, else ``min(256, max_position_embeddings // 2)``."""
    return options.window or min(256, max_position_embeddings // 2)


def task_window(domain: str, max_position_embeddings: int, options: TrainOptions) -> int:
    """Window length of a task: timesteps for RL, tokens for text."""
    if domain == _TEXT_DOMAIN:
        return max_position_embeddings
    window = options.atari_window if domain == "atari" else default_window(options, max_position_embeddings)
    if 2 * window > max_position_embeddings:
        raise ValueError(
            f"A window of {window} timesteps is {2 * window} tokens, more than the model's "
            f"max_position_embeddings={max_position_embeddings}; pass --window <= {max_position_embeddings // 2}."
        )
    return window


def fitted_windows(
    windows: Sequence[TaskWindows],
    options: TrainOptions,
    max_position_embeddings: int,
    earlier: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The context :class:`~jat_policy.policy.JatPolicy` defaults to: the longest window of each kind trained on.

    A window of ``L`` timesteps fits positions ``0 .. 2L - 1``; positions past the longest one keep their random
    init. BabyAI's bot ends its episodes within 30 steps, so a 64-step context let an episode that had gone astray
    run on into positions never fitted (GoToLocal, two jat-tiny hours, 1,000 sampled episodes each: 32 and 67
    episodes timed out with a 64-step context, 22 and 48 with 30; ``benchmarks/results/go-to-local-context/``). Each
    kind (``"image"``: Atari frames, ``"default"``: every other RL
    task) gets the configured window cut to the longest one of its tasks (even, as contexts roll by halves); a kind
    with no task here keeps the configured window.

    Args:
        windows: This run's tasks.
        options: The run's options (its configured windows).
        max_position_embeddings: The model's positions.
        earlier: For a checkpoint being fine-tuned, the windows its earlier training fitted (kept when longer);
            ``None`` for a fresh model.

    Returns:
        ``{"default": W, "image": W_image}`` in timesteps.
    """
    half = max_position_embeddings // 2
    configured = {"default": default_window(options, max_position_embeddings), "image": options.atari_window}
    longest: dict[str, int] = {}
    for task in windows:
        if task.kind == "rl" and len(task):
            kind = "image" if "image_observations" in task.steps else "default"
            longest[kind] = max(longest.get(kind, 0), int(task.lengths.max()))
    fitted = {}
    for kind, window in configured.items():
        if kind in longest:
            window = min(window, max(longest[kind] - longest[kind] % 2, 2))
        window = max(window, int((earlier or {}).get(kind) or 0))
        fitted[kind] = min(window, half - half % 2)
    return fitted


def load_task_windows(
    name: str, options: TrainOptions, processor: JatProcessor, max_position_embeddings: int
) -> TaskWindows:
    """Loads one task's training split and processes it into windows with its weights.

    Args:
        name: Task name.
        options: Training options (data folder, windows, weight overrides, max_episodes, augment).
        processor: The processor.
        max_position_embeddings: The model's context in tokens.

    Returns:
        The task's windows.
    """
    from jat_policy.data import load_jat_dataset
    from jat_policy.trainers.sampling import build_task_windows

    domain, loss_weight, sample_weight = _task_info(name)
    loss_weight = parse_task_values(options.loss_weights, "loss-weight").get(name, loss_weight)
    sample_weight = parse_task_values(options.sample_weights, "sample-weight").get(name, sample_weight)
    # Text datasets have no episode schema to validate against.
    dataset = load_jat_dataset(name, split="train", path=options.data, validate=domain != _TEXT_DOMAIN)
    if domain == _TEXT_DOMAIN and "text" not in dataset.column_names:
        raise ValueError(
            f"Text task {name!r} needs a 'text' column (and 'images' for captioning); got {dataset.column_names}."
        )
    augment = None
    if options.augment == "mirror" and domain == "babyai":
        from jat_policy.wrappers.babyai import mirror_episodes as augment
    windows = build_task_windows(
        dataset,
        processor,
        task_window(domain, max_position_embeddings, options),
        name,
        loss_weight=loss_weight,
        sample_weight=sample_weight,
        max_episodes=options.max_episodes,
        augment=augment,
    )
    logger.info("%s: %d windows, %d steps/tokens", name, len(windows), windows.num_steps)
    return windows


# --------------------------------------------------------------------------------------------------------------
# Trainer


def _report_to(mode: str) -> list[str]:
    if mode != "auto":
        return [] if mode == "none" else [mode]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return ["tensorboard"]


def build_training_arguments(options: TrainOptions, learning_rate: float) -> TrainingArguments:
    """``transformers.TrainingArguments`` for the options (CPU unless CUDA is there)."""
    from transformers import TrainingArguments

    cuda = use_cuda(options.device)
    return TrainingArguments(
        output_dir=options.output_dir,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.per_device_batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        learning_rate=learning_rate,
        lr_scheduler_type=options.lr_scheduler,
        warmup_steps=options.warmup,
        weight_decay=options.weight_decay,
        max_grad_norm=options.max_grad_norm,
        logging_steps=options.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        seed=options.seed,
        bf16=resolve_bf16(options.bf16, options.device),
        report_to=_report_to(options.report_to),
        use_cpu=not cuda,
        dataloader_num_workers=options.dataloader_num_workers,
        train_sampling_strategy="group_by_length" if options.group_by_length else "random",
        dataloader_pin_memory=cuda,
        remove_unused_columns=False,  # the collator builds exactly the model's inputs
        fsdp=options.fsdp,
        disable_tqdm=not sys.stderr.isatty(),
    )


class JatTrainer(Trainer):
    """``transformers.Trainer`` with single-task batches (:class:`TaskBatchSampler`) and JSON training args.

    Some hooks override private Trainer methods because transformers has no public hook for them (checked
    against the installed transformers 5.x): ``_train_batch_size`` is the batch size Trainer itself uses (it
    can differ from ``args.per_device_train_batch_size`` under ``auto_find_batch_size``); ``_load_from_checkpoint`` and
    ``_save_checkpoint`` are the only places a resume/checkpoint write can be customised; ``_internal_call``
    is ``save_model``'s own signature, passed through unchanged.
    """

    def get_train_dataloader(self) -> DataLoader:
        """Single-task batches from :class:`TaskBatchSampler` for a :class:`MultiTaskDataset`, else Trainer's."""
        dataset = self.train_dataset
        if not isinstance(dataset, MultiTaskDataset):
            return super().get_train_dataloader()
        args = self.args
        grouped = args.train_sampling_strategy == "group_by_length"
        sampler = TaskBatchSampler(
            dataset.task_sizes,
            [task.sample_weight for task in dataset.tasks],
            batch_size=self._train_batch_size,
            # one long epoch: the order is a function of the seed only, so resume and DDP see the same data
            num_batches=args.max_steps * args.gradient_accumulation_steps,
            seed=args.seed if args.data_seed is None else args.data_seed,
            rank=args.process_index,
            world_size=max(1, args.world_size),
            task_lengths=[task.lengths for task in dataset.tasks] if grouped else None,
        )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
        )
        loader = self.accelerator.prepare(loader)
        # The sampler is rank-aware already: make accelerate's BatchSamplerShard a passthrough, as
        # Trainer does for its own rank-aware BatchRebalanceSampler.
        shard = getattr(loader, "batch_sampler", None)
        if shard is not None and getattr(shard, "batch_sampler", None) is sampler:
            shard.num_processes, shard.process_index = 1, 0
        return loader

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        # Strict, alias-aware safetensors load (Trainer's own is non-strict and does not know that the
        # shared wte is stored once); FSDP and other wrapped cases keep Trainer's path.
        weights = Path(resume_from_checkpoint) / WEIGHTS_NAME
        if model is None and isinstance(self.model, JatModel) and weights.is_file():
            self.model.load_jat_weights(weights)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # trainer_state.json, written last, marks a checkpoint complete: when checkpoint-N is written again
        # (a rerun into the same output_dir) a kill must not leave the old one beside new weights.
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            (folder / "trainer_state.json").unlink(missing_ok=True)
        super()._save_checkpoint(model, trial)

    training_data: dict[str, Any] | None = None
    """The ``training_data.json`` record (datasets and their reference scores) saved with every checkpoint."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Trainer's save, with the training arguments as JSON instead of a pickle, and ``training_data.json``."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:  # JSON instead of the pickled TrainingArguments
            target = Path(output_dir or self.args.output_dir)
            (target / "training_args.bin").unlink(missing_ok=True)
            (target / TRAINING_ARGS_JSON).write_text(self.args.to_json_string())
            if self.training_data is not None:
                from jat_policy.training_data import write_training_data

                write_training_data(target, self.training_data)


def _trainer_class() -> type[JatTrainer]:
    """Kept for older callers: the trainer class is :class:`JatTrainer`."""
    return JatTrainer


def find_last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The latest ``checkpoint-N`` under ``output_dir`` that was written completely.

    A run killed while saving leaves a partial folder: transformers writes ``trainer_state.json`` last, and the
    model files must be the ones saved together (:func:`~jat_policy.modeling.check_checkpoint_files`).
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    done = [
        (int(match.group(1)), path)
        for path in root.iterdir()
        if (match := _CHECKPOINT_RE.match(path.name)) and _is_complete_checkpoint(path)
    ]
    return max(done)[1] if done else None


def _is_complete_checkpoint(path: Path) -> bool:
    from jat_policy.modeling import check_checkpoint_files

    if not (path / "trainer_state.json").is_file():
        return False
    try:
        check_checkpoint_files(path)
    except ValueError as err:
        logger.warning("Skipping %s: %s", path, err)
        return False
    return True


def _resume_path(options: TrainOptions) -> str | None:
    if options.resume_from_checkpoint in (None, ""):
        return None
    if options.resume_from_checkpoint == "last":
        last = find_last_checkpoint(options.output_dir)
        if last is None:
            logger.info("No complete checkpoint in %s: starting from scratch.", options.output_dir)
        return None if last is None else str(last)
    path = Path(options.resume_from_checkpoint)
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"{path} is not a complete Trainer checkpoint (no trainer_state.json).")
    from jat_policy.modeling import check_checkpoint_files

    check_checkpoint_files(path)
    return str(path)


def _progress_callbacks(args: TrainingArguments) -> list[TrainerCallback]:
    from jat_policy.trainers.progress import PlainProgressCallback, TensorBoardNotice

    return [TensorBoardNotice(), *([PlainProgressCallback()] if args.disable_tqdm else [])]


def train(options: TrainOptions, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Trains a JAT model by behaviour cloning and saves it.

    Args:
        options: The options (see :class:`TrainOptions`).
        callbacks: Extra ``transformers.TrainerCallback`` objects.

    Returns:
        The final checkpoint directory (``<output_dir>/final``): model, config, tokenizer and processor.

    Under torchrun, call :func:`end_distributed` once training is over, before the script exits.

    Example:
        >>> from jat_policy.trainers.bc import TrainOptions, train
        >>> final = train(TrainOptions(tasks=["babyai-go-to-red-ball"], data="data/", max_steps=100))  # doctest: +SKIP
    """
    import torch

    from jat_policy.trainers.sampling import MultiTaskDataset, TaskBatchCollator
    from jat_policy.training_data import describe_training_data

    options.validate()
    # Task names and local datasets are checked before the model is built: a typo fails in a second.
    names = resolve_task_names(options.tasks, options.data)
    training_data = describe_training_data(names, options.data)
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    model, processor = load_model_and_processor(
        options.model, options.seed, options.observation_loss_coef, options.dropout, options.num_layers
    )
    if options.learning_rate is None:
        options = dataclasses.replace(options, learning_rate=default_learning_rate(model.config.hidden_size))
    args = build_training_arguments(options, options.learning_rate)
    windows = [load_task_windows(name, options, processor, model.config.max_position_embeddings) for name in names]
    # Saved with every checkpoint: JatPolicy's default context is the longest window the model was trained on.
    fine_tuning = options.model not in JatConfig.preset_names()
    earlier = model.config.recorded_training_windows() if fine_tuning else None
    model.config.training_windows = fitted_windows(windows, options, model.config.max_position_embeddings, earlier)
    trainer = JatTrainer(
        model=model,
        args=args,
        train_dataset=MultiTaskDataset(windows),
        data_collator=TaskBatchCollator(processor, windows),
        processing_class=processor,
        callbacks=[*_progress_callbacks(args), *(callbacks or [])],
    )
    if args.disable_tqdm:  # off a terminal: plain progress lines instead of Trainer's dict dumps
        trainer.remove_callback(PrinterCallback)
    trainer.training_data = training_data  # written into every checkpoint, see JatTrainer.save_model
    record = json.dumps(dataclasses.asdict(options), indent=2, sort_keys=True) + "\n"
    if trainer.is_world_process_zero():
        Path(options.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(options.output_dir) / OPTIONS_NAME).write_text(record)
    trainer.train(resume_from_checkpoint=_resume_path(options))
    final = Path(options.output_dir) / "final"
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        from jat_policy.model_card import write_training_card

        (final / OPTIONS_NAME).write_text(record)
        write_training_card(final, options, names)  # README.md, outside the weights' manifest: evaluate updates it
    return final


def cli_main(argv: list[str] | None = None) -> int:
    """``jat-policy train``: parses the options and trains.

    Args:
        argv: Arguments without the program name.

    Returns:
        Exit code 0.
    """
    from jat_policy.utils.cli_args import parse_args

    options = parse_args(TrainOptions, argv, prog="jat-policy train", description=TrainOptions.__doc__ or "")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        final = train(options)
    finally:
        end_distributed()
    print(f"Final checkpoint: {final}")
    return 0


def end_distributed() -> None:
    """Destroys the ``torch.distributed`` process group of a torchrun launch, if any; call it before the process exits.

    ``Trainer`` (through Accelerate) creates the group and never destroys it. Left to interpreter teardown, gloo's
    worker threads can still hold tensors whose release needs the GIL while Python finalises, and a rank aborts
    ("terminate called without an active exception", SIGABRT) after a successful run: a clean-clone CI run of the
    two-process test failed so, and 1 of 40 two-process runs here (2-core AVX2 EPYC, 2026-12-07); with the group
    destroyed, 0 of 120 (the cause is described in pytorch/pytorch PR 179291). A script that calls :func:`train` under
    torchrun should call this at its end, as ``jat-policy train`` does.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":  # `torchrun -m jat_policy.trainers.bc ...`
    sys.exit(cli_main(sys.argv[1:]))
