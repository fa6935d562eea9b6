"""JatPolicy under stable-baselines3's predict contract (after SB3's tests/test_predict.py) and evaluate_policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy
from jat_policy.processing import JatProcessor
from jat_policy.wrappers import make_env, wrap_env

ENV_IDS = ["CartPole-v1", "Pendulum-v1"]


@pytest.fixture(scope="module")
def model() -> JatModel:
    torch.manual_seed(0)
    config = JatConfig.from_preset("jat-tiny", max_position_embeddings=64, hidden_size=32, num_heads=4)
    return JatModel(config).eval()


def wrapped(env_id: str, **kwargs):
    return lambda: Monitor(wrap_env(gym.make(env_id, **kwargs)))


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("deterministic", [True, False])
def test_predict_single_observation(model, env_id, deterministic):
    env = wrap_env(gym.make(env_id))
    policy = JatPolicy(model, env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    state, episode_start = None, np.array([True])
    for _ in range(5):
        action, state = policy.predict(obs, state, episode_start, deterministic=deterministic)
        assert action.shape == env.action_space.shape
        assert action.dtype == env.action_space.dtype
        assert env.action_space.contains(action)
        obs, _, terminated, truncated, _ = env.step(action)
        episode_start = np.array([terminated or truncated])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_predict_vec_env(model, env_id):
    vec_env = DummyVecEnv([wrapped(env_id)] * 2)
    policy = JatPolicy(model, vec_env.observation_space, vec_env.action_space)
    obs = vec_env.reset()
    state, episode_start = None, np.ones(2, dtype=bool)
    for _ in range(5):
        actions, state = policy.predict(obs, state, episode_start)
        assert actions.shape == (vec_env.num_envs, *vec_env.action_space.shape)
        assert actions.dtype == vec_env.action_space.dtype
        assert all(vec_env.action_space.contains(a) for a in actions)
        obs, _, episode_start, _ = vec_env.step(actions)


def test_dict_obs_with_text_single_and_vectorized():
    torch.manual_seed(0)
    model = JatModel(JatConfig.from_preset("jat-tiny", hidden_size=32, num_heads=4, max_position_embeddings=64)).eval()
    processor = JatProcessor.from_config(model.config)
    env = make_env("babyai-go-to-red-ball")  # text as a str
    policy = JatPolicy(model, env.observation_space, env.action_space, processor=processor)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs["text_observation"], str)
    action, state = policy.predict(obs, deterministic=True)
    assert action.shape == () and env.action_space.contains(action)
    batch = {
        key: [value, value] if key == "text_observation" else np.stack([value, value]) for key, value in obs.items()
    }
    actions, _ = policy.predict(batch, deterministic=True)
    np.testing.assert_array_equal(actions, [action, action])

    vec_env = DummyVecEnv([lambda: make_env("babyai-go-to-red-ball", text_as_bytes=True)] * 3)  # text as bytes
    bytes_policy = JatPolicy(model, vec_env.observation_space, vec_env.action_space, processor=processor)
    vec_obs = vec_env.reset()
    actions, state = bytes_policy.predict(vec_obs, deterministic=True)
    assert actions.shape == (3,) and actions.dtype == np.int64
    vec_env.step(actions)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_evaluate_policy_on_a_vec_env_of_wrapped_envs(model, env_id):
    kwargs = {"max_episode_steps": 30} if env_id == "Pendulum-v1" else {}
    vec_env = DummyVecEnv([wrapped(env_id, **kwargs)] * 2)
    policy = JatPolicy(model, vec_env.observation_space, vec_env.action_space, context_window=8)
    rewards, lengths = evaluate_policy(policy, vec_env, n_eval_episodes=4, return_episode_rewards=True)
    assert len(rewards) == len(lengths) == 4
    if env_id == "Pendulum-v1":
        assert lengths == [30] * 4  # several windows long: rolled over every 4 steps after step 8


def test_evaluate_policy_on_a_subproc_vec_env(model):
    vec_env = make_vec_env(
        lambda: wrap_env(gym.make("CartPole-v1")),
        n_envs=2,
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": "fork"},
    )
    try:
        policy = JatPolicy(model, vec_env.observation_space, vec_env.action_space)
        mean, _ = evaluate_policy(policy, vec_env, n_eval_episodes=2)
        assert mean > 0
    finally:
        vec_env.close()


def test_atari_life_loss_keeps_the_context(model):
    """make_env's Atari default (episodic_life=False) never reports a lost life as done, so the context of the
    game carries on across lives: the reference's "fake done" behaviour, without the fake done."""
    pytest.importorskip("ale_py")
    vec_env = DummyVecEnv([lambda: Monitor(make_env("atari-breakout"))])
    policy = JatPolicy(model, vec_env.observation_space, vec_env.action_space, context_window=8)
    obs = vec_env.reset()
    state, episode_start, lives, steps = None, np.ones(1, dtype=bool), None, 0
    while steps < 2000:
        actions, state = policy.predict(obs, state, episode_start)
        obs, _, episode_start, infos = vec_env.step(actions)
        steps += 1
        lives = infos[0]["lives"] if lives is None else lives
        if infos[0]["lives"] < lives:
            break
    else:
        pytest.skip("no life lost within 2000 steps")
    assert not episode_start[0]
    actions, state = policy.predict(obs, state, episode_start)
    assert state.steps[0] == steps + 1  # the game's context was not cleared
