"""Episodes and steps -> the tensors :class:`~jat_policy.modeling.JatModel` takes.

:class:`JatProcessor` follows the reference processor (JAT's ``processing_jat.py``) with its known bugs fixed:

- rewards are shifted per episode (``[0] + r[:-1]``), so the reward fed with ``o_t`` is the one that led to it;
- long episodes are cut into consecutive windows (``truncation="preserve"``), one batch row each;
- rows are right-padded with a copy of their own first step, and ``attention_mask`` marks the real steps;
- BabyAI missions always take exactly 64 token slots (the reference overflowed the model's 212 slots);
- Atari frames go from channel-last ``uint8`` straight to channel-first ``float32`` in ``[-1, 1]``;
- captioning images get CLIP's 224x224 pre-processing, without torchvision.

The tokenizer is saved with the checkpoint. By default it is a small byte-level BPE built offline
(:func:`build_default_tokenizer`), so nothing needs the Hugging Face Hub; GPT-2's tokenizer (what the released
``jat-project/jat`` uses) is loaded with ``JatProcessor(tokenizer="gpt2")`` or ``JatProcessor.from_pretrained``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = [
    "BABYAI_VOCABULARY",
    "CLIP_MEAN",
    "CLIP_STD",
    "EOS_TOKEN",
    "MISSION_LENGTH",
    "PROCESSOR_CONFIG_NAME",
    "JatProcessor",
    "build_default_tokenizer",
    "previous_rewards",
    "scale_pixels",
    "unscale_pixels",
]

MISSION_LENGTH = 64
"""Token slots a BabyAI mission takes in each discrete observation (148 grid ints + 64 = 212)."""

PROCESSOR_CONFIG_NAME = "processor_config.json"
EOS_TOKEN = "<|endoftext|>"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

BABYAI_VOCABULARY: tuple[str, ...] = (
    # verbs and connectives of minigrid's BabyAI verifier (GoTo/Open/Pickup/PutNext, and/then/after)
    *("go", "to", "open", "pick", "up", "put", "next", "then", "after", "you", "and", "the", "a"),
    *("object", "box", "ball", "key", "door"),
    *("red", "green", "blue", "purple", "yellow", "grey"),
    *("in", "front", "of", "behind", "on", "your", "left", "right"),
    # other minigrid missions, so they stay short too
    *("get", "goal", "square", "avoid", "lava", "find", "opening", "use", "reach", "matching", "at", "end"),
    *("hallway", "traverse", "rooms", "near", "fetch", "must"),
)
"""Words that are one token each in the default tokenizer, alone or after a space."""

_DEFAULT_VOCAB_CAP = 512

# per-step keys: dtype and ndim of one episode array (images are handled apart)
_STEP_KEYS: dict[str, tuple[type, int]] = {
    "continuous_observations": (np.float32, 2),
    "discrete_observations": (np.int64, 2),
    "continuous_actions": (np.float32, 2),
    "discrete_actions": (np.int64, 1),
    "rewards": (np.float32, 1),
    "attention_mask": (np.int64, 1),
    "loss_weight": (np.float32, 1),
    "input_ids": (np.int64, 1),
}
_PADDING = {
    False: None,
    None: None,
    "do_not_pad": None,
    True: "longest",
    "longest": "longest",
    "max_length": "max_length",
}
_TRUNCATION = {
    False: None,
    None: None,
    "do_not_truncate": None,
    True: "lossy",
    "lossy": "lossy",
    "preserve": "preserve",
}


class _Segment(NamedTuple):
    """Steps ``[start, stop)`` of episode ``episode`` that form one output row."""

    episode: int
    start: int
    stop: int


class _Options(NamedTuple):
    padding: str | None  # None | "longest" | "max_length"
    truncation: str | None  # None | "lossy" | "preserve"
    side: str  # "right" | "left"
    max_items: int
    return_tensors: str | None  # None | "np" | "pt"


# --------------------------------------------------------------------------------------------------------------
# Observation-to-tensor rules shared by training (here, trainers.sampling) and inference (policy): one owner each,
# so the two cannot drift apart


def scale_pixels(frames: Any) -> Any:
    """Pixels ``0..255`` (cast to the wanted float dtype, numpy or torch) -> ``[-1, 1]``: ``x * 2 / 255 - 1``."""
    return frames * (2.0 / 255.0) - 1.0


def unscale_pixels(pixels: np.ndarray) -> np.ndarray:
    """The exact inverse of :func:`scale_pixels` on its outputs: ``[-1, 1]`` floats -> ``uint8`` pixels (rounded)."""
    return np.rint((np.asarray(pixels) + 1.0) * (255.0 / 2.0)).astype(np.uint8)


def previous_rewards(rewards: Any) -> np.ndarray:
    """``[0] + r[:-1]`` per episode: the reward fed with o_t is the one that led to it (0 at t=0).

    Dataset rewards follow the action (``rewards[t]`` comes after ``actions[t]``), while the wrappers feed each
    observation with the reward that preceded it; training applies this shift so both see the same thing.
    """
    raw = np.asarray(rewards, np.float32).reshape(-1)
    shifted = np.zeros_like(raw)
    shifted[1:] = raw[:-1]
    return shifted


# --------------------------------------------------------------------------------------------------------------
# Tokenizers


def build_default_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerBase:
    """Build the offline default tokenizer: a small byte-level BPE, the same on every machine.

    It is trained with the ``tokenizers`` library on :data:`BABYAI_VOCABULARY`, so every BabyAI word is a single
    token (with or without a leading space), while any other text still round-trips through its UTF-8 bytes, like
    GPT-2's tokenizer. ``<|endoftext|>`` is the eos, bos, unk and pad token (the last id). Training takes a few
    milliseconds and needs no download; the result is deterministic, and it is saved with every checkpoint anyway.

    Args:
        model_max_length: Stored as the tokenizer's ``model_max_length`` (tokens).

    Returns:
        A ``transformers`` fast tokenizer (vocabulary of 256 bytes + merges + ``<|endoftext|>``, < 512 ids).

    Example:
        >>> tok = build_default_tokenizer()
        >>> len(tok("go to the red ball", add_special_tokens=False)["input_ids"])
        5
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [form for word in BABYAI_VOCABULARY for form in (word, " " + word)] + [","]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_DEFAULT_VOCAB_CAP - 1,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    backend.train_from_iterator(corpus, trainer)
    backend.add_special_tokens([EOS_TOKEN])  # last id, like GPT-2's 50256
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=model_max_length,
    )


