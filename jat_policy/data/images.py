"""Stacked Atari frames <-> the Hub's image format (one RGBA PNG per step).

The (84, 84, 4) uint8 observation holds 4 grayscale frames, oldest first. The Hub stores it as a
single RGBA image: frame 0 (oldest) in R, frame 3 (newest) in A. PNG keeps it lossless and about
10x smaller than raw bytes, and ``datasets`` decodes it back to uint8 (never int64).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from jat_policy.data.columns import IMAGE_SHAPE


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.shape == (IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]):
        raise ValueError(
            f"frame has shape {frame.shape}: channel-first; the JAT image observation is channel-last "
            f"{IMAGE_SHAPE} (transpose with frame.transpose(1, 2, 0))."
        )
    if frame.shape != IMAGE_SHAPE:
        raise ValueError(f"frame has shape {frame.shape}, expected {IMAGE_SHAPE} (4 stacked 84x84 grayscale frames).")
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating) and frame.size and float(frame.max()) <= 1.0:
            raise ValueError(f"frame has dtype {frame.dtype} in [0, 1]: expected uint8 pixels in [0, 255].")
        frame = frame.astype(np.uint8)
    return frame


def frame_to_image(frame: np.ndarray) -> Any:
    """Converts a stacked frame to the Hub's RGBA ``PIL.Image``.

    Args:
        frame: (84, 84, 4) uint8 array, oldest frame first (channel-last).

    Returns:
        An 84x84 RGBA ``PIL.Image.Image`` (R = oldest frame, A = newest).

    Example:
        >>> import numpy as np
        >>> frame_to_image(np.zeros((84, 84, 4), np.uint8)).mode
        'RGBA'
    """
    from PIL import Image

    return Image.fromarray(_check_frame(frame))  # (H, W, 4) uint8 -> RGBA


def frame_to_png(frame: np.ndarray, compress_level: int = 6) -> bytes:
    """Encodes a stacked frame as RGBA PNG bytes (~0.3 ms, ~2 kB for an Atari frame)."""
    buffer = io.BytesIO()
    frame_to_image(frame).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_frame(frame: np.ndarray) -> dict[str, Any]:
    """A stacked frame as the ``{"bytes", "path"}`` value a ``datasets.Image`` column stores."""
    return {"bytes": frame_to_png(frame), "path": None}


def image_to_frame(image: Any) -> np.ndarray:
    """Inverse of :func:`frame_to_image`: a stored image back to a (84, 84, 4) uint8 frame.

    Args:
        image: A ``PIL.Image``, PNG bytes, or a ``{"bytes", "path"}`` dict (undecoded ``datasets.Image``).

    Returns:
        The (84, 84, 4) uint8 array, oldest frame first.
    """
    from PIL import Image

    if isinstance(image, dict):
        image = image["bytes"] if image.get("bytes") is not None else image["path"]
    if isinstance(image, bytes | bytearray):
        image = io.BytesIO(image)
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    frame = np.asarray(image.convert("RGBA") if image.mode != "RGBA" else image)
    return _check_frame(frame)
