"""Gymnasium wrappers that turn environments into the JAT step dict (gymnasium + numpy only, never torch).

- :func:`make_env` builds any of the 157 JAT tasks (or a registered user task, or any Gymnasium id);
- :func:`wrap_env` wraps any supported env (see :mod:`jat_policy.wrappers.generic`);
- :func:`decode_text` reads text observations back, whether ``str`` or UTF-8 bytes;
- one module per domain: :mod:`~jat_policy.wrappers.atari`, :mod:`~jat_policy.wrappers.babyai`,
  :mod:`~jat_policy.wrappers.metaworld`, :mod:`~jat_policy.wrappers.mujoco`.

Importing this package registers the Gymnasium ids ``jat/<task>`` (see :mod:`jat_policy.wrappers.registration`).
Optional domains (ale-py, minigrid, metaworld, mujoco) are imported only when one of their envs is built.

Example:
    >>> import gymnasium as gym
    >>> import jat_policy
    >>> env = gym.make("jat/mujoco-pendulum")
    >>> sorted(env.observation_space.spaces)
    ['continuous_observation']
"""

from jat_policy.wrappers.atari import EpisodicLife, FireReset, make_atari
from jat_policy.wrappers.babyai import QuietReset, make_babyai
from jat_policy.wrappers.common import (
    STEP_KEYS,
    ChannelLast,
    JatObservation,
    TextAsBytes,
    decode_text,
    encode_text,
)
from jat_policy.wrappers.generic import frame_stack_84, wrap_env
from jat_policy.wrappers.metaworld import MetaWorldSeeding, make_metaworld
from jat_policy.wrappers.mujoco import make_mujoco
from jat_policy.wrappers.registration import gym_id, make_env, register_envs

__all__ = [
    "STEP_KEYS",
    "ChannelLast",
    "EpisodicLife",
    "FireReset",
    "JatObservation",
    "MetaWorldSeeding",
    "QuietReset",
    "TextAsBytes",
    "decode_text",
    "encode_text",
    "frame_stack_84",
    "gym_id",
    "make_atari",
    "make_babyai",
    "make_env",
    "make_metaworld",
    "make_mujoco",
    "register_envs",
    "wrap_env",
]

register_envs()
