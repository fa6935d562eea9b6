"""Options of ``jat-policy train`` and the rules that resolve them (bf16 per device, learning rate, task values).

:class:`TrainOptions` is the command line's dataclass (see :mod:`jat_policy.utils.cli_args`) and
:func:`jat_policy.trainers.bc.train`'s one argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jat_policy.precision import cpu_supports_bf16  # re-exported: the trainer's bf16 rule uses it

__all__ = [
    "TrainOptions",
    "cpu_supports_bf16",
    "default_learning_rate",
    "parse_task_values",
    "resolve_bf16",
]


@dataclass
class TrainOptions:
    """Options of ``jat-policy train`` (behaviour cloning of a JAT model)."""

    tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Tasks to train on: comma-separated names or domain keywords (atari, babyai, metaworld, mujoco, "
            "text), e.g. babyai-go-to-red-ball,metaworld-reach. Names outside the registry are accepted with "
            "--data (user tasks)."
        },
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "Folder of local datasets (<data>/<task>/, as `jat-policy collect` writes); omit to read "
            "jat-project/jat-dataset from the Hugging Face Hub."
        },
    )
    model: str = field(
        default="jat-tiny",
        metadata={
            "help": "A preset to train from scratch (jat-tiny, jat-mini, jat-small, ...) or a checkpoint "
            "directory / Hub id to fine-tune."
        },
    )
    output_dir: str = field(default="runs/jat-bc", metadata={"help": "Where checkpoints, logs and final/ go."})
    max_steps: int = field(default=1000, metadata={"help": "Optimizer steps to train for."})
    per_device_batch_size: int = field(default=8, metadata={"help": "Windows per device per micro-batch."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak AdamW learning rate (default: 1e-3 for hidden_size <= 256, i.e. jat-tiny/jat-mini; "
            "1e-4 for larger models)."
        },
    )
    lr_scheduler: str = field(
        default="linear",
        metadata={
            "help": "Learning-rate schedule after warm-up.",
            "choices": ["linear", "cosine", "constant", "constant_with_warmup"],
        },
    )
    warmup: float = field(default=0.02, metadata={"help": "Warm-up: a fraction of max-steps if < 1, else steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 disables)."})
    observation_loss_coef: float | None = field(
        default=None,
        metadata={
            "help": "kappa, weight of the next-observation loss; 0 skips observation prediction "
            "(default: the model config's, 0.005)."
        },
    )
    dropout: float | None = field(
        default=None,
        metadata={
            "help": "Dropout probability on the token embeddings, attention weights and residual branches "
            "(default: the model config's; 0.0 in every preset, as in the released model)."
        },
    )
    num_layers: int | None = field(
        default=None,
        metadata={
            "help": "Transformer blocks of a preset trained from scratch, alternating global and local attention "
            "like every preset (default: the preset's; jat-tiny 2, jat-mini 4)."
        },
    )
    window: int | None = field(
        default=None,
        metadata={
            "help": "Timesteps per training window for non-Atari RL tasks "
            "(default: min(256, max_position_embeddings // 2))."
        },
    )
    atari_window: int = field(default=32, metadata={"help": "Timesteps per training window for Atari tasks."})
    sample_weights: list[str] | None = field(
        default=None, metadata={"help": "Sampling-weight overrides, task=weight comma-separated (default: registry)."}
    )
    loss_weights: list[str] | None = field(
        default=None, metadata={"help": "Loss-weight overrides, task=weight comma-separated (default: registry)."}
    )
    max_episodes: int | None = field(
        default=None, metadata={"help": "Use at most this many episodes (rows) per task."}
    )
    augment: str = field(
        default="none",
        metadata={
            "help": "Training-data augmentation: none, or mirror: every BabyAI task also trains on the left-right "
            "mirror image of each of its episodes (jat_policy.wrappers.babyai.mirror_episodes; twice the layouts, "
            "and a change to the paper's data).",
            "choices": ["none", "mirror"],
        },
    )
    bf16: str = field(
        default="auto",
        metadata={
            "help": "bf16 autocast: auto (on a CUDA GPU with bf16; fp32 on CPUs, where it did not speed up "
            "jat-tiny), yes or no.",
            "choices": ["auto", "yes", "no"],
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the model init and of the data order."})
    logging_steps: int = field(default=10, metadata={"help": "Log the loss every N optimizer steps."})
    save_steps: int = field(default=500, metadata={"help": "Write checkpoint-N/ every N optimizer steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoint-N/."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "'last' (latest complete checkpoint in output-dir, or a fresh start if none) or a "
            "checkpoint folder."
        },
    )
    report_to: str = field(
        default="auto", metadata={"help": "Logging integration: auto (tensorboard when installed), tensorboard, none."}
    )
    fsdp: str = field(
        default="", metadata={"help": "FSDP mode for multi-process runs, e.g. 'full_shard auto_wrap' (default: off)."}
    )
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    num_threads: int | None = field(default=None, metadata={"help": "torch intra-op threads (default: torch's)."})
    device: str = field(
        default="auto",
        metadata={
            "help": "auto (a CUDA GPU when there, else the CPU), cpu or cuda.",
            "choices": ["auto", "cpu", "cuda"],
        },
    )
    group_by_length: bool = field(
        default=True,
        metadata={
            "help": "Batch windows of similar lengths together (16 batches sorted at a time): same data, far less "
            "padding when episode lengths vary (BabyAI)."
        },
    )

    def validate(self) -> None:
        """Raises ``ValueError`` on inconsistent options."""
        if not self.tasks:
            raise ValueError(
                "No tasks: pass --tasks, e.g. --tasks babyai-go-to-red-ball (or a domain: --tasks mujoco)."
            )
        positive = ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "atari_window", "save_steps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        if self.window is not None and self.window <= 0:
            raise ValueError(f"window must be > 0 timesteps, got {self.window}.")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.observation_loss_coef is not None and self.observation_loss_coef < 0:
            raise ValueError(f"observation_loss_coef must be >= 0, got {self.observation_loss_coef}.")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout}.")
        if self.num_layers is not None and self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 transformer block, got {self.num_layers}.")
        if self.augment not in ("none", "mirror"):
            raise ValueError(f"augment must be 'none' or 'mirror', got {self.augment!r}.")
        if self.augment == "mirror" and not any(task.startswith("babyai") for task in self.tasks):
            raise ValueError(
                f"augment='mirror' mirrors BabyAI episodes, but no task is BabyAI: {self.tasks}. Drop --augment or "
                "add a babyai-* task."
            )
        if self.bf16 not in ("auto", "yes", "no"):
            raise ValueError(f"bf16 must be 'auto', 'yes' or 'no', got {self.bf16!r}.")


def parse_task_values(items: list[str] | None, what: str, unit: str = "weight") -> dict[str, float]:
    """``["task=value", ...]`` -> ``{task: value}``; a bad or negative entry raises ``ValueError`` naming ``what``."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name or not weight >= 0:
            raise ValueError(
                f"Bad {what} override {item!r}: expected task={unit} with {unit} >= 0, e.g. metaworld-reach=2."
            )
        out[name.strip()] = weight
    return out


