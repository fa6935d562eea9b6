"""Tests of jat_policy.evaluation: normalisation, IQM/CIs, rollouts, JSON, plots and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from jat_policy import evaluation
from jat_policy.evaluation import (
    NormalizedScores,
    RandomPolicy,
    ScoreReference,
    aggregate_scores,
    evaluate,
    expand_tasks,
    get_reference_scores,
    normalize,
    normalize_score,
    plot_results,
    random_policy_factory,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------
# Test envs and predictors
# ------------------------------------------------------------------------------------------------
class CountingEnv(gym.Env):
    """Observation = steps since reset; the episode length (2..7) is drawn from the reset seed; reward 1/step."""

    observation_space = gym.spaces.Box(0.0, 1000.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(2, 8))
        return np.array([0.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        done = self.t >= self.length
        return np.array([self.t], np.float32), 1.0, done, False, {"success": done and self.length % 2 == 0}


def expected_lengths(seed: int, n: int) -> list[int]:
    env = CountingEnv()
    out = []
    for k in range(n):
        env.reset(seed=seed + k)
        out.append(env.length)
    return out


class FakeAle:
    def __init__(self) -> None:
        self.lives_left = 0

    def lives(self) -> int:
        return self.lives_left

    def game_over(self) -> bool:
        return self.lives_left == 0


class LifeLossEnv(gym.Env):
    """Atari-like: 3 lives of 3 steps; ``terminated`` on every life lost (as EpisodicLife does); reset after a
    lost life only continues the game. Observation = steps since the game began."""

    observation_space = gym.spaces.Box(0.0, 1000.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.ale = FakeAle()
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self.ale.game_over():
            self.ale.lives_left, self.t = 3, 0
        return np.array([self.t], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        lost = self.t % 3 == 0
        self.ale.lives_left -= int(lost)
        return np.array([self.t], np.float32), 1.0, lost, False, {}


class EndlessEnv(CountingEnv):
    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, _, _, info = super().step(action)
        return obs, reward, False, False, info


class Recorder:
    """Checks the SB3 contract: batched obs, per-env episode_start (True exactly at obs == 0), state round trip."""

    def __init__(self) -> None:
        self.calls = 0
        self.starts: list[np.ndarray] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        assert episode_start is not None and episode_start.dtype == bool and episode_start.shape == (len(obs),)
        np.testing.assert_array_equal(episode_start, obs[:, 0] == 0)
        assert state == (None if self.calls == 0 else self.calls)
        self.calls += 1
        self.starts.append(episode_start.copy())
        return np.zeros(len(obs), dtype=np.int64), self.calls


class CartPoleController:
    """Deterministic: push towards the side the pole leans to."""

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return (np.asarray(observation)[:, 2] > 0).astype(np.int64), state


def counting_env(task: str) -> gym.Env:
    return CountingEnv()


def cartpole(task: str) -> gym.Env:
    return gym.make("CartPole-v1")


def _registry_available() -> bool:
    try:
        from jat_policy.tasks import get_task

        get_task("atari-pong")
    except (ImportError, KeyError, ValueError):
        return False
    return True


needs_registry = pytest.mark.skipif(not _registry_available(), reason="jat_policy.tasks not available yet")


# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------
def test_normalize_score_maths():
    assert normalize_score(50.0, 10.0, 110.0) == pytest.approx(0.4)
    assert normalize_score(10.0, 10.0, 110.0) == 0.0
    assert normalize_score(110.0, 10.0, 110.0) == 1.0
    assert normalize_score(-20.7, -20.7, 21.0) == 0.0
    np.testing.assert_allclose(normalize_score(np.array([0.0, 5.0, 20.0]), 0.0, 10.0), [0.0, 0.5, 2.0])


@pytest.mark.parametrize(("random", "expert"), [(23.1, 20.395), (0.0, 0.0)], ids=["bowling", "venture"])
def test_normalize_score_undefined_when_expert_not_above_random(random, expert):
    assert normalize_score(30.0, random, expert) is None
    assert normalize_score(np.ones(3), random, expert) is None


def test_normalize_with_explicit_reference_scores():
    refs = {"my-task": (10.0, 110.0, 60.0), "no-human": {"random": 0.0, "expert": 2.0}}
    assert normalize(60.0, "my-task", reference_scores=refs) == pytest.approx(0.5)
    assert normalize(60.0, "my-task", kind="human", reference_scores=refs) == pytest.approx(1.0)
    assert normalize(1.0, "no-human", reference_scores=refs) == pytest.approx(0.5)
    assert normalize(1.0, "no-human", kind="human", reference_scores=refs) is None
    with pytest.raises(ValueError, match="'expert' or 'human'"):
        normalize(1.0, "my-task", kind="max", reference_scores=refs)
    with pytest.raises(KeyError, match="reference_scores="):
        normalize(1.0, "certainly-not-a-task")


def test_reference_score_forms():
    spec_like = type("Spec", (), {"random_score": 1.0, "expert_score": 3.0, "human_score": None})()
    refs = {
        "a": ScoreReference(0.0, 1.0),
        "b": [1.0, 2.0],
        "c": {"random_score": 0, "expert_mean": 4},
        "d": spec_like,
    }
    assert get_reference_scores("a", refs) == ScoreReference(0.0, 1.0)
    assert get_reference_scores("b", refs) == ScoreReference(1.0, 2.0, None, "user")
    assert get_reference_scores("c", refs).expert == 4.0
    assert get_reference_scores("d", refs) == ScoreReference(1.0, 3.0, None, "user")
    with pytest.raises(ValueError, match="random and an expert"):
        get_reference_scores("e", {"e": {"expert": 1.0}})


def test_reference_scores_from_dataset_metadata(monkeypatch):
    data = pytest.importorskip("jat_policy.data")
    if not hasattr(data, "load_reference_scores"):
        pytest.skip("jat_policy.data.load_reference_scores not available yet")

    def fake_load(path, task):
        if task != "my-task":
            raise FileNotFoundError(task)
        return data.ReferenceScores(
            task=task,
            expert_mean=100.0,
            expert_std=1.0,
            random_mean=10.0,
            random_std=None,
            expert_episodes=5,
            random_episodes=5,
        )

    monkeypatch.setattr(data, "load_reference_scores", fake_load)
    ref = get_reference_scores("my-task", dataset_path="/some/dataset")
    assert ref == ScoreReference(10.0, 100.0, None, "dataset")
    assert normalize(55.0, "my-task", dataset_path="/some/dataset") == pytest.approx(0.5)
    assert get_reference_scores("other", dataset_path="/some/dataset") is None  # not in the dataset, not registered
    explicit = get_reference_scores("my-task", {"my-task": (0.0, 1.0)}, dataset_path="/some/dataset")
    assert explicit.source == "user"  # explicit scores win


def test_normalized_scores_statuses():
    returns = np.array([10.0, 30.0])
    ok = NormalizedScores.compute(returns, ScoreReference(10.0, 30.0), "expert")
    assert ok.status == "ok"
    np.testing.assert_allclose(ok.scores, [0.0, 1.0])
    undefined = NormalizedScores.compute(returns, ScoreReference(23.1, 20.4), "expert")
    assert (
        undefined.status == "undefined"
        and undefined.scores is None
        and "20.4 <= random score 23.1" in undefined.reason
    )
    assert NormalizedScores.compute(returns, ScoreReference(0.0, 1.0), "human").status == "unavailable"
    assert NormalizedScores.compute(returns, None, "expert").to_dict()["mean"] is None


@needs_registry
@pytest.mark.parametrize("task", ["atari-bowling", "atari-venture"])
def test_registry_undefined_tasks(task):
    assert normalize(100.0, task) is None
    assert normalize(100.0, task, kind="human") is not None  # their human scores are well above random


@needs_registry
def test_registry_pong_expert_and_human_normalised():
    # Pong: random -20.7 (literature), human 14.6; expert = the dataset's mean (~21.0).
    assert normalize(-20.7, "atari-pong") == pytest.approx(0.0)
    assert normalize(14.6, "atari-pong", kind="human") == pytest.approx(1.0)
    assert normalize(0.0, "atari-pong", kind="human") == pytest.approx(20.7 / 35.3)
    # An explicit reference overrides the registry.
    assert normalize(1.0, "atari-pong", reference_scores={"atari-pong": (0.0, 2.0)}) == pytest.approx(0.5)
    assert normalize(1.0, "mujoco-pendulum", kind="human") is None


# ------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------
def test_iqm_and_mean_against_hand_computed_values():
    # 4 runs x 2 tasks. IQM = 25% trimmed mean of all 8 values: drop {1, 2} and {64, 128} -> mean(4, 8, 16, 32).
    scores = np.array([[1.0, 128.0], [16.0, 4.0], [2.0, 32.0], [64.0, 8.0]])
    agg = aggregate_scores(scores, reps=200, seed=0)
    assert agg.iqm == pytest.approx((4 + 8 + 16 + 32) / 4)
    assert agg.mean == pytest.approx(scores.mean())
    assert (agg.n_runs, agg.n_tasks) == (4, 2)
    assert agg.iqm_ci[0] <= agg.iqm <= agg.iqm_ci[1]
    assert agg.mean_ci[0] <= agg.mean <= agg.mean_ci[1]
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    again = aggregate_scores(scores, reps=200, seed=0)
    assert again.iqm_ci == agg.iqm_ci  # the bootstrap is seeded...
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002 - ...and leaves the global RNG


def test_aggregate_with_one_run_or_one_task():
    one_run = aggregate_scores(np.array([[0.2, 0.4, 0.9]]), reps=50)
    assert one_run.iqm_ci is None and one_run.mean_ci is None
    assert one_run.iqm == pytest.approx(0.5)  # int(0.25 * 3) = 0 values trimmed per side
    one_task = aggregate_scores(np.array([0.0, 1.0, 2.0, 3.0]), reps=50)  # 1-D = runs of a single task
    assert one_task.n_tasks == 1 and one_task.iqm == pytest.approx(1.5)
    assert one_task.iqm_ci is not None
    with pytest.raises(ValueError, match="finite"):
        aggregate_scores(np.array([[np.nan]]))


# ------------------------------------------------------------------------------------------------
# Rollouts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_envs", [1, 3, 8])
def test_evaluate_counts_episodes_in_seed_order_for_any_n_envs(n_envs):
    recorder = Recorder()
    result = evaluate(recorder, "count", n_episodes=5, n_envs=n_envs, seed=7, env_fn=counting_env, progress=False)
    task = result.tasks["count"]
    expected = expected_lengths(7, 5)
    assert task.seeds == [7, 8, 9, 10, 11]
    np.testing.assert_array_equal(task.lengths, expected)
    np.testing.assert_array_equal(task.returns, expected)  # reward 1 per step
    np.testing.assert_array_equal(task.successes, [n % 2 == 0 for n in expected])
    assert recorder.starts[0].all()
    assert sum(int(s.sum()) for s in recorder.starts) >= 5
    assert task.domain == "user" and task.expert_normalized.status == "unavailable"


def test_evaluate_random_policy_is_deterministic_with_a_seed():
    kwargs = dict(n_episodes=4, n_envs=2, env_fn=cartpole, progress=False, reference_scores={"cp": (22.0, 500.0)})
    first = evaluate(random_policy_factory(0), "cp", seed=3, **kwargs).tasks["cp"]
    second = evaluate(random_policy_factory(0), "cp", seed=3, **kwargs).tasks["cp"]
    other = evaluate(random_policy_factory(1), "cp", seed=4, **kwargs).tasks["cp"]
    np.testing.assert_array_equal(first.returns, second.returns)
    assert not np.array_equal(first.returns, other.returns)
    assert len(first.returns) == 4 and (first.returns > 0).all()
    np.testing.assert_allclose(first.expert_normalized.scores, (first.returns - 22.0) / 478.0)


def test_deterministic_policy_gets_the_same_scores_for_any_n_envs():
    runs = [
        evaluate(CartPoleController(), "cp", n_episodes=5, n_envs=n, seed=0, env_fn=cartpole, progress=False)
        for n in (1, 4)
    ]
    np.testing.assert_array_equal(runs[0].tasks["cp"].returns, runs[1].tasks["cp"].returns)


def test_atari_life_losses_do_not_end_the_episode():
    recorder = Recorder()  # also checks that episode_start stays False across a lost life
    result = evaluate(
        recorder, "atari-fake", n_episodes=3, n_envs=2, env_fn=lambda task: LifeLossEnv(), progress=False
    )
    task = result.tasks["atari-fake"]
    np.testing.assert_array_equal(task.returns, [9.0, 9.0, 9.0])
    np.testing.assert_array_equal(task.lengths, [9, 9, 9])


def test_max_episode_steps_guards_endless_envs():
    result = evaluate(
        Recorder(), "endless", n_episodes=2, env_fn=lambda task: EndlessEnv(), max_episode_steps=4, progress=False
    )
    np.testing.assert_array_equal(result.tasks["endless"].lengths, [4, 4])


def test_policy_object_and_bad_policies():
    policy = RandomPolicy(gym.spaces.Discrete(2), seed=0)
    result = evaluate(policy, ["cp"], n_episodes=2, env_fn=cartpole, progress=False)
    assert len(result.tasks["cp"].returns) == 2
    with pytest.raises(TypeError, match="no predict"):
        evaluate(lambda task, env: object(), "cp", env_fn=cartpole, progress=False)
    with pytest.raises(TypeError, match="policy must"):
        evaluate(42, "cp", env_fn=cartpole, progress=False)
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate(policy, "cp", n_episodes=0, env_fn=cartpole, progress=False)


def test_expand_tasks():
    assert expand_tasks("a, b,a") == ["a", "b"]
    assert expand_tasks(["x"]) == ["x"]
    with pytest.raises(ValueError, match="No tasks"):
        expand_tasks(" , ")


def _wrappers_available(*modules: str) -> bool:
    import importlib.util

    try:
        from jat_policy.wrappers import make_env  # noqa: F401
    except ImportError:
        return False
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.skipif(not _wrappers_available("minigrid"), reason="needs jat_policy.wrappers and minigrid")
def test_babyai_text_missions_batch_as_bytes():
    from jat_policy.wrappers import decode_text

    class MissionChecker(RandomPolicy):
        def predict(self, observation, state=None, episode_start=None, deterministic=False):
            text = observation["text_observation"]
            assert text.dtype == np.uint8 and text.shape == (2, 256)
            assert decode_text(text) == ["go to the red ball"] * 2
            return super().predict(observation, state, episode_start, deterministic)

    result = evaluate(
        lambda task, env: MissionChecker(env.action_space, seed=0),
        "babyai-go-to-red-ball",
        n_episodes=2,
        n_envs=2,
        progress=False,
        bootstrap_reps=50,
    )
    task = result.tasks["babyai-go-to-red-ball"]
    assert task.domain == "babyai" and task.reference.source == "registry"
    assert len(task.returns) == 2 and task.expert_normalized.status == "ok"


@pytest.mark.skipif(not _wrappers_available("ale_py", "cv2"), reason="needs jat_policy.wrappers and ale-py")
def test_atari_episodic_life_still_scores_whole_games():
    recorder = Recorder()

    class Starts(RandomPolicy):
        def predict(self, observation, state=None, episode_start=None, deterministic=False):
            recorder.starts.append(episode_start.copy())
            return super().predict(observation, state, episode_start, deterministic)

    def policy_for(task, env):
        assert "EpisodicLife" in str(env)  # make_env honoured episodic_life=True, so life losses do happen
        return Starts(env.action_space, seed=0)

    result = evaluate(policy_for, "atari-breakout", n_episodes=1, env_kwargs={"episodic_life": True}, progress=False)
    task = result.tasks["atari-breakout"]
    assert sum(int(s.sum()) for s in recorder.starts) == 1  # one game, 5 lives, a single episode start
    assert task.human_normalized.status == "ok" and task.env_spec_id == "ALE/Breakout-v5"


# ------------------------------------------------------------------------------------------------
# JSON and plots
# ------------------------------------------------------------------------------------------------
class ConfiguredPolicy(RandomPolicy):
    class model:  # noqa: N801 - mimics JatPolicy.model.config
        class config:  # noqa: N801
            @staticmethod
            def to_dict():
                return {"model_type": "jat", "hidden_size": 8}


@pytest.fixture(scope="module")
def two_task_result():
    refs = {"cp": (20.0, 500.0), "cp-undefined": (30.0, 25.0), "count": (0.0, 10.0)}

    def env_fn(task):
        return counting_env(task) if task == "count" else cartpole(task)

    return evaluate(
        lambda task, env: ConfiguredPolicy(env.action_space, seed=0),
        "cp,cp-undefined,count",
        n_episodes=3,
        n_envs=2,
        seed=5,
        env_fn=env_fn,
        reference_scores=refs,
        bootstrap_reps=100,
        progress=False,
        model_info={"path": "tiny"},
    )


def test_json_contents(two_task_result, tmp_path):
    path = two_task_result.save_json(tmp_path / "sub" / "eval.json")
    data = json.loads(path.read_text())
    assert data["settings"]["n_episodes"] == 3 and data["settings"]["seed"] == 5 and data["settings"]["n_envs"] == 2
    assert data["provenance"]["packages"]["gymnasium"] == gym.__version__
    assert {"platform", "python", "cpu_count"} <= set(data["provenance"]["machine"])
    assert data["provenance"]["model"]["path"] == "tiny"
    assert data["provenance"]["model"]["config"] == {"model_type": "jat", "hidden_size": 8}
    cp = data["tasks"]["cp"]
    assert cp["env_spec_id"] == "CartPole-v1" and cp["max_episode_steps"] == 500
    assert cp["seeds"] == [5, 6, 7] and len(cp["raw"]["returns"]) == 3
    reference = {"random": 20.0, "expert": 500.0, "human": None, "source": "user", "env_id": None, "origin": None}
    assert cp["reference"] == reference
    np.testing.assert_allclose(cp["expert_normalized"]["scores"], (np.array(cp["raw"]["returns"]) - 20) / 480)
    assert data["tasks"]["cp-undefined"]["expert_normalized"]["status"] == "undefined"
    assert data["tasks"]["cp-undefined"]["expert_normalized"]["scores"] is None
    agg = data["aggregates"]["user"]["expert_normalized"]
    assert agg["tasks"] == ["cp", "count"] and "cp-undefined" in agg["excluded"]
    assert agg["n_runs"] == 3 and agg["n_tasks"] == 2 and len(agg["iqm_ci"]) == 2
    assert data["aggregates"]["user"]["human_normalized"] is None


def test_plots_are_written(two_task_result, tmp_path):
    paths = plot_results(two_task_result, tmp_path, prefix="run_")
    assert [p.name for p in paths] == ["run_normalized_user.png", "run_aggregate_iqm.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
    json_path = two_task_result.save_json(tmp_path / "e.json")
    assert len(plot_results(json_path, tmp_path / "again")) == 2


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_random_policy(monkeypatch, tmp_path):
    from jat_policy.cli import main

    monkeypatch.setattr(evaluation.rollout, "_default_env_fn", lambda env_kwargs: cartpole)
    out = tmp_path / "random.json"
    argv = ["evaluate", "--model", "random", "--tasks", "cp1,cp2", "--episodes", "3", "--n-envs", "2"]
    argv += ["--seed", "1", "--output", str(out), "--bootstrap-reps", "50", "--no-progress"]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert list(data["tasks"]) == ["cp1", "cp2"]
    assert data["tasks"]["cp1"]["seeds"] == [1, 2, 3]
    assert data["provenance"]["model"] == {"path": "random"}
    assert data["tasks"]["cp1"]["expert_normalized"]["status"] == "unavailable"


def test_cli_context_window_reaches_the_policy(monkeypatch, tmp_path):
    from jat_policy.wrappers.generic import wrap_env
    from tests.conftest import save_tiny_jat

    wrapped = lambda task: wrap_env(cartpole(task))  # noqa: E731
    monkeypatch.setattr(evaluation.rollout, "_default_env_fn", lambda env_kwargs: wrapped)
    built = []
    real = evaluation.rollout.jat_policy_factory

    def spy(model_dir, precision=None, **kwargs):
        factory = real(model_dir, precision=precision, **kwargs)

        def policy_for(task, env):
            built.append(factory(task, env))
            return built[-1]

        return policy_for

    monkeypatch.setattr(evaluation.cli, "jat_policy_factory", spy)
    model, out = save_tiny_jat(tmp_path / "model"), tmp_path / "eval.json"
    argv = ["--model", str(model), "--tasks", "cp", "--episodes", "2", "--context-window", "6"]
    assert evaluation.cli_main(argv + ["--output", str(out), "--bootstrap-reps", "20", "--no-progress"]) == 0
    assert [policy.context_window for policy in built] == [6]
    assert json.loads(out.read_text())["provenance"]["model"]["context_window"] == 6


def test_cli_needs_model_and_tasks(capsys):
    assert evaluation.cli_main(["--tasks", "cp"]) == 2
    assert "--model" in capsys.readouterr().err


@needs_registry
def test_cli_on_a_registered_task(tmp_path):
    pytest.importorskip("mujoco")
    if not hasattr(pytest.importorskip("jat_policy.wrappers"), "make_env"):
        pytest.skip("jat_policy.wrappers.make_env not available yet")
    out = tmp_path / "pendulum.json"
    argv = ["--model", "random", "--tasks", "mujoco-pendulum", "--episodes", "2", "--output", str(out)]
    assert evaluation.cli_main(argv + ["--bootstrap-reps", "50", "--no-progress"]) == 0
    task = json.loads(out.read_text())["tasks"]["mujoco-pendulum"]
    assert task["domain"] == "mujoco" and task["reference"]["source"] == "registry"
    assert task["expert_normalized"]["status"] == "ok"
    assert (out.parent / "pendulum_normalized_mujoco.png").exists()


def test_score_maths_import_without_gymnasium_or_torch():
    # scores.py is numpy only: blocking gymnasium and torch must not stop normalisation from working
    code = (
        "import sys; sys.modules['gymnasium'] = None; sys.modules['torch'] = None\n"
        "from jat_policy.evaluation.scores import normalize, normalize_score, ScoreReference\n"
        "assert normalize_score(5.0, 0.0, 10.0) == 0.5\n"
        "assert abs(normalize(45.0, 'babyai-go-to-red-ball', reference_scores={'babyai-go-to-red-ball': (0, 90)})"
        " - 0.5) < 1e-12\n"
        "from jat_policy.evaluation import get_reference_scores\n"
        "print(get_reference_scores('mujoco-pendulum').source)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "registry"


def test_per_task_whiskers_are_the_95_ci_of_the_mean():
    from jat_policy.evaluation.plots import mean_ci

    scores = [0.2, 0.4, 0.9, 0.5]
    low, high = mean_ci(scores)
    half = 3.182446305284263 * np.std(scores, ddof=1) / 2  # t(0.975, 3) * s / sqrt(4)
    assert low == pytest.approx(np.mean(scores) - half) and high == pytest.approx(np.mean(scores) + half)
    assert mean_ci([0.5]) is None and mean_ci(None) is None


def test_plots_say_what_they_show(two_task_result, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    figures = []

    class Recorded(Figure):
        def savefig(self, *args, **kwargs):
            figures.append(self)
            return super().savefig(*args, **kwargs)

    monkeypatch.setattr(evaluation.plots, "_import_figure", lambda: Recorded)
    plot_results(two_task_result, tmp_path)
    per_task, aggregate = figures
    ax = aggregate.axes[0]
    assert "IQM" in ax.get_title() and "IQM" in ax.get_xlabel() and ax.get_xlim()[0] <= 0.0
    legend = [t.get_text() for t in aggregate.legends[0].get_texts()]
    assert any("mean of task means" in text for text in legend)
    labels = [t.get_text() for t in per_task.legends[0].get_texts()]
    assert any("95% CI" in text and "v1 envs" in text for text in labels), labels  # CartPole-v1
    texts = [ax.get_title(), ax.get_xlabel(), *legend, *labels, *[t.get_text() for t in ax.get_yticklabels()]]
    assert not any("normalized" in text for text in texts)  # one spelling in what users read


@needs_registry
def test_metaworld_bars_name_the_env_versions():
    from jat_policy.evaluation.plots import _env_versions

    tasks = [{"task": "metaworld-reach", "env_id": "reach-v3", "env_spec_id": None}]
    assert _env_versions(tasks, paper=False) == "v3" and _env_versions(tasks, paper=True) == "v2"
