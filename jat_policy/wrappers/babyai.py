"""BabyAI (minigrid ``BabyAI-*-v0``): the raw minigrid env through :func:`wrap_env`.

minigrid's observation ``Dict(direction: Discrete(4), image: Box(0, 255, (7, 7, 3), uint8), mission: str)``
becomes ``{"discrete_observation": [direction] + image.flatten() (148 ints, C order, as in the JAT data),
"text_observation": mission, "reward": (1,) float32}``. The only BabyAI-specific piece is :class:`QuietReset`:
minigrid's level generator prints "Sampling rejected: ..." lines on reset.

Unlike the reference (``MultiDiscrete([4] + [255] * 147)``), image values get 256 classes: minigrid's Box allows
255, which the reference's space excluded.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, SupportsFloat

import gymnasium as gym

from jat_policy.wrappers.common import require
from jat_policy.wrappers.generic import wrap_env

__all__ = ["MissionSuccess", "QuietReset", "make_babyai"]


class QuietReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Silence whatever the wrapped env prints to stdout during ``reset`` (minigrid's "Sampling rejected").

    Args:
        env: Any env.

    Example:
        >>> import gymnasium as gym
        >>> import minigrid
        >>> from jat_policy.wrappers import QuietReset
        >>> env = QuietReset(gym.make("BabyAI-GoToRedBall-v0"))
        >>> obs, info = env.reset(seed=0)
        >>> obs["mission"]
        'go to the red ball'
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset with stdout redirected to a discarded buffer."""
        with contextlib.redirect_stdout(io.StringIO()):
            return self.env.reset(seed=seed, options=options)


class MissionSuccess(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reports ``info["success"]`` at every step: the mission is done (minigrid pays a reward > 0 only then).

    minigrid's reward is ``1 - 0.9 * steps / max_steps`` on the step that completes the mission and 0 otherwise, so
    success is ``terminated and reward > 0``; a timeout or a failed mission is ``False``.

    Args:
        env: A minigrid env.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Steps the env and adds ``info["success"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(terminated and float(reward) > 0)
        return obs, reward, terminated, truncated, info


def make_babyai(
    env_id: str, *, text_as_bytes: bool = False, render_mode: str | None = None, **make_kwargs: Any
) -> gym.Env:
    """Build a BabyAI level as a JAT step-dict env.

    Args:
        env_id: minigrid id, e.g. ``"BabyAI-GoToRedBall-v0"``.
        text_as_bytes: Mission as ``(256,)`` uint8 UTF-8 bytes instead of a ``Text`` space (for SB3 VecEnvs).
        render_mode: Passed to ``gymnasium.make``.
        **make_kwargs: More ``gymnasium.make`` arguments (e.g. ``max_episode_steps``).

    Returns:
        The env; observation ``discrete_observation`` (148,), ``text_observation``, ``reward`` (1,).

    Raises:
        ImportError: If minigrid is missing (``pip install "jat-policy[babyai]"``).
    """
    minigrid = require("minigrid", "babyai", "BabyAI tasks")
    gym.register_envs(minigrid)
    env = MissionSuccess(QuietReset(gym.make(env_id, render_mode=render_mode, **make_kwargs)))
    return wrap_env(env, text_as_bytes=text_as_bytes)
