"""Meta-World v3: 39 + 1 floats, seeding of object/goal positions, 100-step truncation, success in info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.wrappers import make_env, make_metaworld
from jat_policy.wrappers.metaworld import v3_name
from tests.conftest import assert_continuous_rollout

pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*(different from the unwrapped|infinity|Constant\(s\) may be too high)"
)


@pytest.fixture(scope="module")
def reach():
    return make_env("metaworld-reach")


def test_spaces_rollout_and_reward_shift(reach):
    env = reach
    raw = env.unwrapped.sawyer_observation_space  # hand, gripper and goal bounded; object entries unbounded
    low, high = np.append(raw.low, -np.inf).astype(np.float32), np.append(raw.high, np.inf).astype(np.float32)
    assert env.observation_space == gym.spaces.Dict(
        {"continuous_observation": gym.spaces.Box(low, high, (40,), np.float32)}
    )
    assert np.all(high[36:39] > low[36:39])  # the goal is visible, so its bounds are not metaworld's stale 0..0
    assert env.action_space == gym.spaces.Box(-1, 1, (4,), np.float32)
    for terminated, info in assert_continuous_rollout(env, 10):
        assert "success" in info and not terminated


def test_truncated_at_100_steps_by_default(reach):
    reach.reset(seed=1)
    flags = [reach.step(np.zeros(4, np.float32))[2:4] for _ in range(100)]
    assert flags == [(False, False)] * 99 + [(False, True)]
    short = make_env("metaworld-reach", max_episode_steps=7)
    short.reset(seed=1)
    assert [short.step(np.zeros(4, np.float32))[3] for _ in range(7)] == [False] * 6 + [True]
    long = make_metaworld("reach-v3", max_episode_steps=600)  # beyond the env's own 500-step limit
    long.reset(seed=1)
    assert not any(long.step(np.zeros(4, np.float32))[3] for _ in range(550))


def test_seeds_give_reproducible_and_different_positions(reach):
    def positions(seed):
        return reach.reset(seed=seed)[0]["continuous_observation"][:-1].copy()

    a, b, c = positions(3), positions(3), positions(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[-3:], c[-3:])  # goal differs with the seed
    # unseeded resets keep drawing new positions; reseeding replays the same sequence
    reach.reset(seed=5)
    first = [reach.reset()[0]["continuous_observation"][-4:-1].copy() for _ in range(3)]
    reach.reset(seed=5)
    again = [reach.reset()[0]["continuous_observation"][-4:-1].copy() for _ in range(3)]
    np.testing.assert_array_equal(first, again)
    assert len({tuple(x) for x in first}) == 3


def test_object_positions_are_seeded_too():
    env = make_env("metaworld-pick-place")
    a = env.reset(seed=0)[0]["continuous_observation"]
    b = env.reset(seed=0)[0]["continuous_observation"]
    c = env.reset(seed=1)[0]["continuous_observation"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[4:7], c[4:7])  # object position
    assert not np.allclose(a[36:39], c[36:39])  # goal position


def test_scripted_expert_succeeds_within_100_steps():
    from metaworld.policies import ENV_POLICY_MAP

    env = make_env("metaworld-reach")
    policy = ENV_POLICY_MAP["reach-v3"]()
    obs, _ = env.reset(seed=0)
    success = False
    for _ in range(100):
        obs, _, terminated, truncated, info = env.step(policy.get_action(obs["continuous_observation"][:-1]))
        success = success or bool(info["success"])
        if terminated or truncated:
            break
    assert success and truncated and not terminated  # success does not end the episode


def test_names_and_errors():
    assert v3_name("reach-v2") == v3_name("reach") == v3_name("metaworld-reach") == "reach-v3"
    with pytest.raises(ValueError, match="Unknown Meta-World task"):
        make_metaworld("fly-v3")
    with pytest.raises(ValueError, match="max_episode_steps"):
        make_metaworld("reach", max_episode_steps=0)
