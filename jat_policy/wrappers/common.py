"""Core wrappers shared by every domain: the JAT step dict, text as bytes, channel moves.

The step dict (``gymnasium.spaces.Dict``) holds a subset of:

- ``continuous_observation``: ``Box(low ‖ r_low, high ‖ r_high, (n+1,), float32)``, the raw observation with the
  previous reward appended (0.0 after reset); the first ``n`` bounds are the env's, the reward's are the env's
  ``reward_range`` where it declares one, else ±inf. ``n + 1 <= 377`` (JAT's continuous encoder width).
- ``discrete_observation``: ``MultiDiscrete`` of at most 212 ints (148 when a text entry rides along, whose 64
  tokens the processor appends). BabyAI: ``[direction] + image(7, 7, 3).flatten()`` (C order) = 148 ints.
- ``text_observation``: the mission, a :class:`gymnasium.spaces.Text` (``text_as_bytes`` gives fixed-size bytes).
- ``image_observation``: ``Box(0, 255, (84, 84, 4), uint8)``, 4 grayscale frames, oldest first, channel-last.
- ``reward``: ``Box(-inf, inf, (1,), float32)``, the previous reward, for discrete and image tasks.

The reward fed with ``o_t`` is the one that led to it (0 at reset): the same shift the processor applies to the
datasets' rewards at training time.

This module (like all of :mod:`jat_policy.wrappers`) uses gymnasium and numpy only, never torch.
"""

from __future__ import annotations

import importlib
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "ChannelLast",
    "JatObservation",
    "MAX_CONTINUOUS_SIZE",
    "MAX_DISCRETE_SIZE",
    "STEP_KEYS",
    "SUCCESS_KEYS",
    "TEXT_BYTES",
    "TEXT_CHARSET",
    "TextAsBytes",
    "decode_text",
    "encode_text",
    "is_image_space",
    "is_text_space",
    "raw_continuous",
    "require",
    "step_success",
    "update_success",
    "vector_step_success",
]

MAX_CONTINUOUS_SIZE = 377  # JAT's continuous encoder input: observation + previous reward
MAX_DISCRETE_SIZE = 212  # JAT's multi-discrete encoder input: 148 observation ints + 64 text tokens
MAX_DISCRETE_WITH_TEXT = 148
MAX_DISCRETE_VALUE = 50257  # discrete observations are embedded with the GPT-2 vocabulary
TEXT_BYTES = 256  # size of the UTF-8 text buffer of TextAsBytes
TEXT_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "  # printable ASCII
IMAGE_SHAPE = (84, 84, 4)
STEP_KEYS = ("continuous_observation", "discrete_observation", "text_observation", "image_observation", "reward")
_OBS_KEYS = STEP_KEYS[:4]
_REWARD_SPACE = spaces.Box(-np.inf, np.inf, (1,), np.float32)


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional dependency or raise an ImportError that names the extra to install.

    Args:
        module: Module to import, e.g. ``"ale_py"``.
        extra: The jat-policy extra that provides it, e.g. ``"atari"``.
        what: What needs it, for the message (``"Atari tasks"``).

    Returns:
        The imported module.

    Raises:
        ImportError: If the module is missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f'{what} need the {module!r} package: pip install "jat-policy[{extra}]" ({e})') from e


def is_text_space(space: spaces.Space) -> bool:
    """Whether ``space`` holds strings: a :class:`~gymnasium.spaces.Text` or e.g. minigrid's ``MissionSpace``."""
    if isinstance(space, spaces.Text):
        return True
    dtype = getattr(space, "dtype", None)
    try:
        return dtype is str or np.dtype(dtype).kind in "US"
    except TypeError:
        return False