def _load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory, the HF cache or the Hub; fail fast and clearly when offline."""
    from huggingface_hub import constants
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    local = Path(name_or_path).is_dir()
    # A checkpoint directory's config.json has model_type "jat", which AutoTokenizer does not know; a saved
    # fast tokenizer (tokenizer.json) loads directly.
    auto = PreTrainedTokenizerFast if local and (Path(name_or_path) / "tokenizer.json").is_file() else AutoTokenizer
    try:  # the cache first: no network call when the files are already here
        tokenizer = auto.from_pretrained(str(name_or_path), local_files_only=True)
    except (OSError, ValueError) as cached_error:
        if local or constants.HF_HUB_OFFLINE:
            where = "the directory" if local else "the Hugging Face cache (HF_HUB_OFFLINE is set)"
            raise OSError(
                f"Could not load a tokenizer from {str(name_or_path)!r}: not found in {where}. Pass a directory "
                f"written by JatProcessor.save_pretrained, or use JatProcessor() for the offline default "
                f"tokenizer. ({cached_error})"
            ) from cached_error
        try:
            if not _hub_reachable():  # huggingface_hub would retry for about a minute before giving up
                raise OSError(f"cannot reach {constants.ENDPOINT}")
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        except (OSError, ValueError) as error:
            raise OSError(
                f"Could not load the tokenizer {str(name_or_path)!r} from the Hugging Face Hub (no network, or "
                f"not a tokenizer repository). Use JatProcessor() for the offline default tokenizer. ({error})"
            ) from error
    if tokenizer.pad_token is None:  # GPT-2 has none; the reference pads with eos (50256)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the Hub endpoint, so offline machines fail in seconds (proxies: assume reachable)."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------------------------------------------
# Input normalisation: one numpy array per episode


def _to_numpy(value: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _episode_list(name: str, batch: Any) -> list[Any]:
    """A batch of episodes as a list (one item per episode)."""
    if isinstance(batch, str | bytes | Mapping):
        raise TypeError(
            f"{name} must be a batch of episodes (a list with one per-step sequence per episode), "
            f"got {type(batch).__name__}. For one episode, wrap it in a list: {name}=[episode]."
        )
    if hasattr(batch, "detach") or isinstance(batch, np.ndarray):
        return list(batch)
    if not isinstance(batch, Sequence):
        raise TypeError(f"{name} must be a list of episodes, got {type(batch).__name__}.")
    return list(batch)


def _step_episode(name: str, index: int, episode: Any) -> np.ndarray:
    """One episode of a plain per-step key as an array with the key's dtype and rank."""
    dtype, ndim = _STEP_KEYS[name]
    try:
        array = _to_numpy(episode, dtype)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name}[{index}] could not be read as a {np.dtype(dtype).name} array (steps of different sizes?): {error}"
        ) from error
    if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:  # e.g. stacked (1,) reward boxes
        array = array[:, 0]
    if array.ndim != ndim:
        expected = "(T,)" if ndim == 1 else "(T, n)"
        raise ValueError(
            f"{name}[{index}] has shape {array.shape}, expected {expected}: one value"
            f"{'' if ndim == 1 else ' vector'} per step. Inputs are batches of episodes; for a single episode "
            f"pass {name}=[episode]."
        )
    return array


