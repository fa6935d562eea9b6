"""The model card a trained checkpoint carries: written by the trainer, updated by evaluate, uploaded with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard

from jat_policy import JatPolicy, collect, make_env, register_task
from jat_policy.cli import main
from jat_policy.evaluation import evaluate, jat_policy_factory
from jat_policy.model_card import push_to_hub, read_model_card, training_card, update_model_card, write_model_card
from jat_policy.tasks import unregister_task
from jat_policy.trainers.bc import TrainOptions, train

TASK = "card-cartpole"


def _balance(obs):
    x, x_dot, angle, angle_dot, previous_reward = obs["continuous_observation"]
    return int(angle + 0.5 * angle_dot > 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    register_task(TASK, "CartPole-v1", env_kwargs={"max_episode_steps": 50}, overwrite=True)
    collect(TASK, _balance, n_episodes=6, out=root / "data", random_episodes=5, progress=False)
    options = TrainOptions(tasks=[TASK], data=str(root / "data"), model="jat-tiny", max_steps=3,
                           output_dir=str(root / "run"), report_to="none", save_steps=3)  # fmt: skip
    final = train(options)
    yield root, final
    unregister_task(TASK)


def _policy_on_env(final: Path) -> JatPolicy:
    env = make_env(TASK)
    return JatPolicy.from_pretrained(final, env.observation_space, env.action_space)


@pytest.mark.filterwarnings("ignore")
def test_round_trip_train_writes_evaluate_updates_read_back(trained, tmp_path):
    root, final = trained
    card = ModelCard.load(final / "README.md")
    assert card.data.library_name == "jat-policy" and card.data.pipeline_tag == "reinforcement-learning"
    assert card.data.datasets == [TASK] and {"reinforcement-learning", TASK, "CartPole-v1"} <= set(card.data.tags)
    assert card.data.model_name == f"jat-{TASK}" and not card.data.eval_results
    assert "| card-cartpole | CartPole-v1 | _balance | 5 | 50 |" in card.text  # the dataset and its scores
    assert "No results yet" in card.text

    report = tmp_path / "eval.json"
    argv = ["evaluate", "--model", str(final), "--tasks", TASK, "--episodes", "2", "--dataset", str(root / "data")]
    argv += ["--output", str(report), "--no-plots", "--no-progress", "--update-card"]
    assert main(argv) == 0
    result = json.loads(report.read_text())["tasks"][TASK]
    card = read_model_card(final)
    metrics = {r.metric_type: r for r in card.data.eval_results}
    assert set(metrics) == {"mean_reward", "std_reward", "expert_normalized_score", "success_rate"}
    assert metrics["success_rate"].metric_value == result["success_rate"]
    assert metrics["success_rate"].metric_args == {"definition": result["success_definition"]}
    assert metrics["expert_normalized_score"].metric_args["measured_on"] == "CartPole-v1"
    assert metrics["mean_reward"].metric_value == pytest.approx(result["raw"]["mean"])
    assert metrics["mean_reward"].metric_args == {"episodes": 2, "seed": 0, "deterministic": False}
    assert metrics["expert_normalized_score"].metric_value == pytest.approx(result["expert_normalized"]["mean"])
    assert metrics["expert_normalized_score"].metric_args["source"] == result["reference"]["source"]
    assert all(r.dataset_type == "CartPole-v1" and r.task_type == "reinforcement-learning" for r in metrics.values())
    assert "No results yet" not in card.text and f"| {TASK} | CartPole-v1 | 2 |" in card.text
    _policy_on_env(final)  # the card is outside the weights' manifest: the checkpoint is still complete

    # a task evaluated again replaces its results; other tasks keep theirs
    other = evaluate(jat_policy_factory(final), ["CartPole-v1"], n_episodes=1, progress=False)
    update_model_card(final, other)
    again = evaluate(jat_policy_factory(final), [TASK], n_episodes=3, seed=5, progress=False)
    update_model_card(final, again)
    card = read_model_card(final)
    by_task = {}
    for r in card.data.eval_results:
        by_task.setdefault(r.dataset_name, {})[r.metric_type] = r
    assert set(by_task) == {TASK, "CartPole-v1"}
    assert by_task[TASK]["mean_reward"].metric_args["episodes"] == 3  # not the 2-episode result any more
    assert card.text.count(f"| {TASK} |") == 2  # training-data row + one results row


def test_update_card_needs_a_card(tmp_path, capsys):
    argv = ["evaluate", "--model", "random", "--tasks", "CartPole-v1", "--update-card"]
    assert main(argv) == 2
    assert "--update-card needs a checkpoint directory with a README.md" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no README.md model card"):
        read_model_card(tmp_path)


def test_a_hand_written_card_gets_an_evaluation_section(trained, tmp_path):
    root, final = trained
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# My policy\n\nNotes.\n")
    result = evaluate(jat_policy_factory(final), [TASK], n_episodes=1, progress=False, dataset_path=root / "data")
    update_model_card(tmp_path, result)
    card = read_model_card(tmp_path)
    assert card.data.license == "mit" and card.text.startswith("# My policy\n\nNotes.")
    assert "## Evaluation" in card.text and card.data.model_name == tmp_path.name
    assert [r.metric_type for r in card.data.eval_results][0] == "mean_reward"


def test_push_to_hub_uploads_the_checkpoint_with_its_card(trained, monkeypatch):
    _, final = trained
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        calls["upload"] = kwargs
        calls["card"] = ModelCard.load(folder / "README.md")
        calls["files"] = sorted(p.name for p in folder.iterdir())
        return "https://huggingface.co/me/jat-cartpole/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert push_to_hub(final, "me/jat-cartpole", private=True).endswith("/commit/abc")
    assert calls["create_repo"] == ("me/jat-cartpole", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls["upload"]["repo_id"] == "me/jat-cartpole" and "README.md" in calls["upload"]["allow_patterns"]
    assert not any(p.endswith((".bin", ".pt", ".pkl")) for p in calls["upload"]["allow_patterns"])
    assert calls["card"].data.library_name == "jat-policy"

    # a policy object: saved with the card it is given, into a temporary folder
    policy = _policy_on_env(final)
    calls.clear()
    policy.push_to_hub("me/jat-cartpole-policy", card=read_model_card(final))
    assert {"README.md", "model.safetensors", "policy.json", "config.json"} <= set(calls["files"])
    assert calls["card"].data.model_name == f"jat-{TASK}"


def test_push_to_hub_refuses_a_checkpoint_without_card(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: pytest.fail("uploaded"))
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *args, **kwargs: pytest.fail("created"))
    _policy_on_env(trained[1]).save(tmp_path)
    with pytest.raises(FileNotFoundError, match="no README.md"):
        push_to_hub(tmp_path, "me/x")


def test_training_card_names_a_hub_base_model_and_the_hub_dataset(tmp_path):
    card = training_card(
        ["babyai-go-to-red-ball"], None, "jat-project/jat", model_name="m", env_ids=["BabyAI-GoToRedBall-v0"]
    )
    assert card.data.base_model == "jat-project/jat" and card.data.datasets == ["jat-project/jat-dataset"]
    assert "babyai" in card.data.tags and "BabyAI-GoToRedBall-v0" in card.data.tags
    fresh = training_card(["metaworld-reach"], tmp_path, "jat-tiny", model_name="m")
    assert fresh.data.base_model is None
    path = write_model_card(tmp_path, fresh)
    assert ModelCard.load(path).data.to_dict() == fresh.data.to_dict()
