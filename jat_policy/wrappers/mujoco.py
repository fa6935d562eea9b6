"""MuJoCo (gymnasium locomotion/manipulation envs): the raw env through :func:`wrap_env`.

JAT's data and checkpoints used the **v4** envs, so v4 is the default where it still runs under MuJoCo 3
(observation sizes of v5 differ for Ant, Humanoid, HumanoidStandup, InvertedDoublePendulum and Reacher).
``Pusher-v4`` only runs on ``mujoco<3``, so the Pusher task is built on v5 (same 23/7 sizes). ``version="v5"``
selects v5 for any task. Observations (float64 in gymnasium) become float32 with the previous reward appended.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import gymnasium as gym

from jat_policy.wrappers.common import require
from jat_policy.wrappers.generic import wrap_env
from jat_policy.wrappers.rendering import ensure_offscreen_rendering

__all__ = ["make_mujoco"]


def with_version(env_id: str, version: str | None) -> str:
    """Replace the ``-vN`` suffix of ``env_id`` by ``version`` (``"v5"`` or ``"5"``); ``None`` keeps it."""
    if version is None:
        return env_id
    version = str(version)
    if not re.fullmatch(r"v?\d+", version):
        raise ValueError(f"version must look like 'v4' or 'v5', got {version!r}.")
    return re.sub(r"-v\d+$", "", env_id) + "-" + ("v" + version.removeprefix("v"))


def make_mujoco(
    env_id: str,
    *,
    version: str | None = None,
    render_mode: str | None = None,
    text_as_bytes: bool = False,
    **make_kwargs: Any,
) -> gym.Env:
    """Build a gymnasium MuJoCo env as a JAT step-dict env.

    Args:
        env_id: Gymnasium id, e.g. ``"Hopper-v4"``.
        version: Override the id's version (``"v5"``).
        render_mode: Passed to ``gymnasium.make``.
        text_as_bytes: Accepted for a uniform signature; MuJoCo has no text.
        **make_kwargs: More ``gymnasium.make`` arguments (e.g. ``max_episode_steps``, v5 options).

    Returns:
        The env; observation ``{"continuous_observation": (n + 1,) float32}``.

    Raises:
        ImportError: If mujoco is missing (``pip install "jat-policy[mujoco]"``), or for ``Pusher-v4`` on
            mujoco 3 (gymnasium's message).

    Example:
        >>> from jat_policy.wrappers import make_mujoco
        >>> make_mujoco("Ant-v4").observation_space["continuous_observation"].shape
        (28,)
        >>> make_mujoco("Ant-v4", version="v5").observation_space["continuous_observation"].shape
        (106,)
    """
    require("mujoco", "mujoco", "MuJoCo tasks")
    env_id = with_version(env_id, version)
    ensure_offscreen_rendering(render_mode)
    with warnings.catch_warnings():
        # v4 is chosen on purpose (JAT's observation sizes): silence gymnasium's "out of date" notice
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        env = gym.make(env_id, render_mode=render_mode, **make_kwargs)
    return wrap_env(env, text_as_bytes=text_as_bytes)
