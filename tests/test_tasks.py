from __future__ import annotations

import csv
import math

import gymnasium as gym
import pytest

import jat_policy
from jat_policy import tasks
from jat_policy.tasks import get_task, list_tasks, register_task, resolve_tasks, unregister_task


def _csv(name: str) -> list[dict[str, str]]:
    from importlib import resources

    with resources.files("jat_policy.resources").joinpath(name).open() as f:
        return list(csv.DictReader(f))


def test_counts_per_domain():
    assert len(list_tasks()) == 157
    assert {d: len(list_tasks(d)) for d in tasks.RL_DOMAINS} == {
        "atari": 57,
        "babyai": 39,
        "metaworld": 50,
        "mujoco": 11,
    }
    assert list_tasks("text") == ["conceptual-captions", "ok-vqa", "oscar", "wikipedia"]
    assert len(list_tasks("all")) == 161
    assert list_tasks() == [row["task"] for row in _csv("task_scores.csv")]  # the reference's order


def test_examples_of_specs():
    pong = get_task("atari-pong")
    assert (pong.domain, pong.env_id, pong.modality, pong.action_type) == ("atari", "ALE/Pong-v5", "image", "discrete")
    assert (pong.random_score, pong.human_score, pong.paper_jat_score) == (-20.7, 14.6, pong.paper_jat_score)
    assert get_task("babyai-put-next").env_id == "BabyAI-PutNextS7N4-v0"
    assert get_task("babyai-move-two-across-s8n9").env_id == "BabyAI-MoveTwoAcrossS8N9-v0"
    assert get_task("atari-upndown").env_id == "ALE/UpNDown-v5"
    reach = get_task("metaworld-reach")
    assert (reach.env_id, reach.reference_env_id, reach.modality) == ("reach-v3", "reach-v2", "continuous")
    assert (
        get_task("mujoco-pusher").env_id == "Pusher-v5" and get_task("mujoco-pusher").reference_env_id == "Pusher-v4"
    )
    assert get_task("mujoco-standup").env_id == "HumanoidStandup-v4"
    assert get_task("babyai-go-to").modality == "discrete"


def test_weights_follow_the_reference_recipe():
    for name in list_tasks("all"):
        spec = get_task(name)
        expected = {"mujoco": 10.0, "metaworld": 50.0}.get(spec.domain, 1.0)
        expected = {"mujoco-pendulum": 50.0, "mujoco-doublependulum": 20.0}.get(name, expected)
        assert spec.loss_weight == expected, name
        assert spec.sample_weight == (10.0 if name in ("conceptual-captions", "oscar", "wikipedia") else 1.0), name


def test_scores_present_and_consistent_with_the_paper():
    for name in list_tasks():
        spec = get_task(name)
        assert spec.random_score is not None and spec.expert_score is not None, name
        assert spec.paper_jat_score is not None, name
        assert (spec.human_score is not None) == (spec.domain == "atari"), name
    # the paper's rows are matched by name: their (rounded) random/expert scores must agree with scores_dict
    paper = tasks._paper_scores()
    assert len(paper) == 157
    for name in list_tasks():
        spec = get_task(name)
        domain, short = name.split("-", 1)
        row = paper[(domain, tasks._squash(short))]
        assert float(row["jat_raw_mean"]) == spec.paper_jat_score, name
        for column, value in (("random_mean", spec.random_score), ("expert_mean", spec.expert_score)):
            assert math.isclose(float(row[column]), value, rel_tol=1e-2, abs_tol=0.06), (name, column)
    assert get_task("atari-bowling").paper_jat_normalized is None  # blank in the paper (expert below random)
    assert get_task("mujoco-doublependulum").paper_jat_score == 8663.7
    assert get_task("atari-montezumarevenge").paper_jat_score == 0.0
    assert get_task("babyai-put-next").paper_jat_normalized == 0.88


def test_text_tasks():
    spec = get_task("ok-vqa")
    assert (spec.domain, spec.env_id, spec.modality, spec.action_type, spec.random_score) == (
        "text",
        None,
        "text",
        None,
        None,
    )


