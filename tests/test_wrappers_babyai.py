"""BabyAI: the 148-int layout, missions in the Text space, quiet resets, reward shift, truncation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.tasks import get_task
from jat_policy.wrappers import decode_text, make_env

pytestmark = pytest.mark.filterwarnings("ignore:.*(different from the unwrapped|infinity)")


def _raw(task: str) -> gym.Env:
    import minigrid

    gym.register_envs(minigrid)
    return gym.make(get_task(task).env_id)


@pytest.mark.parametrize("task", ["babyai-go-to-red-ball", "babyai-boss-level", "babyai-put-next", "babyai-open-door"])
def test_layout_matches_the_raw_env(task, capsys):
    env, raw = make_env(task), _raw(task)
    space = env.observation_space
    assert set(space.spaces) == {"discrete_observation", "text_observation", "reward"}
    assert space["discrete_observation"].shape == (148,) and space["discrete_observation"].dtype == np.int64
    assert isinstance(space["text_observation"], gym.spaces.Text)
    assert env.action_space == gym.spaces.Discrete(7)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        raw_obs, _ = raw.reset(seed=seed)
        for _ in range(10):
            assert obs in space
            expected = [raw_obs["direction"], *raw_obs["image"].flatten()]  # JAT: [direction] + (7, 7, 3) C order
            np.testing.assert_array_equal(obs["discrete_observation"], expected)
            assert obs["text_observation"] == raw_obs["mission"]
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            raw_obs, raw_reward, *_ = raw.step(action)
            assert reward == raw_reward and obs["reward"][0] == np.float32(reward)
            assert type(reward) is float  # minigrid returns int 0 on failure; Gymnasium and the reference float
            if terminated or truncated:
                break
    assert "Sampling rejected" not in capsys.readouterr().out


def test_missions_are_in_the_text_space():
    for task in ("babyai-synth-seq", "babyai-go-to-seq", "babyai-mini-boss-level"):
        env = make_env(task)
        for seed in range(40):
            obs, _ = env.reset(seed=seed)
            assert obs["text_observation"] in env.observation_space["text_observation"], obs["text_observation"]


def test_reward_shift_on_success():
    env = make_env("babyai-go-to-red-ball-no-dists")
    from minigrid.utils.baby_ai_bot import BabyAIBot

    obs, _ = env.reset(seed=0)
    bot = BabyAIBot(env.unwrapped)
    assert obs["reward"][0] == 0.0
    for _ in range(64):
        obs, reward, terminated, truncated, info = env.step(bot.replan())
        assert obs["reward"][0] == np.float32(reward)
        assert info["success"] == terminated  # the bot's mission is done exactly when the episode ends
        if terminated:
            break
    assert terminated and reward > 0 and obs["reward"][0] == np.float32(reward)


def test_truncation_at_max_steps():
    env = make_env("babyai-go-to-red-ball-grey")  # max_steps = 64
    env.reset(seed=0)
    steps = [env.step(6) for _ in range(64)]  # "done" never solves GoTo: the episode runs out
    assert [step[2:4] for step in steps] == [(False, False)] * 63 + [(False, True)]
    assert not any(step[4]["success"] for step in steps)  # a timeout is no success
    env = make_env("babyai-go-to-red-ball-grey", max_episode_steps=5)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(5)] == [False] * 4 + [True]


def test_text_as_bytes():
    env = make_env("babyai-pickup", text_as_bytes=True)
    assert env.observation_space["text_observation"] == gym.spaces.Box(0, 255, (256,), np.uint8)
    obs, _ = env.reset(seed=4)
    assert obs in env.observation_space
    assert decode_text(obs["text_observation"]) == _raw("babyai-pickup").reset(seed=4)[0]["mission"]
