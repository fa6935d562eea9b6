"""``wrap_env``: the JAT step dict for any Gymnasium environment, so new environments need no code.

Supported observation spaces (anything else raises a ValueError that names the space):

- 1-D ``Box`` (at most 376 values): ``continuous_observation`` = obs ‖ previous reward (float32).
- ``Dict`` of 1-D Boxes: concatenated in key order, then as above.
- uint8 image ``Box``: ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with ``C`` in {1, 3} (more than 212 pixels):
  grayscaled (Gymnasium's ``GrayscaleObservation``), resized to 84x84 (``ResizeObservation``, OpenCV
  ``INTER_AREA``), stacked 4 deep (``FrameStackObservation``, reset-padded) and moved channel-last:
  ``image_observation`` (84, 84, 4), oldest frame first. Already-stacked ``(84, 84, 4)`` / ``(4, 84, 84)`` uint8
  observations are taken as they are (only moved channel-last).
- ``Discrete``, ``MultiDiscrete``, ``MultiBinary`` or an integer ``Box`` (at most 212 values after flattening):
  ``discrete_observation`` (flattened, int64).
- ``Dict`` with one text entry (``Text`` or minigrid's ``MissionSpace``) and discrete-valued entries:
  ``text_observation`` + ``discrete_observation`` (entries concatenated in key order; minigrid gives
  ``[direction] + image.flatten()``, JAT's 148-int BabyAI layout).

Discrete and image observations carry the previous reward in a ``reward`` entry. Actions are left as they are;
JAT handles ``Discrete`` and 1-D ``Box`` action spaces.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation, GrayscaleObservation, ReshapeObservation, ResizeObservation

from jat_policy.wrappers.common import (
    IMAGE_SHAPE,
    STEP_KEYS,
    ChannelLast,
    JatObservation,
    TextAsBytes,
    is_image_space,
    require,
)

__all__ = ["frame_stack_84", "wrap_env"]

FRAME_STACK = 4
SCREEN_SIZE = (84, 84)


def _is_step_dict(space: spaces.Space) -> bool:
    if not isinstance(space, spaces.Dict) or not set(space.spaces) <= set(STEP_KEYS):
        return False
    return any(key in space.spaces for key in STEP_KEYS[:4])


def _is_stacked(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and space.shape in (IMAGE_SHAPE, (4, 84, 84))


def _check_actions(env: gym.Env) -> None:
    space = env.action_space
    if isinstance(space, spaces.Discrete) or (isinstance(space, spaces.Box) and len(space.shape) == 1):
        return
    raise ValueError(
        f"Unsupported action space {space}: JAT acts with Discrete(n) or a 1-D Box. Convert it first with a "
        "gymnasium.ActionWrapper (e.g. flatten a MultiDiscrete into one Discrete)."
    )


def frame_stack_84(env: gym.Env) -> gym.Env:
    """Turn a uint8 image env into JAT's frames: grayscale, 84x84, 4 stacked, channel-last ``(84, 84, 4)``.

    Args:
        env: An env whose observation is a uint8 ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` Box, ``C`` in {1, 3},
            with bounds 0..255 (or an already stacked ``(84, 84, 4)`` / ``(4, 84, 84)`` one).

    Returns:
        The wrapped env, observation ``Box(0, 255, (84, 84, 4), uint8)``, oldest frame first.

    Raises:
        ValueError: If the observation is not such an image.
        ImportError: If OpenCV (needed to resize) is missing.
    """
    space = env.observation_space
    if _is_stacked(space):
        return env if space.shape == IMAGE_SHAPE else ChannelLast(env)
    if not is_image_space(space):
        raise ValueError(f"frame_stack_84 needs a uint8 image observation (H, W[, C]) or (C, H, W); got {space}.")
    if not (np.all(space.low == 0) and np.all(space.high == 255)):
        raise ValueError(f"Image observations must have bounds 0..255 to be resized; got {space}.")
    shape = space.shape
    if len(shape) == 3 and shape[-1] not in (1, 3):
        env = ChannelLast(env)  # (C, H, W) -> (H, W, C)
        shape = env.observation_space.shape
    if len(shape) == 3 and shape[-1] == 3:
        env = GrayscaleObservation(env)  # (H, W, 3) -> (H, W)
    elif len(shape) == 3:
        env = ReshapeObservation(env, shape[:2])  # (H, W, 1) -> (H, W)
    if env.observation_space.shape != SCREEN_SIZE:
        require("cv2", "atari", "Resizing image observations")
        env = ResizeObservation(env, SCREEN_SIZE)  # (H, W) -> (84, 84)
    env = FrameStackObservation(env, FRAME_STACK)  # (4, 84, 84), padded with the reset frame
    return ChannelLast(env)  # (84, 84, 4), oldest frame in channel 0


def wrap_env(env: gym.Env, *, text_as_bytes: bool = False) -> gym.Env:
    """Wrap any supported Gymnasium env so it returns the JAT step dict (see the module docstring).

    An env that already returns a step dict is returned unchanged (``text_as_bytes`` still applies).

    Args:
        env: The environment.
        text_as_bytes: Store the text entry as ``Box(0, 255, (256,), uint8)`` UTF-8 bytes instead of a ``Text``
            space (needed by SB3's ``DummyVecEnv``/``SubprocVecEnv``; :func:`decode_text` reads it back).

    Returns:
        The wrapped env; its ``observation_space`` is a ``gymnasium.spaces.Dict`` of step-dict entries.

    Raises:
        ValueError: For unsupported observation or action spaces (the message names the space and lists what is
            supported), or continuous observations over 376 values.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from jat_policy.wrappers import wrap_env
        >>> env = wrap_env(gym.make("Pendulum-v1"))
        >>> obs, _ = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> obs["continuous_observation"].shape, bool(obs["continuous_observation"][-1] == np.float32(reward))
        ((4,), True)
    """
    if not isinstance(env, gym.Env):
        raise TypeError(f"wrap_env expects a gymnasium.Env, got {type(env).__name__}; build it with gymnasium.make.")
    _check_actions(env)
    if not _is_step_dict(env.observation_space):
        if is_image_space(env.observation_space) or _is_stacked(env.observation_space):
            env = frame_stack_84(env)
        env = JatObservation(env)
    text = env.observation_space.spaces.get("text_observation")
    if text_as_bytes and isinstance(text, spaces.Text):
        env = TextAsBytes(env)
    return env
