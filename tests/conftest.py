"""Test-wide settings: never touch the network, keep torch to few threads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_DIR = FIXTURES / "reference-parity"


def pytest_configure(config) -> None:
    # Tiny models gain nothing from intra-op threads, and two threads oversubscribe a 2-core machine
    # as soon as a test runs a subprocess (collect workers, torchrun, README snippets).
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def processor():
    """The default JatProcessor (offline tokenizer), one per test module."""
    from jat_policy.processing import JatProcessor

    return JatProcessor()


def tiny_config(**overrides):
    """A JatConfig small enough for unit tests: hidden 32, 2 layers, a 6-position local window."""
    from jat_policy.configuration import JatConfig

    base = dict(
        vocab_size=64,
        max_position_embeddings=64,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        window_size=6,  # shorter than most test contexts: the local layer's window matters
        max_discrete_value=212,
        bos_token_id=None,
        eos_token_id=None,
    )
    return JatConfig(**{**base, **overrides})


def sampled_env(observation_space, action_space=None, length: int = 6, reward=lambda action: 1.0):
    """A gymnasium env whose observations are samples of ``observation_space``; it terminates after ``length`` steps.

    Args:
        observation_space: The space sampled (seeded by ``reset(seed=...)``).
        action_space: Default ``Discrete(3)``.
        length: Steps per episode.
        reward: ``reward(action) -> float``.
    """
    import gymnasium as gym
    from gymnasium import spaces

    class SampledEnv(gym.Env):
        def __init__(self):
            self.observation_space = observation_space
            self.action_space = action_space if action_space is not None else spaces.Discrete(3)
            self.t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.observation_space.seed(seed)
            self.t = 0
            return self.observation_space.sample(), {}

        def step(self, action):
            self.t += 1
            return self.observation_space.sample(), float(reward(action)), self.t >= length, False, {}

    return SampledEnv()


def save_tiny_jat(path: Path, **preset_overrides) -> Path:
    """Saves a seeded jat-tiny (with ``preset_overrides``) and its default processor to ``path``; returns ``path``."""
    import torch

    from jat_policy.configuration import JatConfig
    from jat_policy.modeling import JatModel
    from jat_policy.processing import JatProcessor

    config = JatConfig.from_preset("jat-tiny", **preset_overrides)
    torch.manual_seed(0)
    JatModel(config).save_pretrained(path)
    JatProcessor.from_config(config).save_pretrained(path)
    return path


def assert_continuous_rollout(env, steps: int) -> list[tuple[bool, dict]]:
    """Steps ``env`` with random actions, checking the step dict: float32, in its space, reward appended last.

    Returns:
        Each step's ``(terminated, info)``.
    """
    history = []
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and obs["continuous_observation"][-1] == 0.0
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space and obs["continuous_observation"].dtype == np.float32
        assert obs["continuous_observation"][-1] == np.float32(reward)
        history.append((terminated, info))
        if terminated or truncated:
            obs, _ = env.reset()
    return history