def test_unknown_task_suggests_names():
    with pytest.raises(KeyError, match="atari-pong"):
        get_task("atari-pongg")
    with pytest.raises(ValueError, match="Unknown domain"):
        list_tasks("robotics")


def test_resolve_tasks_expands_domains():
    assert resolve_tasks("mujoco") == list_tasks("mujoco")
    assert resolve_tasks(["atari-pong", "mujoco-ant", "atari-pong"]) == ["atari-pong", "mujoco-ant"]
    assert resolve_tasks("all") == list_tasks()
    with pytest.raises(KeyError):
        resolve_tasks("nope")


def test_builtin_env_ids_exist_in_their_packages():
    import ale_py
    import metaworld
    import minigrid

    gym.register_envs(ale_py)
    gym.register_envs(minigrid)
    for name in list_tasks("atari") + list_tasks("babyai") + list_tasks("mujoco"):
        assert get_task(name).env_id in gym.registry, name
    for name in list_tasks("metaworld"):
        assert get_task(name).env_id in metaworld.ALL_V3_ENVIRONMENTS, name


def test_every_task_has_a_gym_id():
    for name in list_tasks():
        assert f"jat/{name}" in gym.registry
    assert "jat/oscar" not in gym.registry
    assert gym.registry["jat/atari-pong"].kwargs == {"task": "atari-pong"}


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    for name in names:
        if name in list_tasks("user"):
            unregister_task(name)


def test_register_task_infers_and_builds(cleanup):
    cleanup.append("my-cartpole")
    spec = register_task("my-cartpole", "CartPole-v1", random_score=22.0, expert_score=500.0)
    assert (spec.domain, spec.modality, spec.action_type, spec.expert_score) == (
        "user",
        "continuous",
        "discrete",
        500.0,
    )
    assert get_task("my-cartpole") is spec and "my-cartpole" in list_tasks() and list_tasks("user") == ["my-cartpole"]
    env = jat_policy.make_env("my-cartpole")
    obs, _ = env.reset(seed=0)
    assert obs["continuous_observation"].shape == (5,)
    env = gym.make("jat/my-cartpole")
    assert env.reset(seed=0)[0]["continuous_observation"].shape == (5,)
    unregister_task("my-cartpole")
    assert "jat/my-cartpole" not in gym.registry and "my-cartpole" not in list_tasks()


def test_register_task_with_a_function_and_kwargs(cleanup):
    cleanup.append("short-pendulum")
    spec = register_task(
        "short-pendulum",
        env_fn=lambda **kw: gym.make("Pendulum-v1", **kw),
        env_kwargs={"max_episode_steps": 3},
        modality="continuous",
        action_type="continuous",
    )
    assert spec.env_id is None and spec.random_score is None
    env = jat_policy.make_env("short-pendulum")
    env.reset(seed=0)
    truncated = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert truncated == [False, False, True]


def test_register_task_errors(cleanup):
    with pytest.raises(ValueError, match="built-in"):
        register_task("atari-pong", "CartPole-v1")
    with pytest.raises(ValueError, match="exactly one"):
        register_task("x")
    with pytest.raises(ValueError, match="Invalid task name"):
        register_task("bad name", "CartPole-v1")
    with pytest.raises(ValueError, match="Invalid task name"):
        register_task("thing-v2", "CartPole-v1")
    with pytest.raises(ValueError, match="modality"):
        register_task("y", "CartPole-v1", modality="audio")
    cleanup.append("twice")
    register_task("twice", "CartPole-v1", modality="continuous", action_type="discrete")
    with pytest.raises(ValueError, match="overwrite=True"):
        register_task("twice", "CartPole-v1")
    register_task("twice", "Pendulum-v1", overwrite=True)
    assert get_task("twice").action_type == "continuous"
    # a failing inference leaves nothing behind
    with pytest.raises(gym.error.Error):
        register_task("broken", "NoSuchEnv-v0")
    assert "broken" not in list_tasks("all")
    with pytest.raises(ValueError, match="built-in"):
        unregister_task("atari-pong")