def encode_text(text: str, length: int = TEXT_BYTES) -> np.ndarray:
    """UTF-8 encode ``text`` into a zero-padded ``(length,)`` uint8 array (truncated at a character boundary).

    Args:
        text: The string.
        length: Buffer size in bytes.

    Returns:
        A ``(length,)`` uint8 array.
    """
    data = text.encode("utf-8")[:length]
    data = data.decode("utf-8", errors="ignore").encode("utf-8")  # never cut a multi-byte character in half
    out = np.zeros(length, dtype=np.uint8)
    out[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return out


def _decode_row(row: np.ndarray) -> str:
    row = row.astype(np.uint8, copy=False)
    end = np.flatnonzero(row == 0)
    return row[: end[0] if len(end) else len(row)].tobytes().decode("utf-8", errors="replace")


def decode_text(x: Any) -> str | list[str]:
    """Turn a text observation back into strings, whichever form it has.

    Args:
        x: A ``str``; a list/tuple of ``str``; ``bytes``; a ``(256,)`` uint8 array (one :class:`TextAsBytes`
            observation) or ``(N, 256)`` (a batch, e.g. from an SB3 VecEnv); a numpy array of strings; or any
            array-like (a CPU tensor) of those bytes.

    Returns:
        ``str`` for a single observation, ``list[str]`` for a batch.

    Raises:
        ValueError: For arrays of another rank or dtype.

    Example:
        >>> from jat_policy.wrappers import decode_text, encode_text
        >>> decode_text(encode_text("go to the red ball"))
        'go to the red ball'
    """
    if isinstance(x, str):
        return x
    if isinstance(x, bytes | bytearray):
        return bytes(x).split(b"\0", 1)[0].decode("utf-8", errors="replace")
    if isinstance(x, list | tuple) and all(isinstance(item, str) for item in x):
        return list(x)
    arr = np.asarray(x)
    if arr.dtype.kind in "US":
        return str(arr) if arr.ndim == 0 else [str(item) for item in arr.reshape(-1)]
    if arr.dtype.kind not in "iub" or arr.ndim not in (1, 2):
        raise ValueError(
            f"decode_text expects a str, a list of str, or uint8 bytes of shape (256,) or (N, 256); got an array of "
            f"dtype {arr.dtype} and shape {arr.shape}."
        )
    return _decode_row(arr) if arr.ndim == 1 else [_decode_row(row) for row in arr]


# --------------------------------------------------------------------------------------------------------------
# Observation layouts: which raw entries become which step-dict key.


def _discrete_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray] | None:
    """(nvec, start) of a flattened discrete-valued space, or None if the space is not discrete-valued."""
    if isinstance(space, spaces.Discrete):
        return np.array([space.n], np.int64), np.array([space.start], np.int64)
    if isinstance(space, spaces.MultiDiscrete):
        return space.nvec.reshape(-1).astype(np.int64), space.start.reshape(-1).astype(np.int64)
    if isinstance(space, spaces.MultiBinary):
        n = int(np.prod(space.shape))
        return np.full(n, 2, np.int64), np.zeros(n, np.int64)
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.integer) and space.shape != ():
        low, high = space.low.reshape(-1).astype(np.int64), space.high.reshape(-1).astype(np.int64)
        return high - low + 1, low
    return None


def is_image_space(space: spaces.Space) -> bool:
    """Whether ``space`` is a uint8 image: (H, W), (H, W, C) or (C, H, W) with C in {1, 3}, over 212 values.

    Smaller integer arrays (minigrid's 7x7x3 grid) are discrete observations, not pictures.
    """
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or int(np.prod(space.shape)) <= MAX_DISCRETE_SIZE:
        return False
    shape = space.shape
    return len(shape) == 2 or (len(shape) == 3 and (shape[-1] in (1, 3) or shape[0] in (1, 3)))


