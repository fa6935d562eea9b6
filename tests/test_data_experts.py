"""Expert adapters and train-expert (SB3)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from jat_policy.data import (
    BabyAIBotExpert,
    ExpertFailure,
    MetaWorldScriptedExpert,
    RandomExpert,
    SB3Expert,
    collect,
    load_jat_dataset,
    train_expert,
)
from jat_policy.data.experts import sb3_algorithm
from jat_policy.wrappers import make_env


def test_random_expert_is_seeded_per_episode():
    env = make_env("metaworld-reach")
    expert = RandomExpert()
    expert.reset(env, 3)
    first = [expert({}) for _ in range(3)]
    expert.reset(env, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, [expert({}) for _ in range(3)], strict=True))
    with pytest.raises(RuntimeError, match="reset"):
        RandomExpert()({})


def test_babyai_bot_budgets():
    env = make_env("babyai-go-to")
    obs, _ = env.reset(seed=0)
    with pytest.raises(RuntimeError, match="needs reset"):
        BabyAIBotExpert()(obs)
    expert = BabyAIBotExpert(max_steps=2)
    expert.reset(env, 0)
    for _ in range(2):
        obs, *_ = env.step(expert(obs))
    with pytest.raises(ExpertFailure, match="exceeded 2 steps"):
        expert(obs)
    expert = BabyAIBotExpert(time_budget_s=1e-9)
    expert.reset(env, 0)
    with pytest.raises(ExpertFailure, match="budget"):
        expert(obs)
    with pytest.raises(ValueError, match="positive"):
        BabyAIBotExpert(max_stack=0)


def test_adapters_pickle_without_their_models():
    expert = MetaWorldScriptedExpert("reach")
    assert expert.env_name == "reach-v3"
    clone = pickle.loads(pickle.dumps(expert))
    assert clone._policy is None
    obs = {"continuous_observation": np.zeros(40, np.float32)}
    assert np.array_equal(clone(obs), expert(obs))


@pytest.fixture(scope="module")
def cartpole_ppo(tmp_path_factory):
    out = tmp_path_factory.mktemp("experts") / "cartpole.zip"
    # a few hundred steps: enough to exercise training, saving and the provenance file (not a good policy)
    return train_expert(
        "CartPole-v1", "ppo", 128, out=out, progress_bar=False, eval_episodes=1, n_steps=64, batch_size=32, n_epochs=1
    )


def test_train_expert_saves_zip_and_provenance(cartpole_ppo):
    info = json.loads(cartpole_ppo.with_suffix(".json").read_text())
    assert info["env_id"] == "CartPole-v1" and info["algo"] == "ppo" and info["eval_episodes"] == 1
    import stable_baselines3 as sb3

    assert sb3_algorithm(cartpole_ppo) is sb3.PPO
    with pytest.raises(ValueError, match="expected 'ppo' or 'sac'"):
        train_expert("CartPole-v1", "dqn", 10)
    with pytest.raises(ValueError, match="built-in expert"):
        train_expert("babyai-go-to", "ppo", 10)


def test_sb3_expert_collects_discrete_actions(tmp_path, cartpole_ppo):
    result = collect("CartPole-v1", str(cartpole_ppo), 3, out=tmp_path, progress=False, random_episodes=2)
    ds = load_jat_dataset("CartPole-v1", path=tmp_path)
    assert set(np.concatenate(ds["discrete_actions"])) <= {0, 1}
    assert result.metadata["expert"]["name"] == "sb3:cartpole.zip"


def test_sb3_expert_shape_mismatch_is_explained(cartpole_ppo):
    expert = SB3Expert(cartpole_ppo)
    with pytest.raises(ValueError, match="expects observations of shape \\(4,\\)"):
        expert({"continuous_observation": np.zeros(10, np.float32)})


def test_sb3_algorithm_detection(tmp_path):
    import stable_baselines3 as sb3

    sac = sb3.SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, buffer_size=100, device="cpu")
    sac.save(tmp_path / "sac.zip")
    assert sb3_algorithm(tmp_path / "sac.zip") is sb3.SAC
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a stable-baselines3 model zip"):
        sb3_algorithm(tmp_path / "bad.zip")


@pytest.mark.slow
def test_cli_train_expert_then_collect(tmp_path, capsys):
    from jat_policy.cli import main

    model = tmp_path / "pendulum.zip"
    argv = ["train-expert", "--env", "InvertedPendulum-v5", "--timesteps", "2048", "--out", str(model)]
    assert main([*argv, "--eval-episodes", "1", "--no-progress"]) == 0
    assert "Saved PPO expert" in capsys.readouterr().out
    argv = ["collect", "--task", "InvertedPendulum-v5", "--expert", str(model), "--episodes", "2"]
    assert main([*argv, "--out", str(tmp_path), "--no-progress", "--workers", "1"]) == 0
    assert len(load_jat_dataset("InvertedPendulum-v5", path=tmp_path)) == 1
