"""The agent on video: Gymnasium's ``RecordVideo`` writing MP4 with imageio-ffmpeg, and short GIFs.

Gymnasium 1.x encodes ``RecordVideo``'s files with moviepy, whose releases pin ``pillow<12`` (this stack runs pillow
13). moviepy itself encodes through imageio-ffmpeg (an ffmpeg binary shipped in its wheel), so
:class:`RecordEpisodeVideo` keeps all of ``RecordVideo`` (episode triggers, frame capture, names) and only hands the
frames to imageio-ffmpeg directly: the same H.264 MP4, one dependency fewer.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo

__all__ = ["VIDEO_EXTRA", "RecordEpisodeVideo", "first_episode", "gif_from_mp4", "write_gif", "write_mp4"]

VIDEO_EXTRA = 'pip install "jat-policy[video]"'


def _imageio() -> Any:
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio's FFMPEG plugin runs)
    except ImportError as err:
        raise ImportError(f"Videos need imageio and imageio-ffmpeg: {VIDEO_EXTRA}. ({err})") from err
    return imageio


def _frames(frames: Sequence[np.ndarray], what: str) -> np.ndarray:
    if len(frames) == 0:
        raise ValueError(f"No frames to write to {what}.")
    stack = np.stack([np.asarray(f) for f in frames])  # (T, H, W, 3)
    if stack.ndim != 4 or stack.shape[-1] not in (3, 4) or stack.dtype != np.uint8:
        raise ValueError(
            f"{what}: frames must be (H, W, 3) uint8 RGB images (render_mode='rgb_array'), got shape "
            f"{stack.shape[1:]} dtype {stack.dtype}."
        )
    return stack


def write_mp4(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    """Writes RGB frames as an H.264 MP4 (yuv420p, plays in browsers).

    Args:
        frames: ``T`` frames, each ``(H, W, 3)`` uint8.
        path: The ``.mp4`` file (parent folders are created).
        fps: Frames per second.

    Returns:
        The path.
    """
    path = Path(path)
    stack = _frames(frames, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=2: yuv420p needs even sides; the default 16 would rescale Atari's 210x160 frames
    with _imageio().get_writer(
        path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2, ffmpeg_log_level="error"
    ) as writer:
        for frame in stack[..., :3]:
            writer.append_data(frame)
    return path


def write_gif(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike,
    fps: float = 10.0,
    max_side: int | None = 256,
    colors: int = 64,
) -> Path:
    """Writes RGB frames as a looping GIF (for READMEs), each frame shrunk to at most ``max_side`` pixels.

    Each frame gets its own palette of ``colors`` colours without dithering: a rendered Meta-World episode of 51
    frames at 192 px takes 0.3 MB so (1.1 MB with 256 colours), and looks the same at that size.

    Args:
        frames: ``T`` frames, each ``(H, W, 3)`` uint8.
        path: The ``.gif`` file (parent folders are created).
        fps: Frames per second.
        max_side: Longest side of the written frames (None: full size).
        colors: Palette size per frame (2 to 256).

    Returns:
        The path.
    """
    from PIL import Image

    path = Path(path)
    stack = _frames(frames, str(path))
    images = [Image.fromarray(frame[..., :3]) for frame in stack]
    if max_side is not None and max(stack.shape[1:3]) > max_side:
        scale = max_side / max(stack.shape[1:3])
        size = (max(1, round(stack.shape[2] * scale)), max(1, round(stack.shape[1] * scale)))
        images = [image.resize(size, Image.Resampling.LANCZOS) for image in images]
    images = [image.quantize(colors=colors, dither=Image.Dither.NONE) for image in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=True)
    return path


def gif_from_mp4(
    mp4: str | os.PathLike, gif: str | os.PathLike, max_frames: int = 60, max_side: int | None = 192
) -> Path:
    """A short looping GIF of an MP4 (every k-th frame, at most ``max_frames``, playing at the video's speed).

    Args:
        mp4: The video, e.g. one :class:`RecordEpisodeVideo` wrote.
        gif: The ``.gif`` file to write.
        max_frames: Most frames kept (evenly spaced, the first and the rhythm kept).
        max_side: Longest side of the GIF's frames.

    Returns:
        The GIF's path.
    """
    imageio = _imageio()
    with imageio.get_reader(mp4) as reader:
        fps = float(reader.get_meta_data().get("fps") or 30.0)
        frames = [frame for frame in reader]
    step = max(1, -(-len(frames) // max_frames))  # ceil: at most max_frames frames
    return write_gif(frames[::step], gif, fps=fps / step, max_side=max_side)


def first_episode(episode: int) -> bool:
    """``RecordVideo`` episode trigger: only the env's first episode."""
    return episode == 0


class RecordEpisodeVideo(RecordVideo):
    """Gymnasium's ``RecordVideo``, encoding with imageio-ffmpeg (see the module docstring): one MP4 per episode.

    Each recorded episode becomes ``<video_folder>/<name_prefix>-episode-<n>.mp4`` when the next reset (or
    ``close``) ends it; :attr:`saved` lists the files written. Frames are one per reset and one per step, so an
    episode of ``L`` steps gives ``L + 1`` frames.

    Args:
        env: The env, made with ``render_mode="rgb_array"``.
        video_folder: Where the files go (created).
        episode_trigger: ``trigger(episode_index) -> bool``; default :func:`first_episode`.
        name_prefix: File-name prefix (e.g. the task name).
        fps: Frames per second; default the env's ``metadata["render_fps"]`` (30 if absent).

    Example:
        >>> import gymnasium as gym
        >>> cartpole = gym.make("CartPole-v1", render_mode="rgb_array")
        >>> env = RecordEpisodeVideo(cartpole, "videos", name_prefix="cartpole")
        >>> _ = env.reset(seed=0)
        >>> for _ in range(5):
        ...     _ = env.step(env.action_space.sample())
        >>> env.close()
        >>> [path.name for path in env.saved]
        ['cartpole-episode-0.mp4']
    """

    def __init__(
        self,
        env: gym.Env,
        video_folder: str | os.PathLike,
        episode_trigger: Callable[[int], bool] | None = first_episode,
        name_prefix: str = "rl-video",
        fps: float | None = None,
    ) -> None:
        _imageio()
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"Recording {name_prefix!r} needs an env made with render_mode='rgb_array', got "
                f"render_mode={env.render_mode!r}."
            )
        with warnings.catch_warnings():
            # One folder holds every task's videos (file names differ by prefix): not an overwrite.
            warnings.filterwarnings("ignore", message=".*Overwriting existing videos.*")
            try:
                super().__init__(env, str(video_folder), episode_trigger, name_prefix=name_prefix, fps=fps)
            except gym.error.DependencyNotInstalled:
                pass  # RecordVideo's last step checks for moviepy, which this class never calls
        self.saved: list[Path] = []

    def stop_recording(self) -> None:
        """Writes the recorded frames as MP4, then lets ``RecordVideo`` reset its recording state."""
        if self.recorded_frames:
            path = Path(self.video_folder) / f"{self._video_name}.mp4"
            self.saved.append(write_mp4(self.recorded_frames, path, self.frames_per_sec))
        self.recorded_frames = []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*zero frames.*")  # written above, not skipped
            super().stop_recording()
