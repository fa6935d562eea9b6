"""The behaviour-cloning trainer: loss falls, checkpoints load, CLI, fine-tuning, SIGKILL + resume, torchrun DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from safetensors.torch import load_file
from transformers import TrainerCallback

from jat_policy.configuration import JatConfig
from jat_policy.data import EpisodeSchema, get_features
from jat_policy.modeling import JatModel
from jat_policy.processing import JatProcessor
from jat_policy.trainers.bc import TrainOptions, cli_main, find_last_checkpoint, fitted_windows, train
from jat_policy.trainers.sampling import TaskWindows
from tests.conftest import save_tiny_jat

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- synthetic data
def _continuous(n: int, length: int | list[int], obs: int = 39, act: int = 4, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    lengths = [length] * n if isinstance(length, int) else length
    observations = [rng.normal(size=(t, obs)).astype(np.float32) for t in lengths]
    return {
        "continuous_observations": [o.tolist() for o in observations],
        "continuous_actions": [np.tanh(o[:, :act] + o[:, -act:]).tolist() for o in observations],  # learnable
        "rewards": [rng.normal(size=t).astype(np.float32).tolist() for t in lengths],
    }


def _babyai(n: int, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    data: dict[str, list] = {
        "text_observations": [],
        "discrete_observations": [],
        "discrete_actions": [],
        "rewards": [],
    }
    for i in range(n):
        t = int(rng.integers(3, 12))
        grid = rng.integers(0, 11, size=(t, 148))
        data["text_observations"].append([("go to the red ball", "go to the blue key")[i % 2]] * t)
        data["discrete_observations"].append(grid.tolist())
        data["discrete_actions"].append((grid[:, 1] % 7).tolist())
        data["rewards"].append([0.0] * (t - 1) + [0.9])
    return data


def _save(root: Path, task: str, data: dict[str, list], features) -> None:
    DatasetDict({"train": Dataset.from_dict(data, features=features)}).save_to_disk(str(root / task))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """fixed/: a 2-episode continuous task; mixed/: continuous + BabyAI-like; user/: new 5-d obs, 3-d action env."""
    root = tmp_path_factory.mktemp("bc-data")
    _save(root / "fixed", "metaworld-reach", _continuous(2, 16), get_features("metaworld"))
    _save(root / "mixed", "metaworld-reach", _continuous(4, [20, 12, 9, 16], seed=1), get_features("metaworld"))
    _save(root / "mixed", "babyai-go-to-red-ball", _babyai(6), get_features("babyai"))
    user_features = EpisodeSchema(("continuous_observations",), "continuous_actions").features()
    _save(root / "user", "my-new-env", _continuous(3, 10, obs=5, act=3, seed=2), user_features)
    return root


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A hidden-64 JAT (2 layers) saved with the default processor: the smallest that covers every module."""
    return save_tiny_jat(
        tmp_path_factory.mktemp("tiny-model"), hidden_size=64, num_heads=2, max_position_embeddings=256
    )


