"""Atari (ALE v5): the JAT preprocessing stack, built from Gymnasium's own wrappers where they do the job.

Stack, innermost first (reference: facts §4.2):

1. ``gym.make("ALE/<Game>-v5", frameskip=1, repeat_action_probability=0.0)``: sticky actions off, the v5
   **minimal** action set (what the JAT data uses). Montezuma's Revenge gets ``max_episode_steps=18000`` raw
   frames, as in the reference.
2. ``AtariPreprocessing(noop_max=30, frame_skip=4, screen_size=84)``: 1..30 random no-ops on reset, the action
   repeated 4 times with the rewards summed and the last two frames max-pooled, ALE grayscale, 84x84 ``INTER_AREA``.
3. ``RecordEpisodeStatistics``: below the life wrapper, so ``info["episode"]`` (raw return, length in agent steps)
   only appears when the whole game ends.
4. :class:`EpisodicLife` (option ``episodic_life``): a lost life ends the episode; the next ``reset`` continues
   the game with a no-op step unless it is really over.
5. :class:`FireReset` (games whose action 1 is FIRE): press FIRE then action 2 on reset.
6. ``ClipReward(-1, 1)`` (option ``clip_reward``; equal to the sign for Atari's integer rewards).
7. ``FrameStackObservation(4)`` + :class:`ChannelLast` + :class:`JatObservation`:
   ``{"image_observation": (84, 84, 4) uint8 (oldest frame first), "reward": (1,) float32}``.

Evaluation semantics by default (``episodic_life=False, clip_reward=False``): one episode is the whole game and
rewards are the raw game score, which is what JAT is scored on. The reference evaluated with episodic life on
and had to treat a lost life as a "fake done" (reset without clearing the agent's context); with it off there is
no fake done to handle. Turn both on to mimic how the expert data was generated (the reward entry then carries
the clipped reward).

Where our pixels may differ from the Hub data: the data came from envpool (cv2 RGB->gray conversion, then
resize), while ``AtariPreprocessing`` uses ALE's own grayscale palette and then resizes with the same
``INTER_AREA``, so intensities can differ by a few levels; the reference's evaluation (resize the RGB frame,
then gray) differs from both by a similar amount. Frame order, max-pooling, frame skip and no-op resets match.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing, ClipReward, RecordEpisodeStatistics

from jat_policy.wrappers.common import require
from jat_policy.wrappers.generic import wrap_env

__all__ = ["EpisodicLife", "FireReset", "make_atari"]

MONTEZUMA_MAX_FRAMES = 18000


def _ale(env: gym.Env) -> Any:
    ale = getattr(env.unwrapped, "ale", None)
    if ale is None:
        raise ValueError(f"{type(env.unwrapped).__name__} is not an ALE environment (no .ale attribute).")
    return ale


class EpisodicLife(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """End the episode when a life is lost; ``reset`` then continues the same game unless it is over.

    This is the training-time convention of the reference and of the expert data. A "continuing" reset takes
    one no-op step instead of restarting the game. ``reset(seed=...)`` always restarts the game.

    Args:
        env: An ALE env (wrapped or not).

    Example:
        >>> import gymnasium as gym
        >>> import ale_py
        >>> from jat_policy.wrappers import EpisodicLife
        >>> gym.register_envs(ale_py)
        >>> env = EpisodicLife(gym.make("ALE/Breakout-v5"))
        >>> obs, info = env.reset(seed=0)
        >>> info["lives"]
        5
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        _ale(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step; ``terminated`` is also set when a life is lost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _ale(self.env).lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Restart the game if it is over (or a seed is given), else continue it with one no-op step."""
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        self.game_over = False
        self.lives = _ale(self.env).lives()
        return obs, info


def has_fire(env: gym.Env) -> bool:
    """Whether the game's action 1 is FIRE (games that need FIRE to start)."""
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


class FireReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """On reset, press FIRE (action 1) then action 2, as games such as Breakout need to start.

    Args:
        env: An ALE env whose action 1 is FIRE.

    Raises:
        ValueError: If action 1 is not FIRE.

    Example:
        >>> import gymnasium as gym
        >>> import ale_py
        >>> from jat_policy.wrappers import FireReset
        >>> gym.register_envs(ale_py)
        >>> env = FireReset(gym.make("ALE/Breakout-v5"))
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape
        (210, 160, 3)
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        if not has_fire(env):
            raise ValueError(
                f"FireReset needs a game whose action 1 is FIRE; got {env.unwrapped.get_action_meanings()}."
            )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset, then press FIRE and action 2 (resetting again if that ends the episode)."""
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, step_info = self.env.step(action)
            info = {**info, **step_info}
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        return obs, info


def make_atari(
    env_id: str,
    *,
    episodic_life: bool = False,
    clip_reward: bool = False,
    noop_max: int = 30,
    fire_reset: bool = True,
    render_mode: str | None = None,
    text_as_bytes: bool = False,
    **make_kwargs: Any,
) -> gym.Env:
    """Build an ALE v5 game with JAT's preprocessing (see the module docstring for the stack).

    Args:
        env_id: ALE id, e.g. ``"ALE/Pong-v5"``.
        episodic_life: End episodes at each lost life (training-data convention). Off for evaluation.
        clip_reward: Clip rewards to [-1, 1]. Off for evaluation (scores are raw).
        noop_max: Maximum number of random no-ops on reset (0 disables).
        fire_reset: Press FIRE on reset in games that need it.
        render_mode: Passed to ``gymnasium.make`` (``"rgb_array"`` renders the raw 210x160 frame).
        text_as_bytes: Accepted for a uniform signature; Atari has no text.
        **make_kwargs: More ``gymnasium.make`` arguments (e.g. ``full_action_space=True``,
            ``repeat_action_probability=0.25``, ``max_episode_steps``).

    Returns:
        The env, observation ``{"image_observation": (84, 84, 4) uint8, "reward": (1,) float32}``.

    Raises:
        ImportError: If ale-py or OpenCV is missing (``pip install "jat-policy[atari]"``).
    """
    ale_py = require("ale_py", "atari", "Atari tasks")
    require("cv2", "atari", "Atari tasks")
    gym.register_envs(ale_py)
    kwargs = {"frameskip": 1, "repeat_action_probability": 0.0, **make_kwargs}
    if "MontezumaRevenge" in env_id:
        kwargs.setdefault("max_episode_steps", MONTEZUMA_MAX_FRAMES)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=84, grayscale_obs=True)
    env = RecordEpisodeStatistics(env)
    if episodic_life:
        env = EpisodicLife(env)
    if fire_reset and has_fire(env):
        env = FireReset(env)
    if clip_reward:
        env = ClipReward(env, -1.0, 1.0)
    return wrap_env(env, text_as_bytes=text_as_bytes)
