"""MuJoCo: v4 sizes (Pusher on v5), version= option, float32 + reward shift, truncation."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.data.schema import HUB_MUJOCO_SIZES
from jat_policy.wrappers import make_env
from jat_policy.wrappers.mujoco import with_version
from tests.conftest import assert_continuous_rollout

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(different from the unwrapped|infinity|symmetric and normalized|is out of date)"
)

# Envs JAT was trained on (gymnasium v4, facts §4.2); their (obs, act) sizes must be the Hub data's
V4_TASKS = ["ant", "doublependulum", "hopper", "pendulum", "pusher", "reacher", "humanoid"]


@pytest.mark.parametrize("task", [f"mujoco-{name}" for name in V4_TASKS])
def test_sizes_dtypes_rollout(task):
    n_obs, n_act = HUB_MUJOCO_SIZES[task]
    env = make_env(task)
    assert env.observation_space == gym.spaces.Dict(
        {"continuous_observation": gym.spaces.Box(-np.inf, np.inf, (n_obs + 1,), np.float32)}
    )
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (n_act,)
    assert_continuous_rollout(env, 5)


def test_raw_values_are_kept():
    env = make_env("mujoco-halfcheetah")
    raw = gym.make("HalfCheetah-v4")
    obs, _ = env.reset(seed=2)
    raw_obs, _ = raw.reset(seed=2)
    np.testing.assert_array_equal(obs["continuous_observation"][:-1], raw_obs.astype(np.float32))


def test_version_option_selects_v5():
    env = make_env("mujoco-ant", version="v5")
    assert env.unwrapped.spec.id == "Ant-v5"
    assert env.observation_space["continuous_observation"].shape == (106,)
    assert make_env("mujoco-reacher", version="5").observation_space["continuous_observation"].shape == (11,)
    assert with_version("Ant-v4", None) == "Ant-v4"
    with pytest.raises(ValueError, match="version"):
        with_version("Ant-v4", "latest")


def test_v4_is_built_without_deprecation_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        make_env("mujoco-swimmer")


def test_truncation_at_the_env_limit():
    env = make_env("mujoco-reacher")  # 50 steps
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, np.float32))[3] for _ in range(50)]
    assert flags == [False] * 49 + [True]
