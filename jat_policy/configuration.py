"""``JatConfig``: the JAT model configuration (a transformers ``PreTrainedConfig``).

Field names and defaults follow the reference implementation (a GPT-Neo config plus JAT's
multimodal fields), so the released ``jat-project/jat`` ``config.json`` loads unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import GPTNeoConfig


def alternating_attention(num_layers: int) -> list:
    """GPT-Neo ``attention_types`` alternating global and local layers, a global one first (every released JAT's).

    An odd count ends on a global layer. Raises ``ValueError`` for fewer than one layer.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
    types: list = [[["global", "local"], num_layers // 2]] if num_layers >= 2 else []
    return types + [[["global"], 1]] if num_layers % 2 else types


def _preset(
    vocab_size: int, max_position_embeddings: int, hidden_size: int, num_layers: int, num_heads: int, **extra: Any
) -> dict[str, Any]:
    """A preset's overrides of the defaults: GPT-Neo sizes, alternating global/local attention, 212 discrete slots.

    Every released JAT alternates global and local attention over all its layers, and has max_discrete_value =
    148 BabyAI grid ints + 64 mission token slots.
    """
    return dict(
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
        hidden_size=hidden_size,
        num_layers=num_layers,
        attention_types=alternating_attention(num_layers),
        num_heads=num_heads,
        max_discrete_value=212,
        **extra,
    )


# The CPU-trainable presets' 512-token vocabulary holds the offline default tokenizer, discrete actions (<= 18)
# and BabyAI grid values (a GPT-2 tokenizer needs 50257); 16 features per discrete slot are about the released
# model's 768 // 50 = 15.
_CPU_PRESET = dict(discrete_slot_size=16, bos_token_id=None, eos_token_id=None)

REFERENCE_TRAINING_WINDOWS = {"image": 32, "default": 256}
"""The reference's training windows in timesteps (Atari frames, every other domain): the record of a checkpoint
whose ``training_windows`` is ``None`` (the released one)."""

# Presets: name -> overrides of the defaults. "jat-small" is exactly the released model.
_PRESETS: dict[str, dict[str, Any]] = {
    "jat-small": _preset(50257, 512, 768, 12, 12),
    "jat-medium": _preset(50257, 1024, 2048, 24, 16),
    "jat-large": _preset(50257, 2048, 2560, 32, 20),
    "jat-mini": _preset(512, 512, 256, 4, 8, **_CPU_PRESET),
    "jat-tiny": _preset(512, 512, 128, 2, 4, **_CPU_PRESET),
}


# A config above this many parameters is refused before anything is allocated: about 50x jat-small
# (192.7M) and 3.5x the reference's jat-large (2.8B), 40 GB of fp32 weights. Raise it to build bigger models.
MAX_PARAMETERS = 10_000_000_000

# Integer fields that size tensors: each must be >= 1 (0 or less fails deep inside torch otherwise).
_POSITIVE_SIZES = (
    "vocab_size",
    "max_position_embeddings",
    "hidden_size",
    "num_layers",
    "num_heads",
    "window_size",
    "max_continuous_size",
    "max_discrete_value",
    "image_size",
    "num_channels",
    "patch_size",
)
_IMAGE_FEATURES = 128 * 11 * 11  # the conv image encoder's flattened (C, H, W) output before its linear
_IMAGE_CONVS = 193_747  # the image encoder's and decoder's convolutions and channel attention (size-independent)


def estimate_num_parameters(config: JatConfig) -> int:
    """Parameters a :class:`~jat_policy.modeling.JatModel` of ``config`` holds, from its sizes alone.

    Counted from the sizes (within 0.01% of the built model), so a config can be refused before allocating
    it. jat-small: 192.7M.

    Args:
        config: The configuration.

    Returns:
        The number of parameters.
    """
    h, vocab = config.hidden_size, config.vocab_size
    inner = config.intermediate_size or 4 * h
    squeeze = config.discrete_slot_size or h // 50
    block = 4 * h * h + h + 2 * h * inner + inner + h + 4 * h  # attention, MLP, two LayerNorms
    backbone = (vocab + config.max_position_embeddings) * h + config.num_layers * block + 2 * h
    patches = config.num_channels * config.patch_size**2 * h + h
    continuous = 2 * config.max_continuous_size * h + config.max_continuous_size + h
    discrete = 2 * config.max_discrete_value * squeeze * h + 2 * squeeze * h + 9 * h
    images = 2 * _IMAGE_FEATURES * h + _IMAGE_FEATURES + h + _IMAGE_CONVS
    return backbone + patches + continuous + discrete + images + vocab * h  # the last: the action / LM head


@strict(accept_kwargs=True)
class JatConfig(GPTNeoConfig):
    """Configuration of a :class:`~jat_policy.modeling.JatModel`.

    GPT-Neo's fields (``hidden_size``, ``num_layers``, ``attention_types``, ``window_size``, …)
    configure the backbone; the JAT fields configure the modality encoders and the losses.

    Args:
        max_continuous_size: Size every continuous observation (with its reward) and action is
            cyclically expanded to before the shared linear encoder (377 = 376 Humanoid dims + reward).
        max_discrete_value: Number of integer slots of a discrete observation (BabyAI: 148 grid
            ints + 64 mission token ids = 212).
        image_size: Side of captioning images (ViT patch embeddings).
        num_channels: Channels of captioning images.
        patch_size: ViT patch side.
        observation_loss_coef: κ, weight of the next-observation loss; 0 skips observation prediction.
        action_loss_coef: Weight of the action loss.
        discrete_slot_size: Width each discrete-observation slot is squeezed to before the slots are
            flattened into one embedding. ``None`` (the released checkpoint) means the reference's
            ``hidden_size // 50``; small presets set it wider, since 128 // 50 = 2 features cannot tell a
            slot's dozen grid values or mission words apart.
        training_windows: The longest training window the model was fitted on, in timesteps, by observation kind
            (``"image"`` for Atari frames, ``"default"`` for the rest); written by the trainer and used by
            :class:`~jat_policy.policy.JatPolicy` as its default context window. ``None`` (the released
            checkpoint) means the reference's 32 / 256.

    Example:
        >>> from jat_policy import JatConfig
        >>> config = JatConfig.from_preset("jat-tiny")
        >>> config.hidden_size, config.attention_layers
        (128, ['global', 'local'])
    """

    model_type: ClassVar[str] = "jat"

    max_continuous_size: int = 377
    max_discrete_value: int = 18
    image_size: int = 224
    num_channels: int = 3
    patch_size: int = 16
    observation_loss_coef: float | int = 0.005
    action_loss_coef: float | int = 0.995
    tie_word_embeddings: bool = False  # the action / LM head is its own matrix in JAT
    discrete_slot_size: int | None = None
    training_windows: dict | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        # A saved config also stores the expanded `attention_layers`; it is derived, so drop it.
        kwargs.pop("attention_layers", None)
        self._check_sizes()
        super().__post_init__(**kwargs)
        if self.observation_loss_coef < 0 or self.action_loss_coef < 0:
            raise ValueError(
                f"Loss coefficients must be >= 0, got observation_loss_coef={self.observation_loss_coef}, "
                f"action_loss_coef={self.action_loss_coef}."
            )
        if self.discrete_slot_size is not None and self.discrete_slot_size < 1:
            raise ValueError(
                f"discrete_slot_size must be >= 1 (or None for hidden_size // 50), got {self.discrete_slot_size}."
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}.")
        self._check_parameter_count()

    def _check_sizes(self) -> None:
        for name in _POSITIVE_SIZES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        inner = self.intermediate_size
        if inner is not None and (isinstance(inner, bool) or not isinstance(inner, int) or inner < 1):
            raise ValueError(f"intermediate_size must be an integer >= 1 or None (4 * hidden_size), got {inner!r}.")

    def _check_parameter_count(self) -> None:
        count = estimate_num_parameters(self)
        if count > MAX_PARAMETERS:
            raise ValueError(
                f"This config describes a model of {count / 1e9:.1f}B parameters ({count * 4 / 2**30:.0f} GiB in "
                f"fp32; hidden_size={self.hidden_size}, num_layers={self.num_layers}, vocab_size={self.vocab_size}), "
                f"above the {MAX_PARAMETERS / 1e9:.0f}B limit (jat-small: 0.19B). A typo in a size? To build it "
                "anyway, raise jat_policy.configuration.MAX_PARAMETERS."
            )

    def recorded_training_windows(self) -> dict[str, int]:
        """``training_windows`` per kind; the reference's (:data:`REFERENCE_TRAINING_WINDOWS`) where none is set."""
        record = self.training_windows or {}
        return {kind: int(record.get(kind) or reference) for kind, reference in REFERENCE_TRAINING_WINDOWS.items()}

    @classmethod
    def preset_names(cls) -> list[str]:
        """Names accepted by :meth:`from_preset`."""
        return list(_PRESETS)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> JatConfig:
        """Builds a preset configuration.

        Args:
            name: One of ``jat-small`` (the released model, 192,701,771 parameters), ``jat-medium``,
                ``jat-large`` (the reference's bigger presets), ``jat-mini`` or ``jat-tiny`` (small,
                CPU-trainable).
            **overrides: Fields to change, e.g. ``observation_loss_coef=0.0``. A ``num_layers`` without
                ``attention_types`` alternates global and local layers, as every preset does.

        Returns:
            The configuration.
        """
        if name not in _PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(_PRESETS)}.")
        if "num_layers" in overrides and "attention_types" not in overrides:
            overrides["attention_types"] = alternating_attention(overrides["num_layers"])
        return cls(**{**_PRESETS[name], **overrides})
