"""`jat-policy demo` end to end with tiny budgets: collect, train, evaluate, report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image, ImageSequence

from jat_policy.cli import main
from jat_policy.quickstart import collect_tasks


def test_demo_smoke(tmp_path, capsys) -> None:
    argv = ["demo", "--out-dir", str(tmp_path), "--episodes", "12", "--metaworld-episodes", "3", "--max-steps", "4"]
    argv += ["--batch-size", "4", "--eval-episodes", "2", "--eval-envs", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "babyai-go-to-red-ball" in out and "metaworld-reach" in out and "normalised" in out
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert set(summary["scores"]) == {"babyai-go-to-red-ball", "metaworld-reach"}
    assert all(p.endswith(".png") for p in summary["plots"]) and summary["plots"]
    # one short GIF per task, of its first evaluation episode: every k-th of its frames, at most 60
    tasks = json.loads((tmp_path / "results" / "evaluation.json").read_text())["tasks"]
    assert [Path(g).name for g in summary["gifs"]] == ["babyai-go-to-red-ball.gif", "metaworld-reach.gif"]
    for gif in summary["gifs"]:
        assert f"gif: {gif}" in out
        n_frames = tasks[Path(gif).stem]["raw"]["lengths"][0] + 1  # reset + each step
        step = math.ceil(n_frames / 60)
        with Image.open(gif) as image:
            # pillow merges repeated frames (a BabyAI action that changes nothing) into one longer frame
            durations = [frame.info["duration"] for frame in ImageSequence.Iterator(image)]
            assert max(image.size) <= 192
        assert sum(durations) == math.ceil(n_frames / step) * math.gcd(*durations)
    evaluation = json.loads((tmp_path / "results" / "evaluation.json").read_text())
    reach = evaluation["tasks"]["metaworld-reach"]
    assert reach["reference"]["source"] == "dataset" and len(reach["raw"]["returns"]) == 2
    # the table says where each reference came from, and how success is defined (BabyAI's too)
    assert f"from dataset {tmp_path / 'data' / 'metaworld-reach'}, measured on reach-v3" in out
    babyai = evaluation["tasks"]["babyai-go-to-red-ball"]
    assert babyai["success_rate"] is not None and "mission completed" in babyai["success_definition"]
    # off a TTY, training prints plain progress lines and where its TensorBoard logs are, no dict dumps
    assert "step 4/4 (100%) | loss " in out and "{'loss'" not in out and "TensorBoard logs: " in out
    card = ModelCard.load(tmp_path / "run" / "final" / "README.md")  # the checkpoint's card holds the results
    means = {r.dataset_name: r.metric_value for r in card.data.eval_results if r.metric_type == "mean_reward"}
    assert means == pytest.approx({task: tasks[task]["raw"]["mean"] for task in summary["scores"]})
    assert f"model card: {tmp_path / 'run' / 'final' / 'README.md'}" in out
    # a second run reuses the collected data and the trained checkpoint
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().out
    # `jat-policy evaluate` of the demo's checkpoint normalises as the demo did: with the datasets it trained on
    checkpoint = summary["checkpoint"]
    recorded = json.loads((tmp_path / "run" / "final" / "training_data.json").read_text())["datasets"]
    assert recorded["metaworld-reach"]["path"] == str((tmp_path / "data" / "metaworld-reach").resolve())
    for flag, source, env_id in (
        ("--checkpoint-references", "dataset", "reach-v3"),
        ("--no-checkpoint-references", "registry", "reach-v2"),
    ):
        out_json = tmp_path / f"{source}.json"
        argv = ["evaluate", "--model", checkpoint, "--tasks", "metaworld-reach", "--episodes", "2", "--no-plots"]
        assert main([*argv, "--bootstrap-reps", "20", "--output", str(out_json), flag]) == 0
        reference = json.loads(out_json.read_text())["tasks"]["metaworld-reach"]["reference"]
        assert reference["source"] == source and reference["env_id"] == env_id
        if source == "dataset":
            assert reference == reach["reference"] | {"origin": reference["origin"]}
        assert f"measured on {env_id}" in capsys.readouterr().out


def test_collect_tasks_reuses_only_what_was_asked_for(tmp_path, capsys) -> None:
    def stored() -> int:
        meta = json.loads((tmp_path / "babyai-go-to-red-ball" / "jat_metadata.json").read_text())
        return sum(split["episodes"] for split in meta["splits"].values())

    collect_tasks(["babyai-go-to-red-ball"], tmp_path, 10, seed=0, workers=1)
    assert stored() == 10
    collect_tasks(["babyai-go-to-red-ball"], tmp_path, 10, seed=0, workers=1)
    assert "reusing" in capsys.readouterr().out
    collect_tasks(["babyai-go-to-red-ball"], tmp_path, {"babyai-go-to-red-ball": 14}, seed=0, workers=1)
    assert "holds 10 episodes from seed 0 with a test split of 0.1, not the 14" in capsys.readouterr().out
    assert stored() == 14
    collect_tasks(["babyai-go-to-red-ball"], tmp_path, 14, seed=3, workers=1)
    assert "collecting again" in capsys.readouterr().out
    collect_tasks(["babyai-go-to-red-ball"], tmp_path, 14, seed=3, workers=1, test_fraction=0.5)
    assert "with a test split of 0.1, not the 14 from seed 3 with 0.5" in capsys.readouterr().out
    meta = json.loads((tmp_path / "babyai-go-to-red-ball" / "jat_metadata.json").read_text())
    assert meta["splits"]["test"]["episodes"] == 7 and stored() == 14