class _Losses(TrainerCallback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def _options(tmp_path: Path, **kw) -> TrainOptions:
    # fp32 unless a test asks for bf16: numeric comparisons must not depend on whether the CPU has AVX-512 BF16
    defaults = dict(
        output_dir=str(tmp_path / "run"), report_to="none", logging_steps=1, save_steps=1000, seed=0, bf16="no"
    )
    return TrainOptions(**{**defaults, **kw})


# ----------------------------------------------------------------------------------------------- unit-level
def test_loss_falls_on_a_fixed_batch(tmp_path, data_root, tiny_model_dir):
    losses = _Losses()
    options = _options(
        tmp_path,
        tasks=["metaworld-reach"],
        data=str(data_root / "fixed"),
        model=str(tiny_model_dir),
        max_steps=12,
        per_device_batch_size=2,  # the task's two windows: every batch is the same
        learning_rate=3e-3,
        lr_scheduler="constant",
        warmup=0,
        window=16,
    )
    train(options, callbacks=[losses])
    assert len(losses.losses) == 12
    assert losses.losses[-1] < 0.6 * losses.losses[0], losses.losses


def test_gradient_accumulation_matches_a_larger_batch(tmp_path, data_root, tiny_model_dir):
    # One task of 4 equal windows: 2 micro-batches of 2 draw the same 4 windows per step as one batch of 4
    # (without length grouping, which deals the micro-batches of 16 draws out in a shuffled order).
    common = dict(tasks=["metaworld-reach"], data=str(data_root / "fixed"), model=str(tiny_model_dir), window=8)
    common["group_by_length"] = False
    accumulated = train(
        _options(tmp_path, **common, max_steps=3, per_device_batch_size=2, gradient_accumulation_steps=2)
    )
    large = train(_options(tmp_path, **common, max_steps=3, per_device_batch_size=4, output_dir=str(tmp_path / "l")))
    a, b = load_file(accumulated / "model.safetensors"), load_file(large / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_bf16_trains_and_follows_fp32(tmp_path, data_root, tiny_model_dir):
    # bf16 autocast (native with AVX-512 BF16 / AMX, emulated elsewhere): the loss falls, and step by step it
    # stays within bf16's precision of the fp32 run's (8 mantissa bits: ~0.4% per rounding).
    common = dict(tasks=["metaworld-reach"], data=str(data_root / "fixed"), model=str(tiny_model_dir), window=16)
    common.update(max_steps=12, per_device_batch_size=2, learning_rate=3e-3, lr_scheduler="constant", warmup=0)
    curves = {}
    for mode in ("no", "yes"):
        losses = _Losses()
        train(_options(tmp_path, **common, bf16=mode, output_dir=str(tmp_path / mode)), callbacks=[losses])
        curves[mode] = np.array(losses.losses)
    fp32, bf16 = curves["no"], curves["yes"]
    assert len(bf16) == 12 and bf16[-1] < 0.6 * bf16[0], bf16
    assert np.abs(bf16 - fp32).max() <= 0.03 * fp32.max(), (fp32, bf16)
    assert not np.array_equal(bf16, fp32)  # autocast really ran in bf16


def test_onednn_isa_cap_turns_native_bf16_off(monkeypatch):
    from jat_policy.trainers.bc import cpu_supports_bf16, resolve_bf16

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # a bf16 CPU computing as an AVX2-only one
    assert not cpu_supports_bf16()
    assert resolve_bf16("yes") and not resolve_bf16("no")


def test_bf16_auto_follows_the_hardware():
    from jat_policy.trainers.bc import cpu_supports_bf16, resolve_bf16

    # auto: bf16 on a CUDA GPU that supports it, fp32 on every CPU (bf16 hardware or not)
    expected = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert resolve_bf16("auto") == expected
    assert isinstance(cpu_supports_bf16(), bool)
    assert resolve_bf16("yes") and not resolve_bf16("no")


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, data_root, tiny_model_dir) -> Path:
    """A 5-step two-task run through the CLI."""
    out = tmp_path_factory.mktemp("mixed-run")
    argv = ["--tasks", "metaworld-reach,babyai-go-to-red-ball", "--data", str(data_root / "mixed")]
    argv += ["--model", str(tiny_model_dir), "--max-steps", "5", "--output-dir", str(out), "--save-steps", "5"]
    argv += ["--per-device-batch-size", "2", "--report-to", "none", "--sample-weights", "babyai-go-to-red-ball=2"]
    assert cli_main(argv) == 0
    return out


def test_cli_run_writes_loadable_safetensors_checkpoints(mixed_run, tiny_model_dir):
    final = mixed_run / "final"
    model = JatModel.from_pretrained(final)
    processor = JatProcessor.from_pretrained(final)
    assert model.config.hidden_size == 64 and processor.vocab_size <= model.config.vocab_size
    half = model.config.max_position_embeddings // 2  # the windows it trained on become the policy's context
    assert model.config.training_windows == {"default": min(256, half), "image": min(32, half)}
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    options = json.loads((final / "train_options.json").read_text())
    assert options["tasks"] == ["metaworld-reach", "babyai-go-to-red-ball"] and options["learning_rate"] == 1e-3
    assert json.loads((final / "training_args.json").read_text())["max_steps"] == 5
    assert find_last_checkpoint(mixed_run) == mixed_run / "checkpoint-5"
    assert not list(mixed_run.rglob("training_args.bin")), "the pickled TrainingArguments must be replaced by JSON"
    assert not list(final.glob("*.bin")) and not list(final.glob("*.pt*"))
    # every checkpoint records its datasets (these have no collector metadata: no scores, the registry's apply)
    for folder in (final, mixed_run / "checkpoint-5"):
        record = json.loads((folder / "training_data.json").read_text())["datasets"]
        assert list(record) == ["metaworld-reach", "babyai-go-to-red-ball"]
        assert record["metaworld-reach"]["source"] == "local" and record["metaworld-reach"]["scores"] is None
    # final/ holds the step-5 weights, which differ from the initial ones
    trained, step5 = load_file(final / "model.safetensors"), load_file(mixed_run / "checkpoint-5/model.safetensors")
    assert all(torch.equal(trained[k], step5[k]) for k in trained)
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert not torch.equal(trained["continuous_encoder.weight"], initial["continuous_encoder.weight"])


def _windows(name: str, lengths: list[int], key: str = "discrete_observations", kind: str = "rl") -> TaskWindows:
    steps = {key: np.zeros((sum(lengths), 2), dtype=np.int32)}
    return TaskWindows(name, kind, steps, np.concatenate([[0], np.cumsum(lengths)]))


def test_the_policy_context_is_the_longest_window_trained_on():
    """Positions past the longest training window were never fitted, so the recorded context stops there."""
    options = TrainOptions(tasks=["a"], window=64, atari_window=4)
    short = [_windows("babyai", [5, 31, 12]), _windows("text", [400], key="input_ids", kind="text")]
    # cut to the longest RL window, floored to even (contexts roll by halves); no image task: the configured 4
    assert fitted_windows(short, options, 512) == {"default": 30, "image": 4}
    long = [*short, _windows("metaworld", [64, 64, 20], key="continuous_observations")]
    assert fitted_windows(long, options, 512) == {"default": 64, "image": 4}
    atari = [_windows("atari", [4, 3], key="image_observations")]
    wide = TrainOptions(tasks=["a"], window=64, atari_window=8)
    assert fitted_windows(atari, wide, 512) == {"default": 64, "image": 4}
    # a fine-tuned checkpoint keeps what its earlier training fitted; nothing exceeds the positions
    assert fitted_windows(short, options, 512, earlier={"default": 256, "image": 32}) == {"default": 256, "image": 32}
    assert fitted_windows(long, options, 100) == {"default": 50, "image": 4}
    assert fitted_windows([_windows("one", [1])], options, 512)["default"] == 2


def test_fine_tune_on_a_new_action_space(tmp_path, data_root, mixed_run):
    final = train(
        _options(
            tmp_path,
            tasks=["my-new-env"],  # not in the registry: a user task with local data
            data=str(data_root / "user"),
            model=str(mixed_run / "final"),
            max_steps=3,
            per_device_batch_size=2,
            observation_loss_coef=0.0,
            dropout=0.1,
            bf16="yes",  # autocast on CPU, emulated where the CPU has no native bf16
        )
    )
    model = JatModel.from_pretrained(final)
    assert model.config.observation_loss_coef == 0.0
    dropouts = (model.config.embed_dropout, model.config.attention_dropout, model.config.resid_dropout)
    assert dropouts == (0.1, 0.1, 0.1)
    out = model(continuous_observations=torch.zeros(1, 4, 5), continuous_actions=torch.zeros(1, 4, 3))
    assert out.pred_actions.shape == (1, 4, 3)


def test_text_captioning_and_atari_tasks_train_through_the_same_trainer(tmp_path, tiny_model_dir):
    import PIL.Image
    from datasets import Features, Image, Value

    from jat_policy.data import encode_frame

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    DatasetDict(
        {"train": Dataset.from_dict({"text": ["go to the red ball " * 40, "pick up the key"] * 2})}
    ).save_to_disk(str(root / "wikipedia"))
    pictures = [PIL.Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)) for _ in range(3)]
    captions = Dataset.from_dict(
        {"images": pictures, "text": ["a red ball", "a blue key", "a grey box"]},
        features=Features({"images": Image(), "text": Value("string")}),
    )
    DatasetDict({"train": captions}).save_to_disk(str(root / "conceptual-captions"))
    frames = [[encode_frame(rng.integers(0, 256, (84, 84, 4), dtype=np.uint8)) for _ in range(t)] for t in (40, 7)]
    atari = {"image_observations": frames, "discrete_actions": [[1] * 40, [2] * 7], "rewards": [[0.0] * 40, [1.0] * 7]}
    DatasetDict({"train": Dataset.from_dict(atari, features=get_features("atari"))}).save_to_disk(
        str(root / "atari-pong")
    )
    losses = _Losses()
    final = train(
        _options(
            tmp_path,
            tasks=["wikipedia", "conceptual-captions", "atari-pong"],
            data=str(root),
            model=str(tiny_model_dir),  # 256 positions: 196 image patches + 60 caption tokens
            max_steps=6,
            per_device_batch_size=2,
            sample_weights=["atari-pong=10"],  # text tasks weigh 10 in the registry
        ),
        callbacks=[losses],
    )
    assert len(losses.losses) == 6 and all(np.isfinite(losses.losses))
    assert JatModel.from_pretrained(final).config.hidden_size == 64


