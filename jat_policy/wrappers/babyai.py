"""BabyAI (minigrid ``BabyAI-*-v0``): the raw minigrid env through :func:`wrap_env`.

minigrid's observation ``Dict(direction: Discrete(4), image: Box(0, 255, (7, 7, 3), uint8), mission: str)``
becomes ``{"discrete_observation": [direction] + image.flatten() (148 ints, C order, as in the JAT data),
"text_observation": mission, "reward": (1,) float32}``. The only BabyAI-specific pieces are :class:`QuietReset`
(minigrid's level generator prints "Sampling rejected: ..." lines on reset) and :func:`mirror_episodes`, the
left-right mirror image of demonstrations (``jat-policy train --augment mirror``).

Unlike the reference (``MultiDiscrete([4] + [255] * 147)``), image values get 256 classes: minigrid's Box allows
255, which the reference's space excluded.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from jat_policy.wrappers.common import require
from jat_policy.wrappers.generic import wrap_env

__all__ = ["MissionSuccess", "QuietReset", "make_babyai", "mirror_episodes"]


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


# minigrid's actions: 0 turn left, 1 turn right, 2 forward, 3 pick up, 4 drop, 5 toggle, 6 done.
_MIRRORED_ACTION = np.array([1, 0, 2, 3, 4, 5, 6])
_SIDE = re.compile(r"\b(left|right)\b")
_VIEW = (7, 7, 3)  # the egocentric image, indexed [x, y, channel]; the agent sits at (3, 6) facing -y


def mirror_episodes(batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """The left-right mirror images of BabyAI episodes in the Hub schema (a batch: column -> one row per episode).

    Reflecting a level across a line parallel to the agent's first heading maps every egocentric view to its mirror
    image (``x -> 6 - x``), every left turn to a right turn and back, and every heading ``d`` to
    ``(2 d_0 - d) mod 4``; pick up, drop, toggle and done are unchanged, as are the rewards. The missions swap the
    words "left" and "right" ("pick up the ball on your left"). So a mirrored demonstration is the bot's
    demonstration in the mirrored level, whose layouts are as likely as the original's: replaying the mirrored
    actions in a reflected minigrid level gives exactly the mirrored observations (``tests/test_wrappers_babyai.py``).
    This doubles the layouts behaviour cloning sees; it changes the paper's data, so results trained with it are
    reported apart.

    Args:
        batch: ``discrete_observations`` (per episode ``(T, 148)`` ints: heading, then the C-order image),
            ``discrete_actions`` (per episode ``(T,)``), and optionally ``text_observations`` (missions); other
            columns are copied.

    Returns:
        The mirrored batch, same columns and shapes.

    Raises:
        ValueError: For an episode whose observations are not BabyAI's 148 ints, or actions outside 0..6.
    """
    out = {column: list(rows) for column, rows in batch.items()}
    for column in ("discrete_observations", "discrete_actions"):
        if column not in batch:
            raise ValueError(f"mirror_episodes needs BabyAI episodes with {column!r}; got columns {list(batch)}.")
    mirrored_obs, mirrored_actions = [], []
    for index, (observations, actions) in enumerate(
        zip(batch["discrete_observations"], batch["discrete_actions"], strict=True)
    ):
        if len(observations) == 0:  # an empty episode (the windows drop it)
            mirrored_obs.append([])
            mirrored_actions.append([])
            continue
        obs = np.asarray(observations, dtype=np.int64)
        act = np.asarray(actions, dtype=np.int64)
        if obs.ndim != 2 or obs.shape[1] != 1 + int(np.prod(_VIEW)) or not np.isin(obs[:, 0], range(4)).all():
            raise ValueError(
                f"Episode {index}: discrete_observations of shape {obs.shape} are not BabyAI's (T, 148) "
                "[heading 0..3, 7x7x3 image]; mirror only BabyAI tasks."
            )
        if ((act < 0) | (act >= len(_MIRRORED_ACTION))).any():
            raise ValueError(f"Episode {index}: discrete_actions {sorted(set(act.tolist()))} are not minigrid's 0..6.")
        flipped = np.empty_like(obs)
        flipped[:, 0] = (2 * obs[0, 0] - obs[:, 0]) % 4
        flipped[:, 1:] = obs[:, 1:].reshape(-1, *_VIEW)[:, ::-1].reshape(len(obs), -1)  # x -> 6 - x
        mirrored_obs.append(flipped.tolist())
        mirrored_actions.append(_MIRRORED_ACTION[act].tolist())
    out["discrete_observations"], out["discrete_actions"] = mirrored_obs, mirrored_actions
    if "text_observations" in batch:
        swap = {"left": "right", "right": "left"}
        out["text_observations"] = [
            [_SIDE.sub(lambda m: swap[m.group(1)], mission) for mission in missions]
            for missions in batch["text_observations"]
        ]
    return out