def default_learning_rate(hidden_size: int) -> float:
    """1e-3 for the small CPU presets (hidden_size <= 256), 1e-4 for larger models."""
    return 1e-3 if hidden_size <= 256 else 1e-4


def use_cuda(device: str) -> bool:
    """Whether ``--device`` trains on a CUDA GPU: ``auto`` when one is visible; ``cuda`` without one is an error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu' or 'cuda'.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda': torch sees no CUDA GPU (a CPU-only torch build, or no driver).")
    return device != "cpu" and torch.cuda.is_available()


def resolve_bf16(mode: str, device: str = "auto") -> bool:
    """Whether ``--bf16 mode`` trains in bf16 here: yes / no, or auto.

    auto is bf16 on a CUDA GPU that supports it and fp32 on every CPU: on a CPU with native bf16 (AVX-512 BF16 and
    AMX), a side-by-side jat-tiny learning run took 0.97x the fp32 steps/s for the same scores
    (benchmarks/results/bf16_training.json), so bf16 there is a choice (``yes``: 1.6x for jat-small's steps in
    benchmarks/results/train_throughput.json), not a default. ``device`` is the ``--device`` option (see
    :func:`use_cuda`): auto is fp32 when it puts training on the CPU.
    """
    import torch

    if mode != "auto":
        return mode == "yes"
    return bool(use_cuda(device) and torch.cuda.is_bf16_supported())
