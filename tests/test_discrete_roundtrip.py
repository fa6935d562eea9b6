"""Any discrete-observation env ``wrap_env`` accepts collects, validates, trains and acts (FrozenLake, Taxi, ...)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from jat_policy.data import collect, load_jat_dataset
from jat_policy.evaluation import evaluate
from jat_policy.policy import JatPolicy
from jat_policy.trainers.bc import TrainOptions, train
from jat_policy.wrappers import wrap_env
from tests.conftest import sampled_env, save_tiny_jat


def _toy_env(observation_space: spaces.Space) -> gym.Env:
    """A 6-step env over any observation space: the observation is a sample, the reward 1 for action 0."""
    return sampled_env(observation_space, spaces.Discrete(3), length=6, reward=lambda action: action == 0)


def _multi_discrete() -> gym.Env:
    return _toy_env(spaces.MultiDiscrete([5, 300, 2, 7]))


def _multi_binary() -> gym.Env:
    return _toy_env(spaces.MultiBinary(10))


ENVS = {
    "frozenlake": lambda: gym.make("FrozenLake-v1"),  # Discrete(16): 1 of 212 slots
    "taxi": lambda: gym.make("Taxi-v4"),  # Discrete(500): values past a byte
    "toy-multidiscrete": _multi_discrete,
    "toy-multibinary": _multi_binary,
}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-discrete-model")
    return save_tiny_jat(path, hidden_size=32, num_heads=2, max_position_embeddings=64)


@pytest.mark.parametrize("task", sorted(ENVS))
def test_discrete_env_collects_validates_trains_and_acts(tmp_path, tiny_model_dir, task):
    data = tmp_path / "data"
    result = collect(ENVS[task], "random", 3, out=data, task=task, max_steps=20, random_episodes=0, progress=False)
    dataset = load_jat_dataset(task, path=data)  # validated, checksums verified
    assert len(dataset) == result.metadata["splits"]["train"]["episodes"]
    options = TrainOptions(
        tasks=[task], data=str(data), model=str(tiny_model_dir), output_dir=str(tmp_path / "run"), max_steps=2,
        per_device_batch_size=2, report_to="none", save_steps=1000, bf16="no", logging_steps=1, seed=0,
    )  # fmt: skip
    final = train(options)
    env = wrap_env(ENVS[task]())
    policy = JatPolicy.from_pretrained(final, observation_space=env.observation_space, action_space=env.action_space)
    obs, _ = env.reset(seed=0)
    state = None
    for _ in range(4):  # a short rollout: the same padding rule at inference as at training
        action, state = policy.predict(obs, state=state, deterministic=True)
        assert env.action_space.contains(int(np.asarray(action)))
        obs, _, terminated, truncated, _ = env.step(int(np.asarray(action)))
        if terminated or truncated:
            break
    result = evaluate(
        policy, task, n_episodes=2, env_fn=lambda _: wrap_env(ENVS[task]()), dataset_path=data,
        max_episode_steps=20, bootstrap_reps=10, progress=False,
    )  # fmt: skip
    assert len(result.tasks[task].returns) == 2