def test_cli_help_lists_every_option(capsys):
    from jat_policy.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--tasks", "--data", "--model", "--max-steps", "--output-dir", "--observation-loss-coef", "--bf16"):
        assert flag in text
    assert "(default: 'jat-tiny')" in text


def test_options_are_validated(tmp_path, data_root):
    with pytest.raises(ValueError, match="No tasks"):
        train(_options(tmp_path))
    with pytest.raises(ValueError, match="task=weight"):
        train(_options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), loss_weights=["x"]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        train(_options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), window=400))
    with pytest.raises(KeyError, match="Unknown task"):
        train(_options(tmp_path, tasks=["metaworld-rech"]))
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 10"):
        train(_options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), dropout=10))
    with pytest.raises(ValueError, match="num_layers must be >= 1 transformer block, got 0"):
        train(_options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), num_layers=0))
    with pytest.raises(ValueError, match=r"augment='mirror' mirrors BabyAI episodes, but no task is BabyAI"):
        train(_options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), augment="mirror"))
    with pytest.raises(ValueError, match="augment must be 'none' or 'mirror', got 'flip'"):
        train(_options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), augment="flip"))


def test_num_layers_sets_a_fresh_presets_depth_and_refuses_a_checkpoint(tmp_path, data_root, tiny_model_dir):
    final = train(
        _options(tmp_path, tasks=["metaworld-reach"], data=str(data_root / "fixed"), max_steps=2, num_layers=3)
    )
    model = JatModel.from_pretrained(final)
    assert len(model.transformer.h) == 3
    assert model.config.attention_layers == ["global", "local", "global"]  # alternating, as in every preset
    assert model.config.hidden_size == JatConfig.from_preset("jat-tiny").hidden_size  # only the depth changed
    with pytest.raises(ValueError, match="is a checkpoint, whose layers are fixed"):
        train(
            _options(
                tmp_path / "ft",
                tasks=["metaworld-reach"],
                data=str(data_root / "fixed"),
                model=str(tiny_model_dir),
                num_layers=4,
            )
        )


