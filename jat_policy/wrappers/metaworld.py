"""Meta-World v3 (metaworld 3.1): single-task goal-observable envs with JAT's episodes and seeding.

The JAT data used the reference's Meta-World **v2** fork; v2 does not run on today's MuJoCo, so tasks are built
from the v3 classes of the same names (``reach-v2`` -> ``reach-v3``). Dynamics and rewards of v3 are close to,
but not the same as, v2: scores compare approximately.

Seeding and task sampling. ``gym.make("Meta-World/MT1", env_name=..., seed=s)`` pre-samples 50 goal
configurations with the *global* NumPy RNG when the env is built (0.6 s) and picks one per reset, and its
``reset(seed=...)`` does not reseed them. The reference fork instead re-sampled object and goal positions on
every reset, from a continuous range. We do the latter, which :class:`MetaWorldSeeding` sets up on the
goal-observable class (what MT1 builds too): positions come from the env's own RNG, ``reset(seed=s)`` reseeds it
(same ``s`` -> same positions, different ``s`` -> different ones) and later unseeded resets keep drawing new
positions from that stream.

Episodes are truncated at 100 steps (the JAT data's length; ``max_episode_steps=`` to change it), never
terminated on success; ``info["success"]`` (1.0 once the task is solved at that step) is kept.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import TimeLimit

from jat_policy.wrappers.common import require
from jat_policy.wrappers.generic import wrap_env
from jat_policy.wrappers.rendering import ensure_offscreen_rendering

__all__ = ["MetaWorldSeeding", "make_metaworld"]

JAT_EPISODE_STEPS = 100


class MetaWorldSeeding(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Re-sample object/goal positions at every reset from the env's RNG, reseeded by ``reset(seed=...)``.

    Args:
        env: A Meta-World v3 env (a ``SawyerXYZEnv``, wrapped or not) whose task has been set.

    Raises:
        ValueError: If ``env`` is not a Meta-World env.

    Example:
        >>> import numpy as np
        >>> from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as ENVS
        >>> from jat_policy.wrappers import MetaWorldSeeding
        >>> env = MetaWorldSeeding(ENVS["reach-v3-goal-observable"]())
        >>> a, _ = env.reset(seed=1)
        >>> b, _ = env.reset(seed=1)
        >>> c, _ = env.reset(seed=2)
        >>> bool(np.array_equal(a, b)), bool(np.array_equal(a, c))
        (True, False)
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not hasattr(base, "_freeze_rand_vec") or not hasattr(base, "seeded_rand_vec"):
            raise ValueError(f"MetaWorldSeeding needs a Meta-World v3 env; got {type(base).__name__}.")
        # metaworld 3.1: with the vector unfrozen and seeded, reset_model draws positions from self.np_random
        base._freeze_rand_vec = False
        base.seeded_rand_vec = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset; a ``seed`` reseeds the env's RNG (positions, and the action/observation spaces)."""
        if seed is not None:
            self.env.unwrapped.seed(seed)
        return self.env.reset(seed=seed, options=options)


def v3_name(name: str) -> str:
    """Map a task name to its v3 env name: ``"reach"``, ``"reach-v2"``, ``"metaworld-reach"`` -> ``"reach-v3"``."""
    name = re.sub(r"^metaworld-", "", name)
    return re.sub(r"-v\d+$", "", name) + "-v3"


def make_metaworld(
    env_name: str,
    *,
    max_episode_steps: int = JAT_EPISODE_STEPS,
    render_mode: str | None = None,
    text_as_bytes: bool = False,
) -> gym.Env:
    """Build a Meta-World v3 task as a JAT step-dict env.

    Args:
        env_name: Task name: ``"reach-v3"`` (v2 names and bare names are mapped to v3).
        max_episode_steps: Truncate episodes after this many steps (JAT data: 100).
        render_mode: ``None``, ``"rgb_array"``, ``"depth_array"`` or ``"human"`` (needs a working MuJoCo GL).
        text_as_bytes: Accepted for a uniform signature; Meta-World has no text.

    Returns:
        The env; observation ``{"continuous_observation": (40,) float32}`` (39 + previous reward).

    Raises:
        ImportError: If metaworld is missing (``pip install "jat-policy[metaworld]"``).
        ValueError: For an unknown task or a non-positive ``max_episode_steps``.
    """
    require("metaworld", "metaworld", "Meta-World tasks")
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as envs

    name = v3_name(env_name)
    key = f"{name}-goal-observable"
    if key not in envs:
        names = sorted(k.removesuffix("-goal-observable") for k in envs)
        raise ValueError(f"Unknown Meta-World task {env_name!r} (-> {name!r}); known v3 tasks: {names}.")
    if int(max_episode_steps) < 1:
        raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}.")
    ensure_offscreen_rendering(render_mode)
    env = envs[key](render_mode=render_mode)
    # metaworld 3.1's goal-observable classes make the goal visible after __init__ but keep the observation space
    # computed before (goal bounds 0..0); the recomputed one holds what the env returns (steps clip to it).
    env.observation_space = env.sawyer_observation_space
    # the env itself truncates (and then refuses to step) at max_path_length (500)
    env.max_path_length = max(env.max_path_length, int(max_episode_steps))
    env = MetaWorldSeeding(env)
    env = TimeLimit(env, int(max_episode_steps))
    return wrap_env(env, text_as_bytes=text_as_bytes)
