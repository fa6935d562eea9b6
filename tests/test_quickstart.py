"""`jat-policy demo` end to end with tiny budgets: collect, train, evaluate, report."""

from __future__ import annotations

import json

from jat_policy.cli import main


def test_demo_smoke(tmp_path, capsys) -> None:
    argv = ["demo", "--out-dir", str(tmp_path), "--episodes", "12", "--metaworld-episodes", "3", "--max-steps", "4"]
    argv += ["--batch-size", "4", "--eval-episodes", "2", "--eval-envs", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "babyai-go-to-red-ball" in out and "metaworld-reach" in out and "normalised" in out
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert set(summary["scores"]) == {"babyai-go-to-red-ball", "metaworld-reach"}
    assert all(p.endswith(".png") for p in summary["plots"]) and summary["plots"]
    evaluation = json.loads((tmp_path / "results" / "evaluation.json").read_text())
    reach = evaluation["tasks"]["metaworld-reach"]
    assert reach["reference"]["source"] == "dataset" and len(reach["raw"]["returns"]) == 2
    # a second run reuses the collected data and the trained checkpoint
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().out
