"""Collectors: round trips per domain, expert success rates, determinism, failures and interruptions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from jat_policy.data import (
    BabyAIBotExpert,
    ExpertFailure,
    RandomExpert,
    collect,
    image_to_frame,
    load_jat_dataset,
    load_metadata,
    load_reference_scores,
    validate_dataset,
)

FIXTURES = Path(__file__).parent / "fixtures"
PENDULUM_EXPERT = FIXTURES / "sb3" / "ppo-InvertedPendulum-v4.zip"


class FlakyBot(BabyAIBotExpert):
    """Fails every third seed: exercises dropping + counting failed episodes (module level: picklable)."""

    def reset(self, env, seed):
        if seed % 3 == 1:
            raise ExpertFailure("flaky on purpose")
        super().reset(env, seed)


def _no_staging_left(out: Path) -> list[str]:
    return [name for name in os.listdir(out) if name.startswith(".")] if out.exists() else []


# ---------------------------------------------------------------------------------------------------- domains


def test_babyai_bot_round_trip_and_success_rate(tmp_path):
    result = collect("babyai-go-to-red-ball", "bot", 40, out=tmp_path, progress=False, random_episodes=5)
    assert result.path == tmp_path / "babyai-go-to-red-ball"
    assert result.success_rate >= 0.95 and result.n_failed == 0
    train = load_jat_dataset("babyai-go-to-red-ball", path=tmp_path)
    test = load_jat_dataset("babyai-go-to-red-ball", split="test", path=tmp_path)
    assert (len(train), len(test)) == (36, 4)
    episode = train[0]
    assert set(episode["text_observations"]) == {"go to the red ball"}
    assert np.asarray(episode["discrete_observations"]).shape == (len(episode["rewards"]), 148)
    assert episode["rewards"][-1] > 0 and not any(episode["rewards"][:-1])  # unshifted: reward after the last action
    meta = load_metadata(tmp_path, "babyai-go-to-red-ball")
    assert meta["splits"]["train"]["seeds"] == list(range(36))
    assert meta["splits"]["test"]["seeds"] == list(range(36, 40))
    assert meta["env"]["id"] == "BabyAI-GoToRedBall-v0" and meta["expert"]["name"] == "BabyAIBot"
    scores = load_reference_scores(tmp_path, "babyai-go-to-red-ball")
    returns = [sum(r) for r in list(train["rewards"]) + list(test["rewards"])]
    assert scores.expert_mean == pytest.approx(np.mean(returns), rel=1e-5)
    assert scores.random_episodes == 5 and scores.random_mean < scores.expert_mean


def test_metaworld_scripted_round_trip(tmp_path):
    result = collect("metaworld-reach", "auto", 10, out=tmp_path, progress=False, random_episodes=2, format="parquet")
    assert result.success_rate >= 0.9
    train = load_jat_dataset("metaworld-reach", path=tmp_path, cache_dir=str(tmp_path / "cache"))
    assert len(train) == 9 and {len(r) for r in train["rewards"]} == {100}  # 100-step episodes like the Hub
    obs = np.asarray(train[0]["continuous_observations"])
    actions = np.asarray(train[0]["continuous_actions"])
    assert obs.shape == (100, 39) and actions.shape == (100, 4) and np.abs(actions).max() <= 1.0
    assert result.expert_score > 5 * result.random_score


def test_atari_random_round_trip_stores_frames_as_rgba(tmp_path):
    from jat_policy.wrappers import make_env

    collect("atari-pong", RandomExpert(), 1, out=tmp_path, progress=False, max_steps=12, test_fraction=0.0)
    train = load_jat_dataset("atari-pong", path=tmp_path)
    assert len(train) == 1 and len(load_jat_dataset("atari-pong", split="test", path=tmp_path)) == 0
    images = train[0]["image_observations"]
    assert len(images) == 12 and images[0].mode == "RGBA"
    env = make_env("atari-pong")
    first, _ = env.reset(seed=0)  # episode 0 is played with seed 0
    assert np.array_equal(image_to_frame(images[0]), first["image_observation"])  # oldest frame in R ... newest in A
    scores = load_reference_scores(tmp_path, "atari-pong")
    assert scores.random_mean == scores.expert_mean  # the expert is the random policy


def test_mujoco_sb3_expert_round_trip(tmp_path):
    result = collect("mujoco-pendulum", str(PENDULUM_EXPERT), 3, out=tmp_path, progress=False, random_episodes=3)
    train = load_jat_dataset("mujoco-pendulum", path=tmp_path)
    assert np.asarray(train[0]["continuous_observations"]).shape[1] == 4  # raw obs, no reward appended
    assert np.asarray(train[0]["continuous_actions"]).shape[1] == 1
    assert result.expert_score > 10 * result.random_score
    assert result.metadata["expert"]["name"] == f"sb3:{PENDULUM_EXPERT.name}"


def test_any_gym_env_instance_and_inferred_schema(tmp_path):
    import gymnasium as gym

    result = collect(gym.make("CartPole-v1"), "random", 4, task="my-cartpole", out=tmp_path, progress=False)
    ds = load_jat_dataset("my-cartpole", path=tmp_path)
    assert set(ds.features) == {"continuous_observations", "discrete_actions", "rewards"}
    assert result.metadata["schema"]["num_actions"] == 2 and result.metadata["domain"] == "user"


# ---------------------------------------------------------------------------------------------------- behaviour


def test_results_do_not_depend_on_workers():
    kwargs = dict(progress=False, random_episodes=2, seed=5)
    one = collect("babyai-go-to-red-ball", FlakyBot(), 6, workers=1, **kwargs)
    two = collect("babyai-go-to-red-ball", FlakyBot(), 6, workers=2, **kwargs)
    for split in ("train", "test"):
        assert one.dataset[split].to_dict() == two.dataset[split].to_dict()
    assert one.metadata["splits"] == two.metadata["splits"]
    assert one.metadata["failed"]["seeds"] == [7, 10] and one.n_failed == 2
    assert one.metadata["scores"] == two.metadata["scores"]


def test_bot_watchdog_drops_looping_episodes():
    # seeds 1001-1008 send minigrid's bot into an endless planning loop on UnlockToUnlock
    result = collect("babyai-unlock-to-unlock", "bot", 2, seed=1000, progress=False, random_episodes=0)
    assert result.metadata["splits"]["train"]["seeds"] + result.metadata["splits"]["test"]["seeds"] == [1000, 1009]
    assert result.n_failed == 8 and "planner loop" in next(iter(result.metadata["failed"]["reasons"]))


def test_interrupted_collection_leaves_nothing(tmp_path):
    class Interrupting:
        calls = 0

        def __call__(self, obs):
            Interrupting.calls += 1
            if Interrupting.calls > 25:
                raise KeyboardInterrupt
            return 2

    with pytest.raises(KeyboardInterrupt):
        collect("babyai-go-to-red-ball", Interrupting(), 10, out=tmp_path, progress=False)
    assert os.listdir(tmp_path) == []


def test_too_many_failures_write_nothing(tmp_path):
    def always_fails(obs):
        raise ExpertFailure("nope")

    with pytest.raises(RuntimeError, match="Only 0 of 3 episodes succeeded in 5 attempts.*nope"):
        collect("CartPole-v1", always_fails, 3, out=tmp_path, max_failures=2, progress=False)
    assert os.listdir(tmp_path) == []


def test_existing_dataset_fails_before_collecting(tmp_path):
    collect("CartPole-v1", "random", 2, out=tmp_path, progress=False)

    def never(obs):
        raise AssertionError("should not run")

    with pytest.raises(FileExistsError, match="overwrite"):
        collect("CartPole-v1", never, 2, out=tmp_path, progress=False)
    collect("CartPole-v1", "random", 3, out=tmp_path, progress=False, overwrite=True, test_fraction=0.0)
    assert len(load_jat_dataset("CartPole-v1", path=tmp_path)) == 3 and not _no_staging_left(tmp_path)


def test_unpicklable_expert_falls_back_to_one_worker():
    with pytest.warns(UserWarning, match="cannot be pickled"):
        result = collect("CartPole-v1", lambda obs: 0, 2, workers=2, progress=False, random_episodes=0)
    validate_dataset(result.dataset, task="CartPole-v1", split="train", schema=None)


def test_make_expert_errors():
    from jat_policy.data import make_expert

    with pytest.raises(ValueError, match="only plays babyai"):
        make_expert("bot", "metaworld-reach")
    with pytest.raises(ValueError, match="No default expert for 'mujoco-pendulum'"):
        make_expert("auto", "mujoco-pendulum")
    with pytest.raises(FileNotFoundError, match="train-expert"):
        make_expert("missing.zip", "mujoco-pendulum")
    with pytest.raises(ValueError, match="No Meta-World scripted policy"):
        make_expert("scripted", "metaworld-nonexistent")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_collect(tmp_path, capsys):
    from jat_policy.cli import main

    argv = ["collect", "--task", "babyai-go-to-red-ball", "--episodes", "3", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--random-episodes", "2"]) == 0
    assert "Wrote 2 train + 1 test episodes" in capsys.readouterr().out
    assert len(load_jat_dataset("babyai-go-to-red-ball", path=tmp_path)) == 2


@pytest.mark.slow
def test_metaworld_door_open_scripted_success():
    # door-open needs 74-96 steps: within JAT's 100-step episodes the scripted policy succeeds ~92% of the time
    result = collect("metaworld-door-open", "scripted", 100, progress=False, random_episodes=0, workers=0)
    assert result.success_rate >= 0.9


@pytest.mark.slow
def test_babyai_bot_many_episodes_parallel(tmp_path):
    result = collect("babyai-go-to-red-ball", "bot", 1000, out=tmp_path, workers=0, progress=False)
    assert result.success_rate >= 0.95
    assert len(load_jat_dataset("babyai-go-to-red-ball", path=tmp_path)) == 900
