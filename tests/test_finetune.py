"""`jat-policy finetune`: collect -> train -> evaluate -> report on a new env, in one command."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.cli import main
from jat_policy.finetune import import_object, task_name_for

iio = pytest.importorskip("imageio.v3")
PENDULUM_ZIP = Path(__file__).parent / "fixtures" / "sb3" / "ppo-InvertedPendulum-v4.zip"


@pytest.fixture(autouse=True)
def _forget_registered_tasks():
    """finetune registers its env as a user task in this process: other tests count the registry."""
    from jat_policy.tasks import list_tasks, unregister_task

    before = set(list_tasks("user"))
    yield
    for name in set(list_tasks("user")) - before:
        unregister_task(name)


def balance(obs):  # the README's hand-written CartPole controller, as --expert tests.test_finetune:balance
    x, x_dot, angle, angle_dot, previous_reward = obs["continuous_observation"]
    return int(angle + 0.5 * angle_dot > 0)


def make_short_cartpole(render_mode=None):  # --env tests.test_finetune:make_short_cartpole
    return gym.make("CartPole-v1", render_mode=render_mode, max_episode_steps=40)


def _check_run(out: Path, stdout: str, task: str, eval_episodes: int) -> dict:
    from huggingface_hub import ModelCard

    from jat_policy import JatPolicy, make_env

    lines = stdout.strip().splitlines()
    # the output ends with the results table, the plots, the video and the checkpoint, in that order
    assert lines[-1] == f"checkpoint: {out / 'run' / 'final'} (model card: {out / 'run' / 'final' / 'README.md'})"
    assert lines[-2] == f"video: {(out / 'videos' / f'{task}-episode-0.mp4').resolve()}"
    assert [line for line in lines if line.startswith("plot: ")] and any(line.startswith(task) for line in lines)
    report = json.loads((out / "results" / "evaluation.json").read_text())
    result = report["tasks"][task]
    assert len(result["raw"]["returns"]) == eval_episodes and result["reference"]["source"] == "dataset"
    frames = iio.imread(result["video"])
    assert len(frames) == result["raw"]["lengths"][0] + 1
    card = ModelCard.load(out / "run" / "final" / "README.md")
    assert card.data.library_name == "jat-policy" and task in card.data.datasets
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results if r.dataset_name == task}
    assert metrics["mean_reward"] == pytest.approx(result["raw"]["mean"])
    env = make_env(task)  # the card update left the checkpoint complete: it loads
    JatPolicy.from_pretrained(out / "run" / "final", env.observation_space, env.action_space)
    return result


@pytest.mark.filterwarnings("ignore")
def test_finetune_cartpole_end_to_end(tmp_path, capsys):
    out = tmp_path / "cartpole"
    argv = ["finetune", "--env", "CartPole-v1", "--expert", "tests.test_finetune:balance", "--model", "jat-tiny"]
    argv += ["--episodes", "6", "--max-steps", "8", "--episode-steps", "60", "--eval-episodes", "2"]
    argv += ["--eval-envs", "2", "--random-episodes", "5", "--output-dir", str(out), "--no-progress"]
    assert main(argv) == 0
    result = _check_run(out, capsys.readouterr().out, "cartpole", eval_episodes=2)
    assert result["env_spec_id"] == "CartPole-v1" and max(result["raw"]["lengths"]) <= 60
    # episodes of <= 60 steps: the policy's context stops at the longest window trained on, not the trainer's 256
    config = json.loads((out / "run" / "final" / "config.json").read_text())
    assert 2 <= config["training_windows"]["default"] <= 60


@pytest.mark.filterwarnings("ignore")
def test_finetune_module_factory_env_and_a_checkpoint_to_fine_tune(tmp_path, capsys):
    first = tmp_path / "first"
    argv = ["finetune", "--env", "tests.test_finetune:make_short_cartpole", "--expert", "tests.test_finetune:balance"]
    argv += ["--episodes", "4", "--max-steps", "4", "--eval-episodes", "1", "--eval-envs", "1", "--no-video"]
    argv += ["--random-episodes", "3", "--no-progress"]
    assert main([*argv, "--output-dir", str(first)]) == 0
    assert "video:" not in capsys.readouterr().out
    # fine-tune the checkpoint just made, on the same env
    second = tmp_path / "second"
    assert main([*argv, "--model", str(first / "run" / "final"), "--output-dir", str(second)]) == 0
    card = (second / "run" / "final" / "README.md").read_text()
    assert f"`{first / 'run' / 'final'}`" in card  # the base checkpoint is named in the training table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--env is required"),
        (["--env", "NoSuchEnv-v0"], "neither a Gymnasium id"),
        (["--env", "tests.test_finetune:nope"], "has no 'nope'"),
        (["--env", "CartPole-v1", "--expert", "random", "--trust-pickle"], "--trust-pickle applies to an SB3 .zip"),
        (["--env", "CartPole-v1", "--expert", "auto"], "No default expert"),
    ],
)
def test_finetune_usage_errors(capsys, argv, message):
    assert main(["finetune", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_import_object_and_task_names():
    assert import_object("tests.test_finetune:balance", "--expert") is balance
    assert import_object("numpy:linalg.norm", "--expert") is np.linalg.norm
    for bad, match in [("nocolon", "expected module:name"), ("no_such_module_x:f", "cannot import"),
                       ("numpy:pi", "not a callable")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            import_object(bad, "--env")
    assert task_name_for("CartPole-v1") == "cartpole"
    assert task_name_for("ALE/Pong-v5") == "pong"
    assert task_name_for("my_envs.maze:make_maze") == "make_maze"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_finetune_mujoco_with_an_sb3_expert(tmp_path, capsys):
    out = tmp_path / "pendulum"
    argv = ["finetune", "--env", "InvertedPendulum-v4", "--expert", str(PENDULUM_ZIP), "--episodes", "20"]
    argv += ["--max-steps", "60", "--episode-steps", "200", "--eval-episodes", "4", "--output-dir", str(out)]
    argv += ["--no-progress"]
    assert main(argv) == 0
    result = _check_run(out, capsys.readouterr().out, "invertedpendulum", eval_episodes=4)
    assert iio.imread(result["video"]).shape[1:] == (480, 480, 3)
    meta = json.loads((out / "data" / "invertedpendulum" / "jat_metadata.json").read_text())
    assert meta["scores"]["expert"]["mean"] == pytest.approx(200.0)  # the PPO expert balances to the cap