def _is_continuous(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 1


@dataclass
class _Layout:
    """Where each step-dict entry comes from (``None`` key = the whole raw observation)."""

    continuous: list[str | None] = field(default_factory=list)
    discrete: list[str | None] = field(default_factory=list)
    text: str | None = None
    image: bool = False
    nvec: np.ndarray | None = None
    start: np.ndarray | None = None
    continuous_size: int = 0
    text_space: spaces.Text | None = None
    low: np.ndarray | None = None  # (continuous_size,) the env's bounds of the continuous values
    high: np.ndarray | None = None


_SUPPORTED = (
    "a 1-D Box (at most 376 values), an image Box (H, W), (H, W, C) or (C, H, W) uint8 with C in {1, 3} (wrap_env "
    "resizes, grayscales and stacks it), Discrete/MultiDiscrete/MultiBinary/integer Box, a Dict of 1-D Boxes, or a "
    "Dict with one text entry and discrete-valued entries (minigrid)"
)


def _unsupported(space: spaces.Space, why: str = "") -> ValueError:
    return ValueError(
        f"Unsupported observation space {space}{': ' + why if why else ''}. JAT wrappers accept {_SUPPORTED}. "
        "Flatten or convert it first (gymnasium.wrappers.FlattenObservation / TransformObservation)."
    )


def _text_space_for(space: spaces.Space) -> spaces.Text:
    if isinstance(space, spaces.Text):
        charset = "".join(sorted(space.character_set))
        return spaces.Text(max_length=min(space.max_length, TEXT_BYTES), min_length=0, charset=charset)
    return spaces.Text(max_length=TEXT_BYTES, min_length=0, charset=TEXT_CHARSET)


def _continuous_layout(keys: list[str | None], parts: list[spaces.Box]) -> _Layout:
    low = np.concatenate([p.low.reshape(-1) for p in parts]).astype(np.float32)  # (n,)
    high = np.concatenate([p.high.reshape(-1) for p in parts]).astype(np.float32)
    return _Layout(continuous=keys, continuous_size=len(low), low=low, high=high)


def _dict_layout(space: spaces.Dict) -> _Layout:
    layout = _Layout()
    text_keys = [k for k, s in space.spaces.items() if is_text_space(s)]
    if len(text_keys) > 1:
        raise _unsupported(space, f"more than one text entry ({text_keys})")
    if not text_keys and space.spaces and all(_is_continuous(s) for s in space.spaces.values()):
        return _continuous_layout(list(space.spaces), list(space.spaces.values()))
    if not text_keys:
        raise _unsupported(space, "a Dict needs a text entry or only 1-D float Boxes")
    layout.text, layout.text_space = text_keys[0], _text_space_for(space[text_keys[0]])
    bounds = []
    for key, sub in space.spaces.items():
        if key == layout.text:
            continue
        b = _discrete_bounds(sub)
        if b is None:
            raise _unsupported(space, f"entry {key!r} ({sub}) is not discrete-valued; with text, JAT needs discrete")
        layout.discrete.append(key)
        bounds.append(b)
    if not bounds:
        raise _unsupported(space, "a text entry alone; JAT needs discrete observations next to the text")
    layout.nvec, layout.start = np.concatenate([b[0] for b in bounds]), np.concatenate([b[1] for b in bounds])
    return layout


def _check_sizes(space: spaces.Space, layout: _Layout) -> None:
    if layout.continuous_size + 1 > MAX_CONTINUOUS_SIZE:
        raise ValueError(
            f"Observation {space} has {layout.continuous_size} values; JAT's continuous encoder takes at most "
            f"{MAX_CONTINUOUS_SIZE - 1} (+1 for the reward). Reduce it (select features, or "
            "gymnasium.wrappers.TransformObservation) before wrapping."
        )
    if layout.nvec is None:
        return
    limit = MAX_DISCRETE_WITH_TEXT if layout.text else MAX_DISCRETE_SIZE
    if len(layout.nvec) > limit:
        raise ValueError(
            f"Observation {space} flattens to {len(layout.nvec)} discrete values; JAT takes at most {limit} "
            f"({'148 + 64 text tokens' if layout.text else 'the width of its multi-discrete encoder'}). "
            "Images must be uint8 (H, W), (H, W, C) or (C, H, W) with C in {1, 3}, bounds 0..255."
        )
    if np.any(layout.start < 0) or np.any(layout.start + layout.nvec > MAX_DISCRETE_VALUE):
        raise ValueError(
            f"Observation {space} has discrete values outside 0..{MAX_DISCRETE_VALUE - 1}; JAT embeds them as "
            "tokens. Shift/clip them into that range, or cast to float to have them read as a continuous vector."
        )


def _layout(space: spaces.Space) -> _Layout:
    if isinstance(space, spaces.Dict):
        layout = _dict_layout(space)
    elif _is_continuous(space):
        layout = _continuous_layout([None], [space])
    elif isinstance(space, spaces.Box) and space.shape == IMAGE_SHAPE and space.dtype == np.uint8:
        layout = _Layout(image=True)
    elif is_image_space(space):
        raise ValueError(
            f"JatObservation takes images as (84, 84, 4) uint8 stacked frames, got {space}; use "
            "jat_policy.wrappers.wrap_env, which resizes, grayscales and stacks frames first."
        )
    elif (bounds := _discrete_bounds(space)) is not None:
        layout = _Layout(discrete=[None], nvec=bounds[0], start=bounds[1])
    else:
        raise _unsupported(space)
    _check_sizes(space, layout)
    return layout


def _reward_bounds(env: gym.Env) -> tuple[float, float]:
    """The env's declared reward range; Gymnasium 1.x dropped ``reward_range``, so usually ±inf."""
    declared = getattr(env.unwrapped, "reward_range", None)
    try:
        low, high = (float(v) for v in declared)
    except (TypeError, ValueError):
        return -np.inf, np.inf
    return low, high


def _observation_space(layout: _Layout, reward_bounds: tuple[float, float]) -> spaces.Dict:
    out: dict[str, spaces.Space] = {}
    if layout.continuous:
        low = np.append(layout.low, np.float32(reward_bounds[0]))  # (n + 1,): the env's bounds ‖ the reward's
        high = np.append(layout.high, np.float32(reward_bounds[1]))
        out["continuous_observation"] = spaces.Box(low, high, dtype=np.float32)
    if layout.discrete:
        out["discrete_observation"] = spaces.MultiDiscrete(layout.nvec, dtype=np.int64, start=layout.start)
    if layout.text_space is not None:
        out["text_observation"] = layout.text_space
    if layout.image:
        out["image_observation"] = spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)
    if not layout.continuous:
        out["reward"] = _REWARD_SPACE
    return spaces.Dict(out)


