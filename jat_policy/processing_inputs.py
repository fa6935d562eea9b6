"""Inputs of :class:`~jat_policy.processing.JatProcessor` -> one checked numpy array per episode (or image).

Batches of episodes come as lists, numpy arrays, torch tensors, PIL images or UTF-8 bytes; everything here turns
them into arrays of the right dtype and rank, or fails with a message that names the key, the episode and the
likely mistake (a single episode not wrapped in a list, channel-first frames, float frames outside [0, 1], ...).
Chunking and padding then work on these arrays only (:mod:`jat_policy.processing`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "STEP_KEYS",
    "check_lengths",
    "clip_pixels",
    "episode_list",
    "image_episode",
    "merge_missions",
    "row_frames",
    "step_episode",
    "text_episode",
    "to_numpy",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

STEP_KEYS: dict[str, tuple[type, int]] = {
    "continuous_observations": (np.float32, 2),
    "discrete_observations": (np.int64, 2),
    "continuous_actions": (np.float32, 2),
    "discrete_actions": (np.int64, 1),
    "rewards": (np.float32, 1),
    "attention_mask": (np.int64, 1),
    "loss_weight": (np.float32, 1),
    "input_ids": (np.int64, 1),
}
"""dtype and rank of one episode of each plain per-step key (images and missions are handled apart)."""


def to_numpy(value: Any, dtype: Any = None) -> np.ndarray:
    """``value`` (a torch tensor on any device, or anything numpy reads) as a numpy array."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def episode_list(name: str, batch: Any) -> list[Any]:
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


def step_episode(name: str, index: int, episode: Any) -> np.ndarray:
    """One episode of a plain per-step key as an array with the key's dtype and rank."""
    dtype, ndim = STEP_KEYS[name]
    try:
        array = to_numpy(episode, dtype)
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


def image_episode(index: int, episode: Any) -> np.ndarray:
    """One episode of stacked frames as a channel-first (T, 4, H, W) array: uint8 or float32 in [-1, 1].

    Rule: a frame whose last axis has 4 entries is channel-last (the env and dataset layout, PIL RGBA images
    included); otherwise a frame with 4 entries on its first axis is channel-first. uint8 stays uint8 here (it
    is scaled when rows are assembled, never up-cast to int64); float frames must be in [0, 1].
    """
    if isinstance(episode, list | tuple):
        frames = [to_numpy(frame) for frame in episode]  # PIL images -> (H, W, 4) uint8
        array = np.stack(frames) if frames else np.zeros((0, 84, 84, 4), np.uint8)
    else:
        array = to_numpy(episode)
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


def text_episode(index: int, episode: Any) -> list[str]:
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
    array = to_numpy(step)
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        return array.astype(np.uint8).tobytes().rstrip(b"\0").decode("utf-8")
    raise TypeError(f"a text observation must be a str or UTF-8 bytes, got {type(step).__name__}.")


def row_frames(index: int, value: Any) -> np.ndarray:
    """Frames of a processed row: float already in [-1, 1] kept as is, uint8 scaled when gathered."""
    array = to_numpy(value)
    if np.issubdtype(array.dtype, np.floating):
        if array.ndim != 4 or array.shape[1] != 4:
            raise ValueError(f"image_observations row {index} has shape {array.shape}, expected (L, 4, 84, 84).")
        return array.astype(np.float32, copy=False)
    return image_episode(index, array)


def check_lengths(episodes: dict[str, list[np.ndarray]]) -> list[int]:
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


def clip_pixels(image: Any, size: int) -> np.ndarray:
    """CLIP pre-processing: RGB, shortest edge -> ``size`` (bicubic), centre crop, CLIP mean/std -> (3, size, size)."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        array = to_numpy(image)
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


def merge_missions(
    discrete: list[np.ndarray] | None, texts: list[Any], tokenize: Callable[[list[str]], np.ndarray]
) -> list[np.ndarray]:
    """Each episode's ``(T, m)`` discrete observations with its missions' ``(T, 64)`` token ids appended."""
    if discrete is None:
        raise ValueError(
            "text_observations need discrete_observations: the mission ids are appended to each step's "
            "discrete observation (BabyAI: 148 grid ints + 64 token ids)."
        )
    merged = []
    for index, (grid, episode) in enumerate(zip(discrete, texts, strict=True)):
        missions = text_episode(index, episode)
        if len(missions) != len(grid):
            raise ValueError(
                f"episode {index}: text_observations has {len(missions)} steps but discrete_observations "
                f"has {len(grid)}."
            )
        merged.append(np.concatenate([grid, tokenize(missions)], axis=1))  # (T, m + 64)
    return merged
