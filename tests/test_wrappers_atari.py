"""Atari stack: spaces, frame order, reward shift, life/fire/clip options, minimal actions, seeding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.wrappers import EpisodicLife, FireReset, make_env
from jat_policy.wrappers.common import unwrap_to

pytestmark = pytest.mark.filterwarnings("ignore:.*(different from the unwrapped|infinity)")


@pytest.mark.parametrize("task, n_actions", [("atari-pong", 6), ("atari-breakout", 4), ("atari-mspacman", 9)])
def test_spaces_and_rollout(task, n_actions):
    env = make_env(task)
    assert set(env.observation_space.spaces) == {"image_observation", "reward"}
    assert env.observation_space["image_observation"] == gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert env.action_space == gym.spaces.Discrete(n_actions)  # v5 minimal action set, as in the JAT data
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and obs["reward"][0] == 0.0
    frames = obs["image_observation"]
    assert all(np.array_equal(frames[..., 0], frames[..., k]) for k in range(4))  # reset-padded stack
    for _ in range(30):
        previous = obs["image_observation"]
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert obs["image_observation"].dtype == np.uint8 and obs["image_observation"].shape == (84, 84, 4)
        # oldest first: the stack shifts left by one frame per step
        np.testing.assert_array_equal(obs["image_observation"][..., :3], previous[..., 1:])
        assert obs["reward"][0] == np.float32(reward)
        assert not (terminated or truncated)


def test_newest_frame_is_the_preprocessed_screen():
    env = make_env("atari-pong", noop_max=0)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(0)
    inner = unwrap_to(env, gym.wrappers.AtariPreprocessing)
    np.testing.assert_array_equal(obs["image_observation"][..., -1], inner._get_obs())


def test_stack_order_and_defaults():
    env = make_env("atari-breakout")
    names = []
    e = env
    while isinstance(e, gym.Wrapper):
        names.append(type(e).__name__)
        e = e.env
    assert names[:6] == [
        "JatObservation",
        "ChannelLast",
        "FrameStackObservation",
        "FireReset",
        "RecordEpisodeStatistics",
        "AtariPreprocessing",
    ]
    kwargs = e.unwrapped.spec.kwargs
    assert kwargs["frameskip"] == 1 and kwargs["repeat_action_probability"] == 0.0
    assert "EpisodicLife" not in names and "ClipReward" not in names  # evaluation defaults
    pong = make_env("atari-pong", episodic_life=True, clip_reward=True, fire_reset=False)
    assert unwrap_to(pong, EpisodicLife) is not None and unwrap_to(pong, FireReset) is None
    assert unwrap_to(pong, gym.wrappers.ClipReward) is not None


def test_seeding_is_reproducible():
    env = make_env("atari-pong")
    a, _ = env.reset(seed=7)
    actions = [env.action_space.sample() for _ in range(40)]
    traj_a = [env.step(x)[0]["image_observation"] for x in actions]
    b, _ = env.reset(seed=7)
    traj_b = [env.step(x)[0]["image_observation"] for x in actions]
    np.testing.assert_array_equal(a["image_observation"], b["image_observation"])
    np.testing.assert_array_equal(np.stack(traj_a), np.stack(traj_b))


def test_episodic_life_ends_on_a_lost_life_and_continues_the_game():
    env = make_env("atari-breakout", episodic_life=True)
    _, info = env.reset(seed=0)
    assert info["lives"] == 5
    terminations, lives_seen = 0, []
    for _ in range(3000):
        _, _, terminated, truncated, info = env.step(0)  # NOOP: the ball is missed, a life is lost
        if terminated or truncated:
            terminations += 1
            lives_seen.append(info["lives"])
            if "episode" in info:  # RecordEpisodeStatistics sits below the life wrapper: only at game over
                break
            _, info = env.reset()
    assert lives_seen == [4, 3, 2, 1, 0] and terminations == 5
    assert info["episode"]["l"] > 0


def test_clip_reward_and_raw_reward():
    raw, clipped = make_env("atari-asterix", noop_max=0), make_env("atari-asterix", clip_reward=True, noop_max=0)
    raw.reset(seed=3)
    clipped.reset(seed=3)
    raw_rewards, clipped_rewards = [], []
    for action in np.random.default_rng(0).integers(0, raw.action_space.n, 60):
        obs, r, *_ = raw.step(action)
        assert obs["reward"][0] == np.float32(r)
        obs, c, *_ = clipped.step(action)
        assert obs["reward"][0] == np.float32(c)  # the reward entry carries what the agent receives
        raw_rewards.append(r)
        clipped_rewards.append(c)
    assert max(raw_rewards) == 50.0  # raw game score by default (evaluation semantics)
    assert clipped_rewards == list(np.clip(raw_rewards, -1, 1))


def test_fire_reset_needs_fire():
    import ale_py

    gym.register_envs(ale_py)
    with pytest.raises(ValueError, match="FIRE"):
        FireReset(gym.make("ALE/Freeway-v5"))  # NOOP, UP, DOWN
    with pytest.raises(ValueError, match="not an ALE environment"):
        EpisodicLife(gym.make("CartPole-v1"))
