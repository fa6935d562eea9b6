"""Expert adapters and train-expert (SB3)."""

from __future__ import annotations

import contextlib
import json
import pickle
from pathlib import Path

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
from jat_policy.data.sb3_experts import sb3_algorithm
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


# ----------------------------------------------------------------------------------------------------------------
# SB3 zips are loaded without unpickling

PENDULUM_ZIP = Path(__file__).parent / "fixtures" / "sb3" / "ppo-InvertedPendulum-v4.zip"


class _Payload:
    """Unpickling this creates ``marker``: stands for arbitrary code hidden in a zip."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _crafted_zip(tmp_path: Path, marker: Path, extra_entry: bool = False) -> Path:
    """The pendulum fixture with every pickled entry of ``data`` replaced by the payload."""
    import base64
    import zipfile

    payload = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    out = tmp_path / "crafted.zip"
    with zipfile.ZipFile(PENDULUM_ZIP) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                for entry in data.values():
                    if isinstance(entry, dict) and ":serialized:" in entry:
                        entry[":serialized:"] = payload
                if extra_entry:
                    data["evil"] = {":type:": "<class 'builtins.function'>", ":serialized:": payload}
                content = json.dumps(data).encode()
            dst.writestr(item, content)
    return out


def test_sb3_expert_never_unpickles_the_zip(tmp_path):
    marker = tmp_path / "pwned"
    expert = SB3Expert(_crafted_zip(tmp_path, marker))
    action = expert({"continuous_observation": np.zeros(5, dtype=np.float32)})
    assert not marker.exists()
    assert np.shape(action) == (1,)


def test_sb3_expert_refuses_entries_that_need_code(tmp_path):
    marker = tmp_path / "pwned"
    expert = SB3Expert(_crafted_zip(tmp_path, marker, extra_entry=True))
    with pytest.raises(ValueError, match=r"evil: .*trust_pickle=True"):
        _ = expert.model
    assert not marker.exists()
    with contextlib.suppress(Exception):  # the payload is no valid entry: SB3 may fail after running it
        _ = SB3Expert(expert.path, trust_pickle=True).model  # the explicit opt-in unpickles: the payload runs
    assert marker.exists()


def test_sb3_expert_safe_load_acts_like_the_pickled_load():
    safe, trusted = SB3Expert(PENDULUM_ZIP), SB3Expert(PENDULUM_ZIP, trust_pickle=True)
    assert safe.model.observation_space == trusted.model.observation_space
    assert safe.model.action_space == trusted.model.action_space
    obs = np.random.default_rng(0).normal(size=(32, 4)) * 2
    np.testing.assert_array_equal(
        safe.model.predict(obs, deterministic=True)[0], trusted.model.predict(obs, deterministic=True)[0]
    )


def test_collect_cli_unpickles_only_with_trust_pickle(tmp_path):
    from jat_policy.data.collect_cli import CollectOptions, _expert_from_options
    from jat_policy.utils.cli_args import parse_args

    argv = ["--task", "mujoco-pendulum", "--expert", str(PENDULUM_ZIP)]
    assert _expert_from_options(parse_args(CollectOptions, argv, prog="collect")) == str(
        PENDULUM_ZIP
    )  # SB3Expert's safe default
    trusted = _expert_from_options(parse_args(CollectOptions, [*argv, "--trust-pickle"], prog="collect"))
    assert isinstance(trusted, SB3Expert) and trusted.trust_pickle
    with pytest.raises(ValueError, match="--trust-pickle applies to an SB3 .zip expert only"):
        _expert_from_options(
            parse_args(CollectOptions, ["--task", "babyai-go-to-red-ball", "--trust-pickle"], prog="collect")
        )


def test_sb3_expert_trust_pickle_env_variable(monkeypatch):
    monkeypatch.setenv("JAT_POLICY_TRUST_PICKLE", "1")
    assert SB3Expert(PENDULUM_ZIP).trust_pickle
    monkeypatch.delenv("JAT_POLICY_TRUST_PICKLE")
    assert not SB3Expert(PENDULUM_ZIP).trust_pickle


@pytest.mark.parametrize(
    ("algo", "env_id", "policy_kwargs"),
    [
        ("SAC", "Pendulum-v1", None),
        ("DQN", "CartPole-v1", None),
        ("A2C", "CartPole-v1", None),  # its default policy_kwargs name the RMSprop class
        ("PPO", "CartPole-v1", {"activation_fn": "ReLU", "net_arch": {"pi": [8], "vf": [8]}}),
    ],
)
def test_sb3_expert_safe_load_of_other_algorithms(tmp_path, algo, env_id, policy_kwargs):
    import stable_baselines3 as sb3
    import torch

    extra = {"buffer_size": 100, "learning_starts": 10} if algo in ("SAC", "DQN") else {}
    if policy_kwargs:
        extra["policy_kwargs"] = {**policy_kwargs, "activation_fn": getattr(torch.nn, policy_kwargs["activation_fn"])}
    getattr(sb3, algo)("MlpPolicy", env_id, device="cpu", seed=0, **extra).save(tmp_path / "model.zip")
    safe, trusted = SB3Expert(tmp_path / "model.zip"), SB3Expert(tmp_path / "model.zip", trust_pickle=True)
    assert safe.model.observation_space == trusted.model.observation_space
    assert safe.model.action_space == trusted.model.action_space
    obs = np.stack([trusted.model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(
        safe.model.predict(obs, deterministic=True)[0], trusted.model.predict(obs, deterministic=True)[0]
    )


def test_sb3_expert_dict_space_needs_the_env_space(tmp_path):
    # SB3 writes no readable bounds for a Dict space: the caller passes the env's
    import base64
    import zipfile

    import gymnasium as gym

    space = gym.spaces.Dict({"obs": gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)})
    src, out = PENDULUM_ZIP, tmp_path / "dict.zip"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out, "w") as b:
        for item in a.infolist():
            content = a.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                data["observation_space"] = {
                    ":type:": "<class 'gymnasium.spaces.dict.Dict'>",
                    ":serialized:": base64.b64encode(pickle.dumps(space)).decode(),
                    "spaces": str(space.spaces),
                }
                content = json.dumps(data).encode()
            b.writestr(item, content)
    with pytest.raises(ValueError, match=r"observation_space: cannot rebuild .* Pass the env's spaces"):
        _ = SB3Expert(out).model
    assert SB3Expert(out, observation_space=space).model.observation_space == space
