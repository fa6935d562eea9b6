"""wrap_env on CartPole, Pendulum, MiniGrid and image envs; frame order; SB3 VecEnv buffering."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from jat_policy.wrappers import decode_text, make_env, wrap_env

# check_env's notes on wrapped envs and on the step dict's unbounded Boxes (by design) are not failures
pytestmark = pytest.mark.filterwarnings("ignore:.*(different from the unwrapped|infinity|symmetric and normalized)")


def _check_rollout(env: gym.Env, steps: int = 20, seed: int = 0) -> dict:
    obs, _ = env.reset(seed=seed)
    assert obs in env.observation_space
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs in env.observation_space
    return obs


def test_cartpole():
    raw = gym.make("CartPole-v1").observation_space
    env = wrap_env(gym.make("CartPole-v1"))
    # the env's own bounds (cart ±4.8, pole ±0.42 rad) for the observation, ±inf for the appended reward
    low, high = np.append(raw.low, -np.inf).astype(np.float32), np.append(raw.high, np.inf).astype(np.float32)
    assert env.observation_space == spaces.Dict({"continuous_observation": spaces.Box(low, high, dtype=np.float32)})
    assert env.observation_space["continuous_observation"].low[0] == np.float32(-4.8)
    assert env.action_space == spaces.Discrete(2)
    obs, _ = env.reset(seed=3)
    assert obs["continuous_observation"][-1] == 0.0
    obs, reward, *_ = env.step(1)
    assert obs["continuous_observation"][-1] == reward == 1.0
    _check_rollout(env, 50)


def test_pendulum_reward_shift_and_raw_values():
    raw = gym.make("Pendulum-v1")
    env = wrap_env(gym.make("Pendulum-v1"))
    assert env.action_space == raw.action_space
    raw_obs, _ = raw.reset(seed=5)
    obs, _ = env.reset(seed=5)
    np.testing.assert_array_equal(obs["continuous_observation"], [*raw_obs.astype(np.float32), 0.0])
    for _ in range(5):
        action = env.action_space.sample()
        raw_obs, raw_reward, *_ = raw.step(action)
        obs, reward, *_ = env.step(action)
        assert reward == raw_reward
        np.testing.assert_array_equal(obs["continuous_observation"], np.array([*raw_obs, raw_reward], np.float32))


def test_minigrid_dict_with_mission():
    import minigrid

    gym.register_envs(minigrid)
    raw = gym.make("MiniGrid-DoorKey-5x5-v0")
    env = wrap_env(gym.make("MiniGrid-DoorKey-5x5-v0"))
    assert set(env.observation_space.spaces) == {"discrete_observation", "text_observation", "reward"}
    raw_obs, _ = raw.reset(seed=1)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs["discrete_observation"], [raw_obs["direction"], *raw_obs["image"].flatten()])
    assert obs["text_observation"] == raw_obs["mission"] == "use the key to open the door and then get to the goal"
    _check_rollout(env, 30)
    check_env(env, skip_render_check=True)


def test_minigrid_text_as_bytes_buffers_in_sb3_vecenv():
    import minigrid
    from stable_baselines3.common.vec_env import DummyVecEnv

    gym.register_envs(minigrid)
    vec = DummyVecEnv([lambda: make_env("MiniGrid-Empty-5x5-v0", text_as_bytes=True) for _ in range(2)])
    obs = vec.reset()
    assert obs["text_observation"].shape == (2, 256) and obs["text_observation"].dtype == np.uint8
    assert decode_text(obs["text_observation"]) == ["get to the green goal square"] * 2
    assert obs["discrete_observation"].shape == (2, 148) and obs["reward"].shape == (2, 1)
    obs, rewards, dones, infos = vec.step(np.array([0, 1]))
    assert obs["discrete_observation"].shape == (2, 148)


class FrameEnv(gym.Env):
    """Uniform frames whose value encodes the step index, in any layout: frame t is filled with 10 * t + 10."""

    metadata = {"render_modes": []}

    def __init__(self, shape: tuple[int, ...], channels_first: bool = False):
        self.shape, self.channels_first = shape, channels_first
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _frame(self) -> np.ndarray:
        return np.full(self.shape, 10 * self.t + 10, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        return self._frame(), 0.5, False, self.t >= 20, {}


@pytest.mark.parametrize(
    "shape", [(96, 80, 3), (3, 96, 80), (96, 80), (96, 80, 1), (1, 60, 70), (84, 84, 3), (210, 160, 3)]
)
def test_image_env_resized_grayscaled_stacked_oldest_first(shape):
    env = wrap_env(FrameEnv(shape))
    assert env.observation_space == spaces.Dict(
        {
            "image_observation": spaces.Box(0, 255, (84, 84, 4), np.uint8),
            "reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    frames = obs["image_observation"]
    assert frames.shape == (84, 84, 4) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0, 0], [10, 10, 10, 10])  # padded with the reset frame
    for t in range(1, 7):
        obs, *_ = env.step(0)
        assert obs in env.observation_space
        expected = [10 * max(t - 3 + k, 0) + 10 for k in range(4)]  # oldest in channel 0, newest in channel 3
        np.testing.assert_array_equal(obs["image_observation"][40, 40], expected)
        assert np.all(obs["image_observation"] == obs["image_observation"][:1, :1])  # uniform frames stay uniform
        assert obs["reward"][0] == np.float32(0.5)


def test_prestacked_frames_are_only_moved_channel_last():
    env = wrap_env(FrameEnv((4, 84, 84)))
    obs, _ = env.reset(seed=0)
    assert obs["image_observation"].shape == (84, 84, 4)
    env = wrap_env(FrameEnv((84, 84, 4)))
    assert env.reset(seed=0)[0]["image_observation"].shape == (84, 84, 4)


def test_image_env_passes_check_env():
    check_env(wrap_env(FrameEnv((64, 48, 3))), skip_render_check=True)


def test_small_uint8_grids_are_discrete_not_images():
    env = wrap_env(FrameEnv((7, 7, 3)))  # 147 values: a grid, like minigrid's
    assert env.observation_space["discrete_observation"].shape == (147,)


def test_wrap_env_is_idempotent_and_applies_text_as_bytes():
    env = wrap_env(gym.make("CartPole-v1"))
    assert wrap_env(env) is env
    import minigrid

    gym.register_envs(minigrid)
    text_env = wrap_env(gym.make("MiniGrid-Empty-5x5-v0"))
    as_bytes = wrap_env(text_env, text_as_bytes=True)
    assert as_bytes.observation_space["text_observation"].shape == (256,)


def test_unsupported_images_and_dims():
    with pytest.raises(ValueError, match="at most 376"):
        wrap_env(_BoxEnv(377))
    wrap_env(_BoxEnv(376))  # the largest allowed (Humanoid-v4)
    bad = FrameEnv((96, 80, 3))
    bad.observation_space = spaces.Box(0, 100, (96, 80, 3), np.uint8)
    with pytest.raises(ValueError, match="bounds 0..255"):
        wrap_env(bad)
    with pytest.raises(ValueError, match=r"flattens to 15360 .* C in \{1, 3\}"):
        wrap_env(FrameEnv((2, 96, 80)))  # 2 channels: neither gray nor RGB, and too big for a discrete grid


class _BoxEnv(gym.Env):
    def __init__(self, n: int):
        self.observation_space = spaces.Box(-1, 1, (n,), np.float32)
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.float32), 0.0, False, False, {}


def test_make_env_accepts_any_gymnasium_id():
    env = make_env("Pendulum-v1")
    assert env.observation_space["continuous_observation"].shape == (4,)
    with pytest.raises(KeyError, match="Unknown task"):
        make_env("NotAnEnv-v9")
