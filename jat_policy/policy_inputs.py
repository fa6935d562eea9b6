"""What :class:`~jat_policy.policy.JatPolicy` accepts: the spaces it is built for, and the observations of ``predict``.

Everything is checked here before it reaches the model: a space the checkpoint cannot encode fails when the policy is
built, and a malformed observation (wrong shape, mixed batch, NaN, inf, huge values) fails before it could enter an
env's KV cache, with an error that names the key, the env and the likely mistake.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gymnasium import spaces

from jat_policy.wrappers import decode_text

__all__ = [
    "IMAGE_SHAPE",
    "INVALID_VALUE_MODES",
    "MAX_INPUT_MAGNITUDE",
    "OBSERVATION_KEYS",
    "batch_info",
    "check_action_space",
    "check_observation_space",
    "check_values",
    "decode_missions",
    "episode_starts",
]

OBSERVATION_KEYS = ("continuous_observation", "discrete_observation", "image_observation")
IMAGE_SHAPE = (84, 84, 4)
# Inputs beyond this magnitude are rejected like NaN/inf. Measured: a float32 JatModel's first LayerNorm squares its
# inputs, so continuous observations overflow to NaN from ~6e19 (tiny configs, the trained test checkpoints) to ~1e21
# (jat-small at init); 1e15 leaves four orders of magnitude for encoder weights larger than those measured.
MAX_INPUT_MAGNITUDE = 1e15
INVALID_VALUE_MODES = ("raise", "zero")


def decode_missions(value: Any) -> list[str]:
    """Missions as strings, from ``str``/lists of ``str`` or UTF-8 byte arrays (``make_env(text_as_bytes=True)``)."""
    out = decode_text(value)
    return [out] if isinstance(out, str) else list(out)


def _text_batch(key: str, value: Any) -> tuple[bool, int]:
    """(vectorized, n) of a ``Text`` entry: a ``str`` is one observation, a list/array of strings a batch."""
    if isinstance(value, str):
        return False, 1
    array = np.asarray(value)
    if array.ndim == 1 and array.size == 0:
        return True, 0  # an empty batch: np.asarray([]) is float64
    if array.dtype.kind not in "US" or array.ndim != 1:
        raise ValueError(
            f"observation[{key!r}] must be a str (one env) or a list/array of str (one per env), got "
            f"{type(value).__name__} with shape {array.shape} and dtype {array.dtype}."
        )
    return True, len(array)


def _array_batch(key: str, value: Any, space: spaces.Space) -> tuple[bool, int]:
    """(vectorized, n) of an array entry, by comparing its shape with the space's (like SB3)."""
    shape = np.shape(value)
    if shape == space.shape:
        return False, 1
    if len(shape) == len(space.shape) + 1 and shape[1:] == space.shape:
        return True, shape[0]
    hint = ""
    if key == "image_observation" and shape[-3:] == (4, 84, 84):
        hint = " Frames must be channel-last (84, 84, 4) as the wrappers return them, not channel-first."
    raise ValueError(
        f"observation[{key!r}] has shape {shape}, but the observation space expects {space.shape} for one env or "
        f"(n_envs, {', '.join(map(str, space.shape))}) for a batch.{hint}"
    )


def _valid_entries(key: str, value: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(array, ok)``: ``value`` as an array and where it is finite with ``|x| <= MAX_INPUT_MAGNITUDE``."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"observation[{key!r}] must hold real numbers, got dtype {array.dtype} (e.g. None entries or strings); "
            "pass the step dict the wrapped env returns."
        )
    if array.dtype.kind in "bu" and array.dtype.itemsize <= 4:
        return array, np.True_  # uint8 frames and the like cannot be invalid: no pass over them
    # Two comparisons rather than abs(): False for NaN and +-inf, and no overflow at int64's minimum.
    return array, (array >= -MAX_INPUT_MAGNITUDE) & (array <= MAX_INPUT_MAGNITUDE)


def _invalid_value_message(key: str, array: np.ndarray, ok: np.ndarray, vectorized: bool) -> str:
    """Names the key, the envs (rows) and the first offending value of an entry that failed :func:`_valid_entries`."""
    n_envs = len(array) if vectorized else 1
    flat, flat_ok = array.reshape(n_envs, -1), ok.reshape(n_envs, -1)  # (N, entries)
    bad_envs = np.flatnonzero(~flat_ok.all(axis=1))
    env = int(bad_envs[0])
    index = int(np.flatnonzero(~flat_ok[env])[0])
    where = f"env {env} (row {env} of the batch)" if vectorized else "the observation (env 0)"
    is_reward = key == "continuous_observation" and index == flat.shape[1] - 1
    reward = " (its last entry, the previous reward)" if is_reward else ""
    value = flat[env, index].item()  # a Python number: "nan", not "np.float32(nan)"
    return (
        f"observation[{key!r}] of {where} holds {value!r} at index {index}{reward}; envs with invalid values: "
        f"{bad_envs.tolist()}. JatPolicy takes finite numbers with |x| <= {MAX_INPUT_MAGNITUDE:g}: NaN/inf would "
        "poison the env's context for the rest of its episode, and larger values overflow the model. Nothing was "
        "fed to the model, so the state you passed is unchanged and still usable. Check the env or its wrappers (a "
        "diverged simulator, a division by zero), or build the policy with invalid_values='zero' to replace such "
        "values by 0."
    )