# ----------------------------------------------------------------------------------------------- processes
_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from transformers import TrainerCallback
    from jat_policy.trainers.bc import TrainOptions, train

    options, log_path, delay = TrainOptions(**json.loads(sys.argv[1])), sys.argv[2], float(sys.argv[3])

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": state.global_step, "loss": logs["loss"]}) + "\\n")

        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(delay)  # lets the test kill the run mid-way

    train(options, callbacks=[Record()])
    """
)


def _child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _start(tmp_path: Path, options: dict, log: Path, delay: float = 0.0) -> subprocess.Popen:
    script = tmp_path / "run_train.py"
    script.write_text(_SCRIPT)
    args = [sys.executable, str(script), json.dumps(options), str(log), str(delay)]
    return subprocess.Popen(args, env=_child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _logged(path: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in map(json.loads, path.read_text().splitlines())}


def _assert_same_weights(a: Path, b: Path, atol: float) -> None:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert first.keys() == second.keys()
    worst = max((first[k] - second[k]).abs().max().item() for k in first)
    assert worst <= atol, worst


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, data_root, tiny_model_dir):
    common = dict(
        tasks=["metaworld-reach", "babyai-go-to-red-ball"],
        data=str(data_root / "mixed"),
        model=str(tiny_model_dir),
        max_steps=20,
        save_steps=5,
        per_device_batch_size=2,
        logging_steps=1,
        report_to="none",
        resume_from_checkpoint="last",
        bf16="no",  # exact comparisons: fp32 whatever the CPU
    )
    reference = _start(tmp_path, {**common, "output_dir": str(tmp_path / "a")}, tmp_path / "a.jsonl")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    killed = _start(tmp_path, {**common, "output_dir": str(tmp_path / "b")}, tmp_path / "b1.jsonl", delay=0.3)
    marker = tmp_path / "b" / "checkpoint-10" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert not (tmp_path / "b" / "final").exists(), "the run finished before it could be killed"
    resumed_from = find_last_checkpoint(tmp_path / "b")
    assert resumed_from is not None and int(resumed_from.name.split("-")[1]) in (10, 15)

    resumed = _start(tmp_path, {**common, "output_dir": str(tmp_path / "b")}, tmp_path / "b2.jsonl")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    uninterrupted, after_resume = _logged(tmp_path / "a.jsonl"), _logged(tmp_path / "b2.jsonl")
    assert sorted(after_resume) == list(range(int(resumed_from.name.split("-")[1]) + 1, 21))
    for step, loss in after_resume.items():  # same data order, same state: same losses step by step
        assert loss == pytest.approx(uninterrupted[step], rel=1e-4), step
    _assert_same_weights(tmp_path / "a" / "final", tmp_path / "b" / "final", atol=1e-5)


def test_torchrun_two_processes_match_one_process(tmp_path, data_root, tiny_model_dir):
    # Equal-length episodes (no padding): the mean over each rank's windows averages to the global mean.
    common = ["--tasks", "metaworld-reach", "--data", str(data_root / "fixed"), "--model", str(tiny_model_dir)]
    common += ["--max-steps", "4", "--window", "8", "--report-to", "none", "--save-steps", "100", "--bf16", "no"]
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp += [
        "-m",
        "jat_policy.trainers.bc",
        *common,
        "--per-device-batch-size",
        "2",
        "--output-dir",
        str(tmp_path / "d"),
    ]
    result = subprocess.run(ddp, env=_child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    single = train(
        _options(
            tmp_path,
            tasks=["metaworld-reach"],
            data=str(data_root / "fixed"),
            model=str(tiny_model_dir),
            max_steps=4,
            window=8,
            per_device_batch_size=4,
            output_dir=str(tmp_path / "s"),
        )
    )
    _assert_same_weights(tmp_path / "d" / "final", single, atol=1e-5)


@pytest.mark.parametrize("fails", [False, True])
def test_the_cli_destroys_the_process_group_it_trained_under(tmp_path, monkeypatch, fails):
    # Left to interpreter teardown, a gloo group can abort a rank after a successful torchrun run (SIGABRT).
    import torch.distributed as dist

    from jat_policy.trainers import bc

    def fake_train(options):
        assert dist.is_initialized()
        if fails:
            raise RuntimeError("boom")
        return tmp_path / "final"

    monkeypatch.setattr(bc, "train", fake_train)
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        if fails:
            with pytest.raises(RuntimeError, match="boom"):
                cli_main(["--tasks", "metaworld-reach", "--output-dir", str(tmp_path / "run")])
        else:
            assert cli_main(["--tasks", "metaworld-reach", "--output-dir", str(tmp_path / "run")]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_device_option_picks_cuda_only_when_there():
    import torch

    from jat_policy.trainers.bc import TrainOptions, build_training_arguments
    from jat_policy.trainers.options import use_cuda

    assert not use_cuda("cpu")
    assert use_cuda("auto") == torch.cuda.is_available()
    with pytest.raises(ValueError, match="device='gpu'"):
        use_cuda("gpu")
    assert build_training_arguments(TrainOptions(device="cpu"), 1e-3).use_cpu
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            build_training_arguments(TrainOptions(device="cuda"), 1e-3)
