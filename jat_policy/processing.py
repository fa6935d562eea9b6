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

This module owns the rules training and inference share (:func:`scale_pixels` / :func:`unscale_pixels`,
:func:`previous_rewards`) and the pipeline from per-episode arrays to rows: ``_segments`` (chunking) ->
``_row_lengths`` -> ``_gather`` (padding) -> ``_attention_mask`` -> ``_finish`` (tensors). Reading and checking the
raw inputs is in :mod:`jat_policy.processing_inputs`, the default tokenizer in :mod:`jat_policy.tokenization`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from jat_policy.checkpoint import PROCESSOR_CONFIG_NAME, load_tokenizer, read_processor_config
from jat_policy.processing_inputs import (
    CLIP_MEAN,
    CLIP_STD,
    STEP_KEYS,
    check_lengths,
    clip_pixels,
    episode_list,
    image_episode,
    merge_missions,
    row_frames,
    step_episode,
    to_numpy,
)
from jat_policy.tokenization import BABYAI_VOCABULARY, EOS_TOKEN, build_default_tokenizer, tokenize_missions

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

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
    dtype = np.float32 if name == "image_observations" else STEP_KEYS[name][0]
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
            tokenizer = load_tokenizer(tokenizer)
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
        """Missions -> (N, mission_length) int64 ids: truncated, then right-padded with the pad id."""
        return tokenize_missions(self.tokenizer, missions, self.mission_length, self.pad_token_id)

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
        batches = {name: episode_list(name, value) for name, value in inputs.items()}
        counts = {name: len(value) for name, value in batches.items()}
        if len(set(counts.values())) > 1:
            raise ValueError(f"the inputs hold different numbers of episodes: {counts}.")
        episodes: dict[str, list[np.ndarray]] = {}
        for name, batch in batches.items():
            if name == "image_observations":
                episodes[name] = [image_episode(i, ep) for i, ep in enumerate(batch)]
            elif name != "text_observations":
                episodes[name] = [step_episode(name, i, ep) for i, ep in enumerate(batch)]
        if "text_observations" in batches:
            episodes["discrete_observations"] = merge_missions(
                episodes.get("discrete_observations"), batches["text_observations"], self.tokenize_missions
            )
        return episodes

    def _process_rl(
        self, inputs: dict[str, Any], options: _Options, shift_rewards: bool, attention_mask: Any
    ) -> dict[str, Any]:
        episodes = self._rl_episodes(inputs, attention_mask)
        lengths = check_lengths(episodes)
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
            pixels = np.stack([clip_pixels(image, self.image_size) for image in image_list])  # (N, 3, S, S)
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
        given = None if attention_mask is None else episode_list("attention_mask", attention_mask)
        if given is not None:
            given = [step_episode("attention_mask", i, m) for i, m in enumerate(given)]
            check_lengths({"input_ids": ids, "attention_mask": given})
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
        sequences = [key for key in keys if key in STEP_KEYS or key == "image_observations"]
        out: dict[str, Any] = {}
        if sequences:
            columns = {key: self._pad_column(key, [row[key] for row in rows]) for key in sequences}
            given = columns.pop("attention_mask", None)
            lengths = check_lengths(columns)
            segments = [_Segment(index, 0, length) for index, length in enumerate(lengths)]
            row_lengths = _row_lengths(segments, options.padding, 1)
            for key, column in columns.items():
                fill = self.pad_token_id if key == "input_ids" else "first"
                out[key] = _gather(key, column, segments, row_lengths, fill)
            out["attention_mask"] = _attention_mask(segments, row_lengths, given)
        for key in keys:
            if key not in out and key not in sequences:
                out[key] = np.stack([to_numpy(row[key]) for row in rows])
        return {key: _finish(value, key, options.return_tensors) for key, value in out.items()}

    @staticmethod
    def _pad_column(key: str, values: list[Any]) -> list[np.ndarray]:
        if key == "image_observations":
            return [row_frames(index, value) for index, value in enumerate(values)]
        return [step_episode(key, index, value) for index, value in enumerate(values)]

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
        tokenizer = load_tokenizer(pretrained_name_or_path)
        settings = read_processor_config(pretrained_name_or_path)
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