def _image_episode(index: int, episode: Any) -> np.ndarray:
    """One episode of stacked frames as a channel-first (T, 4, H, W) array: uint8 or float32 in [-1, 1].

    Rule: a frame whose last axis has 4 entries is channel-last (the env and dataset layout, PIL RGBA images
    included); otherwise a frame with 4 entries on its first axis is channel-first. uint8 stays uint8 here (it
    is scaled when rows are assembled, never up-cast to int64); float frames must be in [0, 1].
    """
    if isinstance(episode, list | tuple):
        frames = [_to_numpy(frame) for frame in episode]  # PIL images -> (H, W, 4) uint8
        array = np.stack(frames) if frames else np.zeros((0, 84, 84, 4), np.uint8)
    else:
        array = _to_numpy(episode)
    if array.ndim != 4:
        raise ValueError(
            f"image_observations[{index}] has shape {array.shape}, expected (T, 84, 84, 4) channel-last frames "
            "(or (T, 4, 84, 84)); for a single episode pass image_observations=[episode]."
        )
    if array.shape[-1] == 4:
        array = array.transpose(0, 3, 1, 2)  # (T, H, W, 4) -> (T, 4, H, W), a view
    elif array.shape[1] != 4:
        raise ValueError(
            f"image_observations[{index}] has frames of shape {array.shape[1:]}: expected 4 stacked grayscale "
            "frames, channel-last (84, 84, 4) or channel-first (4, 84, 84). RGB frames need the Atari wrappers."
        )
    return _frames_dtype(index, array)


def _frames_dtype(index: int, array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 1.0)
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"image_observations[{index}] is float with values in [{low:g}, {high:g}]: float frames must be in "
                "[0, 1]; pass raw uint8 frames (0..255) instead."
            )
        return array.astype(np.float32) * 2.0 - 1.0
    if np.issubdtype(array.dtype, np.integer):  # e.g. nested Python lists
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"image_observations[{index}] has integer values outside 0..255.")
        return array.astype(np.uint8)
    raise TypeError(f"image_observations[{index}] has dtype {array.dtype}; expected uint8 frames.")


def _text_episode(index: int, episode: Any) -> list[str]:
    """One episode of missions: a list of strings, or UTF-8 bytes arrays (the wrappers' ``text_as_bytes``)."""
    if isinstance(episode, str):
        raise TypeError(
            f"text_observations[{index}] is a single string; expected one mission per step, e.g. "
            f"[mission] * T. Inputs are batches of episodes."
        )
    return [_as_text(step) for step in episode]


def _as_text(step: Any) -> str:
    if isinstance(step, str):
        return step
    if isinstance(step, bytes):
        return step.rstrip(b"\0").decode("utf-8")
    array = _to_numpy(step)
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        return array.astype(np.uint8).tobytes().rstrip(b"\0").decode("utf-8")
    raise TypeError(f"a text observation must be a str or UTF-8 bytes, got {type(step).__name__}.")


# --------------------------------------------------------------------------------------------------------------
# Chunking, padding, assembling rows


def _segments(lengths: list[int], truncation: str | None, side: str, max_items: int) -> list[_Segment]:
    """Cut each episode into output rows: whole, truncated to ``max_items`` or split into consecutive chunks."""
    segments = []
    for episode, length in enumerate(lengths):
        if truncation is None or length <= max_items:
            segments.append(_Segment(episode, 0, length))
        elif truncation == "lossy":
            start = 0 if side == "right" else length - max_items
            segments.append(_Segment(episode, start, start + max_items))
        elif side == "right":
            segments.extend(_Segment(episode, s, min(s + max_items, length)) for s in range(0, length, max_items))
        else:  # chunks counted from the end, so the short one is the oldest; rows stay in time order
            stops = range(length, 0, -max_items)
            segments.extend(_Segment(episode, max(0, stop - max_items), stop) for stop in reversed(stops))
    return segments


def _row_lengths(segments: list[_Segment], padding: str | None, max_items: int) -> list[int]:
    sizes = [seg.stop - seg.start for seg in segments]
    if padding is None:
        return sizes
    if padding == "longest":
        return [max(sizes, default=0)] * len(sizes)
    if max(sizes, default=0) > max_items:
        raise ValueError(
            f"padding='max_length' with max {max_items} but a sequence has {max(sizes)} items; "
            "pass truncation=True or truncation='preserve', or a larger max_length/max_steps."
        )
    return [max_items] * len(sizes)


