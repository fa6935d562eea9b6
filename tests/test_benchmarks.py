"""Tests of the benchmark scripts.

The smoke tests (deselected by default: ``pytest -m benchmark``) run each script on its smallest settings and
check the report it writes, not its timings.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_learning():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # as when the script runs: its helpers sit beside it
    spec = importlib.util.spec_from_file_location("learning_benchmark", ROOT / "benchmarks" / "learning.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_time_budget_anneals_lr_with_wall_clock_logs_it_and_stops():
    import torch
    from transformers import TrainerControl, TrainerState

    learning = _load_learning()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # constant (after warm-up)
    budget = learning.TimeBudget(100.0)
    state, control = TrainerState(), TrainerControl()
    budget.on_train_begin(None, state, control, lr_scheduler=scheduler)
    budget.start -= 25.0  # a quarter of the budget spent
    optimizer.step()
    scheduler.step()  # the trainer's order: the next step's LR is set here
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.75, rel=1e-3)
    assert scheduler.get_last_lr()[0] == optimizer.param_groups[0]["lr"]  # what the trainer logs
    budget.start -= 50.0
    optimizer.step()
    scheduler.step()  # the factor is recomputed from the schedule each step, so scaling never compounds
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.25, rel=1e-3)
    state.global_step = 7
    assert not budget.on_step_end(None, state, control).should_training_stop
    budget.start -= 30.0  # over budget: LR 0 and stop
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.0
    assert budget.on_step_end(None, state, control).should_training_stop
    assert budget.steps == 7
    with pytest.raises(TypeError, match="LambdaLR"):
        budget.on_train_begin(None, state, control, lr_scheduler=object())


@pytest.mark.benchmark
@pytest.mark.parametrize("schedule", ["consecutive", "interleaved"])
def test_predict_latency_quick_writes_report_with_floor(tmp_path, schedule):
    out = tmp_path / "predict_latency"
    cmd = [sys.executable, "benchmarks/predict_latency.py", "--quick", "--threads", "1", "--envs", "1", "2"]
    cmd += ["--modality", "continuous", "atari", "--schedule", schedule]
    subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, check=True, timeout=600)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["config"]["schedule"] == schedule
    assert out.with_suffix(".png").stat().st_size > 0
    assert "avx2" in report["machine"]["cpu_key_flags"]
    for modality in ("continuous", "atari"):
        runs = report["modalities"][modality]["runs"]
        assert [r["n_envs"] for r in runs] == [1, 2]
        for run in runs:
            assert set(run["ours"]) == {"fp32", "bf16", "int8"}
            for ours in run["ours"].values():
                assert ours["p50_ms"] <= ours["p99_ms"] <= ours["max_ms"]
                assert ours["vs_reference"] == pytest.approx(run["reference"]["mean_ms"] / ours["mean_ms"])
                # The floor counts only the bytes a step must read, so it is below every measured step.
                assert 0 < ours["floor"]["ms"] < ours["p50_ms"]
                assert ours["rollover_steps"]  # the timed steps crossed rollovers
                assert ours["steps"] == 3 and run["reference"]["steps"] == 2 and run["full_window"]["steps"] == 1


@pytest.mark.benchmark
def test_predict_latency_int8_variants_time_the_other_cache_and_engine_in_the_same_run(tmp_path):

    from jat_policy.precision import kv_cache_dtype

    out = tmp_path / "predict_latency"
    cmd = [sys.executable, "benchmarks/predict_latency.py", "--quick", "--threads", "1", "--envs", "2"]
    cmd += ["--precisions", "int8", "--int8-variants", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=600)
    entry = json.loads(out.with_suffix(".json").read_text())["modalities"]["continuous"]
    other = "fbgemm" if entry["config"]["int8_engine"] == "onednn" else "onednn"
    cache = str(kv_cache_dtype("int8")).removeprefix("torch.")  # fp16 or bf16 (jat_policy.precision)
    assert cache in ("float16", "bfloat16")
    names = {"int8", "int8-fp32kv", f"int8-{other}"}
    assert entry["config"]["kv_cache_dtype"] == {"int8": cache, "int8-fp32kv": "float32", f"int8-{other}": cache}
    ours = entry["runs"][0]["ours"]
    assert set(ours) == names
    # each cache is read as such: the fp32 one's floor counts twice the keys/values bytes of the 16-bit one
    assert ours["int8-fp32kv"]["floor"]["kv_bytes"] == 2 * ours["int8"]["floor"]["kv_bytes"]


def test_learning_train_seed_moves_only_init_and_data_order(tmp_path):
    learning = _load_learning()
    same = learning.train_options(learning.Args(seed=3), ["babyai-go-to-local"], tmp_path, tmp_path)
    other = learning.train_options(learning.Args(seed=3, train_seed=7), ["babyai-go-to-local"], tmp_path, tmp_path)
    assert same.seed == 3 and other.seed == 7  # collection and evaluation keep args.seed (3)


def test_single_budget_split():
    learning = _load_learning()
    tasks = ["a", "b", "c"]
    assert learning.single_budgets(tasks, None, 60.0) == {"a": 20.0, "b": 20.0, "c": 20.0}
    assert learning.single_budgets(tasks, ["c=30", "a=10"], 60.0) == {"a": 10.0, "b": 20.0, "c": 30.0}
    with pytest.raises(ValueError, match="task=minutes"):
        learning.single_budgets(tasks, ["d=10"], 60.0)
    with pytest.raises(ValueError, match="leaves 0 for"):
        learning.single_budgets(tasks, ["a=30", "c=30"], 60.0)


def test_learning_task_episodes_override_one_task_count(tmp_path, monkeypatch):
    learning = _load_learning()
    calls = {}
    record = lambda tasks, _dir, episodes, **kw: calls.update({tasks[0]: episodes})  # noqa: E731
    monkeypatch.setattr(learning, "collect_tasks", record)
    args = learning.Args(episodes=100, metaworld_episodes=20, task_episodes=["babyai-go-to-red-ball=7"])
    learning.collect_data(args, ["babyai-go-to-local", "babyai-go-to-red-ball", "metaworld-reach"], tmp_path)
    assert calls == {"babyai-go-to-local": 100, "babyai-go-to-red-ball": 7, "metaworld-reach": 20}
    with pytest.raises(ValueError, match="no configuration trains"):
        learning.check_task_episodes(learning.Args(configs=["single"], task_episodes=["metaworld-reach=5"]))
    with pytest.raises(ValueError, match="whole number"):
        learning.check_task_episodes(learning.Args(task_episodes=["metaworld-reach=0"]))
    learning.check_task_episodes(learning.Args(configs=["multi"], task_episodes=["metaworld-reach=5"]))


def test_learning_device_is_cpu_or_cuda_and_never_silently_cpu():
    import torch

    learning = _load_learning()
    assert learning.resolve_device("cpu") == "cpu"
    assert learning.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            learning.resolve_device("cuda")
        run = subprocess.run(
            [sys.executable, "benchmarks/learning.py", "--device", "cuda"], cwd=ROOT, capture_output=True, text=True
        )
        assert run.returncode == 2 and "no CUDA GPU" in run.stderr  # refused before any collection


def test_learning_atari_scores_are_raw_paper_and_human_normalised():
    from types import SimpleNamespace

    learning = _load_learning()
    scores = learning.atari_scores("atari-breakout", SimpleNamespace(returns=[8.0, 10.0, 12.0]))
    assert scores["raw_mean"] == pytest.approx(10.0)
    assert scores["raw_ci95"] == pytest.approx(1.96 * 2.0 / 3**0.5)
    # the registry's (paper's) Breakout references: random 1.7, expert 702.97, human 30.5
    assert scores["paper_expert_normalized"] == pytest.approx((10.0 - 1.7) / (702.9722222222222 - 1.7))
    assert scores["human_normalized"] == pytest.approx((10.0 - 1.7) / (30.5 - 1.7))
    assert scores["paper_jat_raw"] == pytest.approx(8.8)


@pytest.mark.benchmark
def test_learning_benchmark_tiny_budget_writes_merged_report(tmp_path):
    base = [sys.executable, "benchmarks/learning.py", "--episodes", "30", "--budget-minutes", "0.05"]
    base += ["--eval-episodes", "50", "--scratch", str(tmp_path / "scratch"), "--results", str(tmp_path / "res")]
    base += ["--threads", "1", "--steps-per-minute", "200"]
    single = ["--configs", "single", "--babyai-tasks", "babyai-go-to-red-ball"]
    subprocess.run([*base, *single], cwd=ROOT, check=True, timeout=900)
    multi = ["--configs", "multi", "--multi-tasks", "babyai-go-to-red-ball", "--merge"]
    subprocess.run([*base, *multi], cwd=ROOT, check=True, timeout=900)
    report = json.loads((tmp_path / "res" / "learning.json").read_text())
    assert set(report["results"]) == {"single:babyai-go-to-red-ball", "multi"}  # the second run kept the first
    for result in report["results"].values():
        task = result["tasks"]["babyai-go-to-red-ball"]
        assert task["episodes"] == 50
        assert task["paper_jat_normalized"] == pytest.approx(0.99)
        assert task["meets_paper"] == (task["expert_normalized"] >= 0.99)
        assert 0 < result["steps_done"] <= result["max_steps_planned"]
    assert (tmp_path / "res" / "learning.png").stat().st_size > 0


@pytest.mark.benchmark
def test_bf16_training_forwards_learning_options_to_both_runs(tmp_path):
    cmd = [sys.executable, "benchmarks/bf16_training.py", "--multi-tasks", "babyai-go-to-red-ball"]
    cmd += ["--episodes", "30", "--budget-minutes", "0.05", "--steps-per-minute", "200", "--eval-episodes", "50"]
    cmd += ["--scratch", str(tmp_path / "scratch"), "--results", str(tmp_path / "res")]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=900)
    report = json.loads((tmp_path / "res" / "bf16_training.json").read_text())
    assert set(report["summary"]["steps_per_second"]) == {"bf16", "fp32"}
    assert set(report["summary"]["tasks"]) == {"babyai-go-to-red-ball"}  # the option reached both runs
    for name, flag in (("bf16", True), ("fp32", False)):
        run = json.loads((tmp_path / "res" / "bf16_training" / name / "learning.json").read_text())
        assert run["results"]["multi"]["bf16"] is flag
        assert run["options"]["eval_episodes"] == 50 and run["options"]["data"] == str(tmp_path / "scratch" / "data")
    assert (tmp_path / "res" / "bf16_training.png").stat().st_size > 0


@pytest.mark.benchmark
def test_atari_step_times_both_precisions_with_and_without_the_observation_loss(tmp_path):
    cmd = [sys.executable, "benchmarks/atari_step.py", "--iters", "1", "--warmup", "0", "--batch-size", "2"]
    subprocess.run([*cmd, "--out", str(tmp_path)], cwd=ROOT, check=True, timeout=600)
    report = json.loads((tmp_path / "atari_step.json").read_text())
    assert [row["observation_loss_coef"] for row in report["results"]] == [0.005, 0.0]
    for row in report["results"]:
        assert set(row["median_step_s"]) == {"fp32", "bf16"} and min(row["median_step_s"].values()) > 0
    assert "cpu_flags" in report["machine"] and (tmp_path / "atari_step.png").stat().st_size > 0


@pytest.mark.benchmark
def test_step_profile_writes_every_section_for_every_mode(tmp_path):
    from jat_policy.quickstart import collect_tasks

    collect_tasks(["babyai-go-to-local"], tmp_path / "data", 40, seed=0)
    out = tmp_path / "step_profile.json"
    cmd = [sys.executable, "benchmarks/step_profile.py", "--data", str(tmp_path / "data"), "--steps", "2"]
    cmd += ["--warmup", "1", "--trainer-steps", "3", "--batch-size", "8", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=600)
    report = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert set(report["sections"]) == {"fp32:direct", "fp32", "bf16"}
    for res in report["sections"].values():
        assert set(res["median_ms"]) == {"data", "encoder", "action_embed", "backbone", "head_loss", "optimizer"}
        assert res["median_ms"]["backbone"] > 0 and sum(res["share"].values()) == pytest.approx(1.0)
    assert set(report["trainer"]) == {"fp32", "bf16"}  # the real train() loop, per precision
    assert 0 < report["window_stats"]["real_fraction_of_batch_steps"] <= 1


@pytest.mark.benchmark
def test_generalisation_measures_train_and_heldout_fit_and_refuses_overlapping_seeds(tmp_path):
    from jat_policy.quickstart import collect_tasks
    from jat_policy.trainers.bc import TrainOptions, train

    collect_tasks(["babyai-go-to-red-ball"], tmp_path / "data", 30, seed=0)
    final = train(
        TrainOptions(
            tasks=["babyai-go-to-red-ball"], data=str(tmp_path / "data"), output_dir=str(tmp_path / "run"),
            max_steps=3, per_device_batch_size=4, report_to="none",
        )
    )  # fmt: skip
    out = tmp_path / "generalisation.json"
    cmd = [sys.executable, "benchmarks/generalisation.py", "--data", str(tmp_path / "data")]
    cmd += ["--task", "babyai-go-to-red-ball", "--checkpoints", str(final), "--episodes", "20"]
    cmd += ["--scratch", str(tmp_path / "heldout"), "--out", str(out)]
    overlapping = subprocess.run([*cmd, "--heldout-seed", "10"], cwd=ROOT, capture_output=True, text=True)
    assert overlapping.returncode == 2 and "overlaps the training data's seeds 0..29" in overlapping.stderr
    assert len(overlapping.stderr.strip().splitlines()) == 1  # one line, no traceback
    subprocess.run([*cmd, "--heldout-seed", "1000"], cwd=ROOT, check=True, timeout=600)
    report = json.loads(out.read_text())
    fit = report["results"][str(final)]
    assert set(fit) == {"train", "heldout"} and out.with_suffix(".png").stat().st_size > 0
    for side in fit.values():
        assert side["nll"] > 0 and 0 <= side["accuracy"] <= 1 and 0 < side["p_expert_action"] < 1
    assert (
        json.loads((tmp_path / "heldout" / "babyai-go-to-red-ball" / "jat_metadata.json").read_text())["base_seed"]
        == 1000
    )