def batch_info(observation: dict[str, Any], space: spaces.Dict) -> tuple[bool, int]:
    """Whether ``observation`` is a batch (one row per env), and its number of envs."""
    missing = [key for key in space.spaces if key not in observation]
    if missing:
        raise ValueError(
            f"The observation lacks {missing} (it has {sorted(observation)}); the policy was built for the "
            f"observation space {space}. Was it made for another env?"
        )
    found = {}
    for key, sub in space.spaces.items():
        value = observation[key]
        found[key] = _text_batch(key, value) if isinstance(sub, spaces.Text) else _array_batch(key, value, sub)
    if len(set(found.values())) > 1:
        raise ValueError(
            "There seems to be a mix of vectorized and non-vectorized observations (or batches of different "
            f"sizes): (vectorized, n_envs) per key = {found}."
        )
    return next(iter(found.values()))


def episode_starts(episode_start: Any, n_envs: int) -> np.ndarray | None:
    """``episode_start`` as ``(N,)`` bools (``None`` stays ``None``), checked against the number of envs."""
    if episode_start is None:
        return None
    try:
        starts = np.asarray(episode_start, dtype=bool).reshape(-1)
    except (TypeError, ValueError) as err:  # ragged lists, objects numpy cannot read as bools
        message = f"episode_start must be {n_envs} bools (one per env), got {episode_start!r} ({err})."
        raise ValueError(message) from err
    if starts.shape != (n_envs,):
        raise ValueError(f"episode_start has {starts.size} entries for {n_envs} envs; pass one bool per env.")
    return starts


def check_values(observation: dict[str, Any], keys: list[str], vectorized: bool, mode: str) -> dict[str, Any]:
    """The observation, its ``keys`` checked (``mode="raise"``) or with invalid entries zeroed (``"zero"``).

    The one place inputs are validated: NaN/inf fed once would stay in the env's KV cache and poison every
    later step of its episode, and would make sampling raise inside torch.
    """
    for key in keys:
        array, ok = _valid_entries(key, observation[key])
        if ok.all():
            continue
        if mode == "raise":
            raise ValueError(_invalid_value_message(key, array, ok, vectorized))
        warnings.warn(
            f"observation[{key!r}] holds NaN, inf or |x| > {MAX_INPUT_MAGNITUDE:g}: replaced by 0 "
            "(invalid_values='zero').",
            stacklevel=3,
        )
        observation = {**observation, key: np.where(ok, array, 0).astype(array.dtype)}
    return observation


# --------------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------------


def check_observation_space(space: spaces.Space, config: Any, mission_slots: int) -> str:
    """The observation key of a JAT step-dict space the checkpoint (``config``) can encode, else a ValueError.

    Args:
        space: The wrapped env's observation space.
        config: The model's ``JatConfig``.
        mission_slots: Token slots a mission adds to each discrete observation (0 without text).

    Returns:
        ``"continuous_observation"``, ``"discrete_observation"`` or ``"image_observation"``.
    """
    if not isinstance(space, spaces.Dict):
        raise ValueError(
            f"JatPolicy reads the JAT step dict, but the observation space is {space}. Wrap the env first: "
            "`env = jat_policy.wrap_env(env)` (or build it with jat_policy.make_env) and pass its spaces."
        )
    keys = [key for key in OBSERVATION_KEYS if key in space.spaces]
    if len(keys) != 1:
        raise ValueError(
            f"The observation space must hold exactly one of {OBSERVATION_KEYS} (JAT encodes one observation "
            f"modality per token); got keys {list(space.spaces)}."
        )
    key, sub = keys[0], space.spaces[keys[0]]
    size = int(np.prod(sub.shape)) if sub.shape is not None else 0
    if key == "continuous_observation" and (len(sub.shape) != 1 or size > config.max_continuous_size):
        raise ValueError(
            f"continuous_observation {sub} must be 1-D with at most {config.max_continuous_size} values (obs and "
            "reward): the checkpoint's continuous encoder is that wide."
        )
    if key == "discrete_observation":
        slots = size + mission_slots
        if slots > config.max_discrete_value:  # fewer slots are zero-padded by the model (pad_discrete_slots)
            raise ValueError(
                f"discrete_observation {sub} (+ 64 mission tokens when there is a text_observation) gives {slots} "
                f"slots, but the checkpoint's multi-discrete encoder takes at most {config.max_discrete_value} "
                "(BabyAI: 148 + 64)."
            )
    if key == "image_observation" and tuple(sub.shape) != IMAGE_SHAPE:
        raise ValueError(
            f"image_observation must be {IMAGE_SHAPE} uint8 stacked frames (channel-last), got {sub}; build the "
            "env with jat_policy.make_env / wrap_env."
        )
    return key


def check_action_space(space: spaces.Space, config: Any) -> None:
    """Raises a ValueError for an action space the checkpoint (``config``) cannot represent."""
    if isinstance(space, spaces.Discrete):
        if space.n > config.vocab_size:
            raise ValueError(
                f"Action space {space} has more actions than the checkpoint's vocabulary ({config.vocab_size}): "
                "discrete actions are token ids, so this checkpoint cannot represent it."
            )
        return
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1 or space.shape[0] > config.max_continuous_size:
            raise ValueError(
                f"Action space {space} must be a 1-D Box of at most {config.max_continuous_size} values (the "
                "checkpoint's continuous encoder width); flatten it with a gymnasium ActionWrapper first."
            )
        return
    raise ValueError(
        f"Unsupported action space {space}: JAT acts in Discrete(n) or 1-D Box(k,) spaces (MultiDiscrete, "
        "Dict, ... cannot be represented by the checkpoint)."
    )