def _gather(
    name: str, episodes: list[np.ndarray], segments: list[_Segment], lengths: list[int], fill: Any
) -> np.ndarray | list[np.ndarray]:
    """Copy each segment into its row and pad it; one (B, L, ...) array when all rows have the same length.

    ``fill="first"`` pads with a copy of the row's first step (the reference's choice); a number pads with it.
    uint8 frames are scaled to [-1, 1] in the float32 output (:func:`scale_pixels`).
    """
    feature = episodes[0].shape[1:]
    for index, episode in enumerate(episodes):
        if episode.shape[1:] != feature:
            raise ValueError(
                f"{name}: episode {index} has steps of shape {episode.shape[1:]} but episode 0 has {feature}; "
                "a batch must come from one task."
            )
    dtype = np.float32 if name == "image_observations" else _STEP_KEYS[name][0]
    if len(set(lengths)) <= 1:
        out = np.empty((len(segments), lengths[0] if lengths else 0, *feature), dtype)  # (B, L, ...)
        rows = list(out)
    else:
        out, rows = None, [np.empty((length, *feature), dtype) for length in lengths]
    for row, seg in zip(rows, segments, strict=True):
        size = seg.stop - seg.start
        source = episodes[seg.episode][seg.start : seg.stop]
        row[:size] = source  # uint8 -> float32 directly, no int64 copy
        if source.dtype == np.uint8 and dtype == np.float32:
            row[:size] = scale_pixels(row[:size])
        if size < len(row):
            row[size:] = (row[0] if size else 0) if fill == "first" else fill
    return out if out is not None else rows


def _attention_mask(
    segments: list[_Segment], lengths: list[int], given: list[np.ndarray] | None
) -> np.ndarray | list[np.ndarray]:
    """1 on real items, 0 on padding, ANDed with the episodes' own masks when given."""
    if given is not None:
        given = [(episode != 0).astype(np.int64) for episode in given]
        return _gather("attention_mask", given, segments, lengths, 0)
    ones = [np.ones(seg.stop - seg.start, np.int64) for seg in segments]
    return _gather("attention_mask", ones, [_Segment(i, 0, len(o)) for i, o in enumerate(ones)], lengths, 0)


def _check_lengths(episodes: dict[str, list[np.ndarray]]) -> list[int]:
    """Per-episode lengths, checked to agree across keys; an empty episode is an error."""
    reference_name, reference = next(iter(episodes.items()))
    lengths = [len(episode) for episode in reference]
    for name, batch in episodes.items():
        if len(batch) != len(lengths):
            raise ValueError(f"{name} holds {len(batch)} episodes but {reference_name} holds {len(lengths)}.")
        for index, (episode, length) in enumerate(zip(batch, lengths, strict=True)):
            if len(episode) != length:
                raise ValueError(
                    f"episode {index}: {name} has {len(episode)} steps but {reference_name} has {length}; every "
                    "key must hold the same steps (the terminal observation is not stored)."
                )
    return lengths


def _finish(value: np.ndarray | list[np.ndarray], name: str, return_tensors: str | None) -> Any:
    if return_tensors is None:
        return list(value)
    if isinstance(value, list):
        raise ValueError(
            f"{name}: rows have different lengths {[len(v) for v in value]}, so they cannot be stacked into a "
            f"tensor; pass padding='longest' or padding='max_length' (or return_tensors=None)."
        )
    if return_tensors == "np":
        return value
    import torch

    return torch.from_numpy(np.ascontiguousarray(value))


# --------------------------------------------------------------------------------------------------------------
# CLIP-style images for captioning / VQA