def _part(obs: Any, key: str | None) -> Any:
    return obs if key is None else obs[key]


class JatObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turn a raw observation into the JAT step dict, carrying the previous reward along.

    Continuous observations get the previous reward appended (``obs ‖ r``, float32); discrete, text and image
    observations get it in a ``"reward"`` entry. After ``reset`` the reward is 0.0. Images must already be
    ``(84, 84, 4)`` uint8 stacked frames: use :func:`jat_policy.wrappers.wrap_env`, which adds the frame
    preprocessing in front of this wrapper. Dict entries are concatenated in the Dict's key order (minigrid:
    ``direction`` then ``image``, exactly JAT's 148-int layout).

    Args:
        env: Environment with a supported observation space (see the ValueError message).

    Raises:
        ValueError: If the observation space is not supported, or too large for JAT.

    Example:
        >>> import gymnasium as gym
        >>> from jat_policy.wrappers import JatObservation
        >>> env = JatObservation(gym.make("CartPole-v1"))
        >>> obs, info = env.reset(seed=0)
        >>> obs["continuous_observation"].shape, float(obs["continuous_observation"][-1])
        ((5,), 0.0)
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._layout = _layout(env.observation_space)
        self.observation_space = _observation_space(self._layout, _reward_bounds(env))

    def observation(self, obs: Any, reward: SupportsFloat) -> dict[str, Any]:
        """Build the step dict of ``obs`` with ``reward`` as the previous reward."""
        layout, out = self._layout, {}
        if layout.continuous:
            values = [np.asarray(_part(obs, k), dtype=np.float32).reshape(-1) for k in layout.continuous]
            out["continuous_observation"] = np.concatenate([*values, np.array([reward], np.float32)])  # (n+1,)
        if layout.discrete:
            values = [np.asarray(_part(obs, k), dtype=np.int64).reshape(-1) for k in layout.discrete]
            out["discrete_observation"] = np.concatenate(values)  # (sum of flattened sizes,)
        if layout.text is not None:
            out["text_observation"] = str(obs[layout.text])[: layout.text_space.max_length]
        if layout.image:
            out["image_observation"] = np.asarray(obs, dtype=np.uint8)
        if not layout.continuous:
            out["reward"] = np.array([reward], dtype=np.float32)
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset the env; the step dict carries a previous reward of 0.0."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self.observation(obs, 0.0), info

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """Step the env; the step dict carries the reward this step returned (a Python ``float``, as Gymnasium's)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)  # minigrid returns int 0 on failure; every JAT stack returns float
        return self.observation(obs, reward), reward, terminated, truncated, info


class TextAsBytes(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Store the text entry as fixed-size UTF-8 bytes, so SB3 VecEnvs (which need fixed shapes) can buffer it.

    ``text_observation`` becomes ``Box(0, 255, (length,), uint8)``: the UTF-8 encoding, zero-padded (and truncated
    at a character boundary if longer). :func:`decode_text` turns it back into ``str``.

    Args:
        env: A step-dict env with a :class:`~gymnasium.spaces.Text` ``text_observation``.
        key: The entry to convert.
        length: Buffer size in bytes.

    Raises:
        ValueError: If the env has no text entry under ``key``.

    Example:
        >>> import gymnasium as gym
        >>> import minigrid  # registers the MiniGrid-* ids
        >>> from jat_policy.wrappers import TextAsBytes, decode_text, wrap_env
        >>> env = TextAsBytes(wrap_env(gym.make("MiniGrid-Empty-5x5-v0")))
        >>> obs, _ = env.reset(seed=0)
        >>> obs["text_observation"].shape, decode_text(obs["text_observation"])
        ((256,), 'get to the green goal square')
    """

    def __init__(self, env: gym.Env, key: str = "text_observation", length: int = TEXT_BYTES):
        gym.utils.RecordConstructorArgs.__init__(self, key=key, length=length)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or key not in space.spaces or not is_text_space(space[key]):
            raise ValueError(f"TextAsBytes needs a Dict observation with a text entry {key!r}; got {space}.")
        self.key, self.length = key, int(length)
        self.observation_space = spaces.Dict(
            {**space.spaces, key: spaces.Box(0, 255, (self.length,), np.uint8)}  # (length,) UTF-8 bytes
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Encode the text entry."""
        return {**observation, self.key: encode_text(str(observation[self.key]), self.length)}


class ChannelLast(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Move the first axis of an image observation to the end: ``(C, H, W)`` -> ``(H, W, C)``.

    Used both for channel-first images and for Gymnasium's ``FrameStackObservation`` output ``(4, 84, 84)``,
    which becomes JAT's ``(84, 84, 4)`` with the oldest frame in channel 0.

    Args:
        env: An env with a 3-D Box observation.

    Raises:
        ValueError: If the observation is not a 3-D Box.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from gymnasium.wrappers import FrameStackObservation
        >>> from jat_policy.wrappers import ChannelLast
        >>> env = ChannelLast(FrameStackObservation(gym.make("CartPole-v1"), 3))
        >>> env.observation_space.shape
        (4, 3)
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) < 2:
            raise ValueError(f"ChannelLast needs a Box observation with at least 2 axes; got {space}.")
        self.observation_space = spaces.Box(
            np.moveaxis(space.low, 0, -1), np.moveaxis(space.high, 0, -1), dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Move axis 0 last (a contiguous copy)."""
        return np.ascontiguousarray(np.moveaxis(np.asarray(observation), 0, -1))  # (C, H, W) -> (H, W, C)


# Where envs report success in ``info``: Meta-World and our BabyAI wrapper say "success", SB3-style envs "is_success".
SUCCESS_KEYS = ("success", "is_success")


def step_success(info: Mapping[str, Any]) -> bool | None:
    """Whether this step reports success (the first of :data:`SUCCESS_KEYS` present), or ``None`` if none is."""
    for key in SUCCESS_KEYS:
        if key in info:
            return bool(info[key])
    return None


def update_success(flag: bool | None, info: Mapping[str, Any]) -> bool | None:
    """The one success rule of collection and evaluation: an episode succeeds if any of its steps reports success.

    Args:
        flag: The episode's flag so far (``None`` while no step reported success either way).
        info: The step's ``info``.

    Returns:
        The updated flag; ``None`` if neither this step nor an earlier one has a success key.
    """
    success = step_success(info)
    return flag if success is None else bool(flag) or success


def vector_step_success(infos: Mapping[str, Any], n_envs: int) -> np.ndarray | None:
    """:func:`step_success` for a vector env's ``infos`` (arrays with ``_<key>`` masks): ``(n_envs,)`` or None."""
    for key in SUCCESS_KEYS:
        if key in infos:
            mask = np.asarray(infos.get(f"_{key}", np.ones(n_envs, dtype=bool)), dtype=bool)  # (n_envs,)
            return mask & np.asarray(infos[key]).astype(bool)
    return None


def raw_continuous(obs: dict[str, Any]) -> np.ndarray:
    """The env's own observation: a step dict's ``continuous_observation`` without the reward appended to it."""
    return np.asarray(obs["continuous_observation"])[:-1]  # (n,)


def unwrap_to(env: gym.Env, cls: type | tuple[type, ...]) -> gym.Env | None:
    """Return the first wrapper of type ``cls`` around ``env`` (outermost first), or ``None``."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, cls):
            return env
        env = env.env
    return env if isinstance(env, cls) else None
