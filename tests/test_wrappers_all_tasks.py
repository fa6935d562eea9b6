"""Slow sweeps: every one of the 157 JAT tasks constructs and steps; per-domain invariants over all tasks."""

from __future__ import annotations

import numpy as np
import pytest

from jat_policy.tasks import get_task, list_tasks
from jat_policy.wrappers import make_env

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*Constant\\(s\\) may be too high")]

KEYS = {
    "atari": {"image_observation", "reward"},
    "babyai": {"discrete_observation", "text_observation", "reward"},
    "metaworld": {"continuous_observation"},
    "mujoco": {"continuous_observation"},
}


@pytest.mark.parametrize("task", list_tasks())
def test_every_task_constructs_and_steps(task):
    spec = get_task(task)
    env = make_env(task)
    try:
        assert set(env.observation_space.spaces) == KEYS[spec.domain]
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
        for _ in range(5):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert obs in env.observation_space, task
            assert type(reward) is float, task
            if "continuous_observation" in obs:
                assert obs["continuous_observation"][-1] == np.float32(reward)
                assert obs["continuous_observation"].shape[0] <= 377
            else:
                assert obs["reward"][0] == np.float32(reward)
            if terminated or truncated:
                obs, _ = env.reset()
        assert (spec.action_type == "discrete") == hasattr(env.action_space, "n")
    finally:
        env.close()


@pytest.mark.parametrize("task", list_tasks("babyai"))
def test_babyai_missions_fit_the_text_space(task):
    env = make_env(task)
    space = env.observation_space["text_observation"]
    for seed in range(25):
        obs, _ = env.reset(seed=seed)
        assert obs["text_observation"] in space, obs["text_observation"]
        assert obs["discrete_observation"].shape == (148,)


@pytest.mark.parametrize("task", list_tasks("metaworld"))
def test_metaworld_seeding_per_task(task):
    env = make_env(task)
    a = env.reset(seed=0)[0]["continuous_observation"]
    b = env.reset(seed=0)[0]["continuous_observation"]
    c = env.reset(seed=1)[0]["continuous_observation"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), "positions must depend on the seed"
    assert a.shape == (40,)