def _clip_pixels(image: Any, size: int) -> np.ndarray:
    """CLIP pre-processing: RGB, shortest edge -> ``size`` (bicubic), centre crop, CLIP mean/std -> (3, size, size)."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        array = _to_numpy(image)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
        if np.issubdtype(array.dtype, np.floating):  # [0, 1] floats
            array = np.clip(np.rint(array * 255.0), 0, 255)
        image = Image.fromarray(array.astype(np.uint8).squeeze())
    image = image.convert("RGB")
    width, height = image.size
    short, long = sorted((width, height))
    new_short, new_long = size, int(size * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    pixels = np.asarray(image, np.float32)[top : top + size, left : left + size]  # (size, size, 3)
    pixels = (pixels / 255.0 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)  # (3, size, size)


# --------------------------------------------------------------------------------------------------------------


class JatProcessor:
    """Turn batches of episodes (or texts and images) into the keyword arguments of ``JatModel.forward``.

    Inputs are **batches of episodes**: every RL argument is a list with one per-step sequence per episode, e.g.
    ``continuous_observations=[obs0 (T0, n), obs1 (T1, n)]``, ``rewards=[r0 (T0,), r1 (T1,)]``. Rewards are the
    raw dataset rewards (``rewards[t]`` follows ``actions[t]``); ``shift_rewards=True`` turns them into the
    reward that led to each observation. At inference, where the wrappers already give the previous reward,
    pass ``shift_rewards=False``.

    Outputs (``return_tensors="pt"``; ``"np"`` gives numpy arrays, ``None`` a list of rows per key):

    - ``continuous_observations`` (B, L, n) float32, ``continuous_actions`` (B, L, k) float32
    - ``discrete_observations`` (B, L, 212) int64: 148 grid ints + 64 mission token ids when
      ``text_observations`` is given (without it, the discrete observations pass through; the model zero-pads
      fewer than 212 slots)
    - ``image_observations`` (B, L, 4, 84, 84) float32 in [-1, 1], oldest frame in channel 0
    - ``discrete_actions`` (B, L) int64, ``rewards`` (B, L) float32
    - ``attention_mask`` (B, L) int64, 1 = real step (always present for RL and text inputs)
    - ``input_ids`` (B, L) int64 for ``text``; ``pixel_values`` (B, 3, 224, 224) float32 for ``images``

    Args:
        tokenizer: A ``transformers`` tokenizer, a name/path for ``AutoTokenizer`` (e.g. ``"gpt2"``, needs the
            Hub or its cache), or ``None`` for :func:`build_default_tokenizer` (offline, deterministic).
        model_max_length: Default context in **tokens** (the model's ``max_position_embeddings``); RL inputs use
            half of it as timesteps (512 tokens -> 256 steps).
        image_size: Side of the CLIP pixel input (224).
        patch_size: ViT patch size; text next to an image gets ``max_length - (image_size // patch_size) ** 2``.
        mission_length: Token slots per BabyAI mission (64; the released model expects 148 + 64 = 212).

    Example:
        >>> import numpy as np
        >>> processor = JatProcessor()
        >>> batch = processor(
        ...     continuous_observations=[np.zeros((300, 39), np.float32)],
        ...     continuous_actions=[np.zeros((300, 4), np.float32)],
        ...     rewards=[np.ones(300, np.float32)],
        ...     truncation="preserve", padding="max_length", max_steps=256, return_tensors="pt",
        ... )
        >>> tuple(batch["continuous_observations"].shape), batch["attention_mask"].sum().item()
        ((2, 256, 39), 300)
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | str | None = None,
        model_max_length: int = 512,
        image_size: int = 224,
        patch_size: int = 16,
        mission_length: int = MISSION_LENGTH,
    ) -> None:
        for name, value in (
            ("model_max_length", model_max_length),
            ("image_size", image_size),
            ("patch_size", patch_size),
            ("mission_length", mission_length),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size}).")
        if tokenizer is None:
            tokenizer = build_default_tokenizer(model_max_length)
        elif isinstance(tokenizer, str | Path):
            tokenizer = _load_tokenizer(tokenizer)
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first.")
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.model_max_length = model_max_length
        self.image_size = image_size
        self.patch_size = patch_size
        self.mission_length = mission_length

    def __repr__(self) -> str:
        return (
            f"JatProcessor(tokenizer={type(self.tokenizer).__name__}(vocab_size={self.vocab_size}), "
            f"model_max_length={self.model_max_length}, image_size={self.image_size}, "
            f"patch_size={self.patch_size}, mission_length={self.mission_length})"
        )

    # ------------------------------------------------------------------ tokenizer passthroughs
    @property
    def pad_token_id(self) -> int:
        """Id used to pad missions and text (``<|endoftext|>`` by default)."""
        return int(self.tokenizer.pad_token_id)

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added special tokens included (``len(tokenizer)``)."""
        return len(self.tokenizer)

    @property
    def num_patches(self) -> int:
        """Image tokens in front of the text for captioning: ``(image_size // patch_size) ** 2`` (196)."""
        return (self.image_size // self.patch_size) ** 2

    def decode(self, token_ids: Any, **kwargs: Any) -> str:
        """Decode one sequence of ids (kwargs go to the tokenizer, e.g. ``skip_special_tokens=True``)."""
        return self.tokenizer.decode(token_ids, **kwargs)

    def batch_decode(self, sequences: Any, **kwargs: Any) -> list[str]:
        """Decode a batch of id sequences."""
        return self.tokenizer.batch_decode(sequences, **kwargs)

    def tokenize_missions(self, missions: Sequence[str]) -> np.ndarray:
        """Missions -> (N, mission_length) int64 ids: truncated, then right-padded with the pad id.

        The reference padded to 64 but never truncated, so a long mission overflowed the model's 212 slots.
        """
        unique = sorted(set(missions))
        encoded = self.tokenizer(unique, add_special_tokens=False)["input_ids"] if unique else []
        table = np.full((len(unique), self.mission_length), self.pad_token_id, np.int64)
        longest = 0
        for row, ids in zip(table, encoded, strict=True):
            longest = max(longest, len(ids))
            ids = ids[: self.mission_length]
            row[: len(ids)] = ids
        if longest > self.mission_length:
            logger.warning("A mission has %d tokens; truncated to %d.", longest, self.mission_length)
        position = {mission: index for index, mission in enumerate(unique)}
        return table[[position[mission] for mission in missions]].reshape(len(missions), self.mission_length)

    # ------------------------------------------------------------------ main entry point
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: Any = None,
        continuous_observations: Any = None,
        discrete_observations: Any = None,
        text_observations: Any = None,
        image_observations: Any = None,
        continuous_actions: Any = None,
        discrete_actions: Any = None,
        rewards: Any = None,
        padding: bool | str = False,
        truncation: bool | str = False,
        truncation_side: str = "right",
        max_length: int | None = None,
        return_tensors: str | None = None,
        *,
        max_steps: int | None = None,
        shift_rewards: bool = True,
        attention_mask: Any = None,
    ) -> dict[str, Any]:
        """Process a batch of episodes, or of texts and/or images (one kind per call).

        Args:
            text: A string or a list of strings (language modelling / captions), tokenised without special tokens.
            images: An image or a list of images (PIL, or (H, W, 3) uint8 arrays) for captioning / VQA.
            continuous_observations: Episodes of (T, n) raw observations (no reward appended).
            discrete_observations: Episodes of (T, m) ints (BabyAI: 148).
            text_observations: Episodes of T missions (str, or UTF-8 bytes arrays); needs discrete_observations.
            image_observations: Episodes of (T, 84, 84, 4) uint8 frames (channel-last, oldest first), a list of
                PIL RGBA images, or (T, 4, 84, 84) channel-first frames. Float frames must be in [0, 1].
            continuous_actions: Episodes of (T, k) actions.
            discrete_actions: Episodes of (T,) ints.
            rewards: Episodes of (T,) raw rewards, ``rewards[t]`` following ``actions[t]``.
            padding: ``False``; ``True``/``"longest"`` (to the longest row) or ``"max_length"``. Rows are
                right-padded with a copy of their first step (text with the pad id).
            truncation: ``False``; ``True``/``"lossy"`` keeps ``max`` items from one side; ``"preserve"`` splits
                each sequence into consecutive chunks of ``max`` items, each its own row.
            truncation_side: ``"right"`` keeps the beginning (chunks counted from the start), ``"left"`` the end.
            max_length: Maximum in **tokens** (default ``model_max_length``); RL inputs get ``max_length // 2``
                timesteps, text next to images ``max_length - num_patches`` tokens.
            return_tensors: ``None`` (a list of per-row arrays per key), ``"np"`` or ``"pt"``.
            max_steps: Maximum in **timesteps** for RL inputs; takes precedence over ``max_length``.
            shift_rewards: Apply ``[0] + r[:-1]`` per episode before chunking (False when rewards are already
                the previous rewards, as at inference).
            attention_mask: Optional episodes of (T,) masks, ANDed with the padding mask.

        Returns:
            A dict keyed by ``JatModel.forward``'s argument names, plus ``attention_mask``.

        Raises:
            ValueError: On inconsistent inputs (episode counts or lengths that differ between keys, wrong ranks,
                text observations without discrete observations, rows that cannot be stacked, ...).
        """
        rl_inputs = {
            "continuous_observations": continuous_observations,
            "discrete_observations": discrete_observations,
            "text_observations": text_observations,
            "image_observations": image_observations,
            "continuous_actions": continuous_actions,
            "discrete_actions": discrete_actions,
            "rewards": rewards,
        }
        rl_inputs = {name: value for name, value in rl_inputs.items() if value is not None}
        if rl_inputs and (text is not None or images is not None):
            raise ValueError(
                f"got both RL inputs ({', '.join(rl_inputs)}) and text/images: process one kind per call "
                "(batches are single-task)."
            )
        if rl_inputs:
            budget = max_steps if max_steps is not None else (max_length or self.model_max_length) // 2
            options = self._options(padding, truncation, truncation_side, budget, return_tensors)
            return self._process_rl(rl_inputs, options, shift_rewards, attention_mask)
        if text is None and images is None:
            raise ValueError("nothing to process: pass text, images or RL inputs (e.g. continuous_observations=).")
        budget = max_length or self.model_max_length
        if text is not None and images is not None:
            budget -= self.num_patches
        options = self._options(padding, truncation, truncation_side, budget, return_tensors)
        return self._process_text_images(text, images, options, attention_mask)

    @staticmethod
    def _options(padding: Any, truncation: Any, side: str, max_items: int, return_tensors: str | None) -> _Options:
        try:
            pad_mode, trunc_mode = _PADDING[padding], _TRUNCATION[truncation]
        except (KeyError, TypeError):
            raise ValueError(
                f"padding={padding!r}, truncation={truncation!r}: padding must be False, True, 'longest' or "
                "'max_length'; truncation False, True, 'lossy' or 'preserve'."
            ) from None
        if side not in ("right", "left"):
            raise ValueError(f"truncation_side must be 'right' or 'left', got {side!r}.")
        if return_tensors not in (None, "np", "pt"):
            raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {return_tensors!r}.")
        if not isinstance(max_items, int) or max_items <= 0:
            raise ValueError(f"the maximum length must be a positive int (got {max_items!r}); check max_length.")
        return _Options(pad_mode, trunc_mode, side, max_items, return_tensors)

    # ------------------------------------------------------------------ RL
    def _rl_episodes(self, inputs: dict[str, Any], attention_mask: Any) -> dict[str, list[np.ndarray]]:
        """Every RL key as a list of per-episode arrays, missions merged into the discrete observations."""
        if attention_mask is not None:
            inputs = {**inputs, "attention_mask": attention_mask}
        batches = {name: _episode_list(name, value) for name, value in inputs.items()}
        counts = {name: len(value) for name, value in batches.items()}
        if len(set(counts.values())) > 1:
            raise ValueError(f"the inputs hold different numbers of episodes: {counts}.")
        episodes: dict[str, list[np.ndarray]] = {}
        for name, batch in batches.items():
            if name == "image_observations":
                episodes[name] = [_image_episode(i, ep) for i, ep in enumerate(batch)]
            elif name != "text_observations":
                episodes[name] = [_step_episode(name, i, ep) for i, ep in enumerate(batch)]
        if "text_observations" in batches:
            episodes["discrete_observations"] = self._merge_missions(
                episodes.get("discrete_observations"), batches["text_observations"]
            )
        return episodes

    def _merge_missions(self, discrete: list[np.ndarray] | None, texts: list[Any]) -> list[np.ndarray]:
        if discrete is None:
            raise ValueError(
                "text_observations need discrete_observations: the mission ids are appended to each step's "
                "discrete observation (BabyAI: 148 grid ints + 64 token ids)."
            )
        merged = []
        for index, (grid, episode) in enumerate(zip(discrete, texts, strict=True)):
            missions = _text_episode(index, episode)
            if len(missions) != len(grid):
                raise ValueError(
                    f"episode {index}: text_observations has {len(missions)} steps but discrete_observations "
                    f"has {len(grid)}."
                )
            merged.append(np.concatenate([grid, self.tokenize_missions(missions)], axis=1))  # (T, m + 64)
        return merged

    def _process_rl(
        self, inputs: dict[str, Any], options: _Options, shift_rewards: bool, attention_mask: Any
    ) -> dict[str, Any]:
        episodes = self._rl_episodes(inputs, attention_mask)
        lengths = _check_lengths(episodes)
        if 0 in lengths:
            raise ValueError(f"episode {lengths.index(0)} has no steps; drop empty episodes before processing.")
        if shift_rewards and "rewards" in episodes:
            episodes["rewards"] = [previous_rewards(r) for r in episodes["rewards"]]
        segments = _segments(lengths, options.truncation, options.side, options.max_items)
        row_lengths = _row_lengths(segments, options.padding, options.max_items)
        given_mask = episodes.pop("attention_mask", None)
        out = {name: _gather(name, eps, segments, row_lengths, "first") for name, eps in episodes.items()}
        out["attention_mask"] = _attention_mask(segments, row_lengths, given_mask)
        return {name: _finish(value, name, options.return_tensors) for name, value in out.items()}

    # ------------------------------------------------------------------ text and images
    def _process_text_images(self, text: Any, images: Any, options: _Options, attention_mask: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pixels = None
        if images is not None:
            many = isinstance(images, list | tuple) or (getattr(images, "ndim", 0) == 4)  # (N, H, W, C) arrays
            image_list = list(images) if many else [images]
            pixels = np.stack([_clip_pixels(image, self.image_size) for image in image_list])  # (N, 3, S, S)
        if text is None:
            out["pixel_values"] = pixels
            return {name: _finish(value, name, options.return_tensors) for name, value in out.items()}
        texts = [text] if isinstance(text, str) else list(text)
        if pixels is not None and len(pixels) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pixels)} images; pass one image per text.")
        ids = [np.asarray(seq, np.int64) for seq in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        segments = _segments([len(seq) for seq in ids], options.truncation, options.side, options.max_items)
        row_lengths = _row_lengths(segments, options.padding, options.max_items)
        out["input_ids"] = _gather("input_ids", ids, segments, row_lengths, self.pad_token_id)
        given = None if attention_mask is None else _episode_list("attention_mask", attention_mask)
        if given is not None:
            given = [_step_episode("attention_mask", i, m) for i, m in enumerate(given)]
            _check_lengths({"input_ids": ids, "attention_mask": given})
        out["attention_mask"] = _attention_mask(segments, row_lengths, given)
        if pixels is not None:  # each chunk of a caption keeps its image
            out["pixel_values"] = pixels[[seg.episode for seg in segments]]
        return {name: _finish(value, name, options.return_tensors) for name, value in out.items()}

    # ------------------------------------------------------------------ collation
    def pad(
        self,
        rows: Sequence[Mapping[str, Any]],
        padding: bool | str = "longest",
        return_tensors: str | None = "pt",
    ) -> dict[str, Any]:
        """Collate processed rows (one dict per row, e.g. dataset rows) into a batch.

        Rows of equal length are stacked; shorter ones are right-padded to the longest like ``__call__`` does
        (copy of the first step; pad id for ``input_ids``) and ``attention_mask`` is built or extended. uint8
        frames are scaled to [-1, 1] here, so a dataset can store processed Atari rows as uint8.
        ``pixel_values`` and unknown keys are stacked as they are.

        Args:
            rows: Processed rows, all with the same keys, e.g. ``{"continuous_observations": (L, n), ...}``.
            padding: ``"longest"``/``True`` (default) or ``False`` (rows must then share one length).
            return_tensors: ``"pt"`` (default), ``"np"`` or ``None``.

        Returns:
            A dict of (B, L, ...) tensors, ``attention_mask`` (B, L) included when any row is a sequence.
        """
        if not rows:
            raise ValueError("pad() got no rows.")
        keys = list(rows[0])
        for index, row in enumerate(rows):
            if list(row) != keys:
                raise ValueError(f"row {index} has keys {sorted(row)} but row 0 has {sorted(keys)}.")
        if padding == "max_length":
            raise ValueError("pad() pads to the longest row: use padding='longest' (or process with max_length).")
        options = self._options(padding, False, "right", 1, return_tensors)
        sequences = [key for key in keys if key in _STEP_KEYS or key == "image_observations"]
        out: dict[str, Any] = {}
        if sequences:
            columns = {key: self._pad_column(key, [row[key] for row in rows]) for key in sequences}
            given = columns.pop("attention_mask", None)
            lengths = _check_lengths(columns)
            segments = [_Segment(index, 0, length) for index, length in enumerate(lengths)]
            row_lengths = _row_lengths(segments, options.padding, 1)
            for key, column in columns.items():
                fill = self.pad_token_id if key == "input_ids" else "first"
                out[key] = _gather(key, column, segments, row_lengths, fill)
            out["attention_mask"] = _attention_mask(segments, row_lengths, given)
        for key in keys:
            if key not in out and key not in sequences:
                out[key] = np.stack([_to_numpy(row[key]) for row in rows])
        return {key: _finish(value, key, options.return_tensors) for key, value in out.items()}

    @staticmethod
    def _pad_column(key: str, values: list[Any]) -> list[np.ndarray]:
        if key == "image_observations":
            return [_pad_frames(index, value) for index, value in enumerate(values)]
        return [_step_episode(key, index, value) for index, value in enumerate(values)]

    # ------------------------------------------------------------------ save / load
    def to_dict(self) -> dict[str, Any]:
        """The processor settings written to ``processor_config.json``."""
        return {
            "processor_class": type(self).__name__,
            "model_max_length": self.model_max_length,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "mission_length": self.mission_length,
        }

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write the tokenizer files and ``processor_config.json`` to ``save_directory`` (created if needed).

        Returns:
            The directory.
        """
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        (directory / PROCESSOR_CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, **kwargs: Any) -> JatProcessor:
        """Load a processor saved by :meth:`save_pretrained`, or a Hub repository's (e.g. ``jat-project/jat``).

        A local directory never touches the network. A Hub id is read from the cache first; when it is not there
        and the Hub is unreachable (or ``HF_HUB_OFFLINE=1``), this fails at once with an ``OSError``.

        Args:
            pretrained_name_or_path: Directory or Hub repository id.
            **kwargs: Override ``processor_config.json`` settings (``model_max_length``, ``image_size``, ...).
        """
        tokenizer = _load_tokenizer(pretrained_name_or_path)
        settings = _read_processor_config(pretrained_name_or_path)
        if "model_max_length" not in settings and isinstance(tokenizer.model_max_length, int):
            if 0 < tokenizer.model_max_length < 1_000_000:  # HF uses a huge sentinel for "no limit"
                settings["model_max_length"] = tokenizer.model_max_length
        settings.update(kwargs)
        return cls(tokenizer=tokenizer, **settings)

    @classmethod
    def from_config(cls, config: Any, tokenizer: PreTrainedTokenizerBase | str | None = None) -> JatProcessor:
        """A processor matching a ``JatConfig`` (its ``max_position_embeddings``, ``image_size``, ``patch_size``)."""
        return cls(
            tokenizer=tokenizer,
            model_max_length=int(config.max_position_embeddings),
            image_size=int(getattr(config, "image_size", 224)),
            patch_size=int(getattr(config, "patch_size", 16)),
        )


def _pad_frames(index: int, value: Any) -> np.ndarray:
    """Frames of a processed row: float already in [-1, 1] kept as is, uint8 scaled when gathered."""
    array = _to_numpy(value)
    if np.issubdtype(array.dtype, np.floating):
        if array.ndim != 4 or array.shape[1] != 4:
            raise ValueError(f"image_observations row {index} has shape {array.shape}, expected (L, 4, 84, 84).")
        return array.astype(np.float32, copy=False)
    return _image_episode(index, array)


def _read_processor_config(pretrained_name_or_path: str | Path) -> dict[str, Any]:
    """Settings from ``processor_config.json`` (local directory or HF cache); unknown keys are ignored."""
    path = Path(pretrained_name_or_path) / PROCESSOR_CONFIG_NAME
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(str(pretrained_name_or_path), PROCESSOR_CONFIG_NAME, local_files_only=True))
        except Exception:  # noqa: BLE001 - no config file: defaults apply
            return {}
    data = json.loads(path.read_text())
    known = ("model_max_length", "image_size", "patch_size", "mission_length")
    return {key: data[key] for key in known if key in data}
