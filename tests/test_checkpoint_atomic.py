"""Checkpoints are written as one unit: a save killed at any file operation never leaves a silent mix.

Each test saves an "old" checkpoint, then saves a "new" one over it with the k-th file operation raising
``_Killed`` (a ``BaseException``, like ``KeyboardInterrupt`` or a signal), for every k until a save runs to the
end. Whatever each kill leaves behind must load as the old state, load as the new one, or be refused with a
clear error.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from gymnasium import spaces

from jat_policy.modeling import JatModel, check_checkpoint_files
from jat_policy.policy import JatPolicy
from jat_policy.processing import JatProcessor
from tests.conftest import FIXTURES, tiny_config

OLD_SPACES = (
    spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (6,), np.float32)}),
    spaces.Box(-1.0, 1.0, (2,), np.float32),
)
NEW_SPACES = (
    spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (4,), np.float32)}),
    spaces.Box(-2.0, 2.0, (3,), np.float32),
)
REFUSED = "incomplete checkpoint"


class _Killed(BaseException):
    """Stands for SIGKILL / power loss between two file operations (not an Exception: nothing may catch it)."""


def _writes(mode: str) -> bool:
    return any(flag in mode for flag in "wax+")


@contextmanager
def _kill_at(monkeypatch: pytest.MonkeyPatch, k: int) -> Iterator[list[str]]:
    """Raises ``_Killed`` at the k-th file operation (1-based); yields the log of operations run."""
    log: list[str] = []

    def counted(name: str, original: Callable, only: Callable[..., bool] = lambda *a, **kw: True) -> Callable:
        def wrapper(*args, **kwargs):
            if only(*args, **kwargs):
                target = args[0] if args and isinstance(args[0], str | os.PathLike) else ""
                log.append(f"{name}({Path(target).name})")
                if len(log) == k:
                    raise _Killed(log[-1])
            return original(*args, **kwargs)

        return wrapper

    def write_mode(file, mode="r", *args, **kwargs) -> bool:
        return _writes(mode)

    with monkeypatch.context() as patch:
        for name in ("replace", "rename", "unlink", "remove", "mkdir", "chmod"):
            patch.setattr(os, name, counted(f"os.{name}", getattr(os, name)))
        patch.setattr(shutil, "rmtree", counted("rmtree", shutil.rmtree))
        patch.setattr(builtins, "open", counted("open", builtins.open, write_mode))
        patch.setattr(io, "open", counted("io.open", io.open, write_mode))
        patch.setattr(safetensors.torch, "save_file", counted("save_file", safetensors.torch.save_file))
        patch.setattr(torch, "save", counted("torch.save", torch.save))
        yield log


def _every_kill(monkeypatch, prepare: Callable[[], Path], save: Callable[[Path], None], classify) -> list[str]:
    """Runs ``save`` killed at k = 1, 2, ... until it finishes; returns each outcome of ``classify``."""
    outcomes = []
    for k in range(1, 500):
        directory = prepare()
        with _kill_at(monkeypatch, k) as log:
            try:
                save(directory)
            except _Killed:
                pass
            else:
                assert classify(directory) == "new", "an uninterrupted save must load as the new state"
                assert not list(directory.glob(".jat-save-*")), "a successful save leaves no staging folder"
                assert len(outcomes) == len(log), f"expected one kill per file operation: {log}"
                return outcomes
        outcomes.append(classify(directory))
        # The next save after the crash completes and removes what the killed one left.
        save(directory)
        assert classify(directory) == "new"
        assert not list(directory.glob(".jat-save-*")), "the next save cleans the killed save's staging folder"
    raise AssertionError("the save never finished")


def _random_model(seed: int) -> JatModel:
    torch.manual_seed(seed)
    return JatModel(tiny_config(vocab_size=512)).eval()


def _same_weights(a: JatModel, b: JatModel) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# --------------------------------------------------------------------------------------------- JatPolicy.save
@pytest.fixture(scope="module")
def old_and_new(tmp_path_factory):
    old_model, new_model = _random_model(0), _random_model(1)
    processor = JatProcessor.from_config(old_model.config)
    old = JatPolicy(old_model, *OLD_SPACES, processor=processor, context_window=4)
    new = JatPolicy(new_model, *NEW_SPACES, processor=processor, context_window=8)
    old_dir = tmp_path_factory.mktemp("old") / "checkpoint"
    old.save(old_dir)
    return old, new, old_dir


def _copies_of(source: Path, tmp_path: Path):
    """``prepare()`` for :func:`_every_kill`: each call copies ``source`` into a fresh run folder and returns it."""
    runs = iter(range(1000))

    def prepare() -> Path:
        target = tmp_path / f"run-{next(runs)}"
        shutil.copytree(source, target)
        return target

    return prepare


def _loaded_as(directory: Path, load: Callable[[Path], Any], candidates: dict[str, Any], matches) -> str:
    """The name of the candidate ``load(directory)`` gives as a whole, or 'refused' when it is refused clearly.

    ``matches(loaded, candidate, name)`` says whether ``loaded`` is that candidate, asserting that all the rest of
    it is too (a mix of old and new files fails the test).
    """
    try:
        loaded = load(directory)
    except ValueError as err:
        assert REFUSED in str(err), err
        return "refused"
    for name, candidate in candidates.items():
        if matches(loaded, candidate, name):
            return name
    raise AssertionError("the directory loads as neither the old save nor the new one")


def _same_policy(loaded: JatPolicy, policy: JatPolicy, name: str) -> bool:
    if not _same_weights(loaded.model, policy.model):
        return False
    spaces = (loaded.observation_space, loaded.action_space) == (policy.observation_space, policy.action_space)
    assert spaces and loaded.context_window == policy.context_window, f"{name} weights, other spaces"
    assert (loaded.processor is None) == (policy.processor is None), f"{name} weights, other processor"
    return True


def _policy_state(directory: Path, old: JatPolicy, new: JatPolicy) -> str:
    """'old' / 'new' when the directory loads as one of them as a whole, 'refused' when refused clearly."""
    return _loaded_as(directory, JatPolicy.load, {"old": old, "new": new}, _same_policy)


def test_policy_save_killed_at_every_file_operation(monkeypatch, tmp_path, old_and_new):
    old, new, old_dir = old_and_new
    prepare = _copies_of(old_dir, tmp_path)

    outcomes = _every_kill(monkeypatch, prepare, new.save, lambda d: _policy_state(d, old, new))
    assert len(outcomes) >= 8, outcomes
    # old while staging, refused while the files move in, new once they all have (a kill while cleaning up)
    assert set(outcomes) == {"old", "refused", "new"}, outcomes


def test_policy_save_over_a_checkpoint_of_an_earlier_release(monkeypatch, tmp_path):
    # checkpoint-0.1.0 has no file list in its weights: a kill part way must still never load as a mix.
    old = JatPolicy.load(FIXTURES / "checkpoint-0.1.0")
    new = JatPolicy(_random_model(2), *NEW_SPACES, context_window=6)
    prepare = _copies_of(FIXTURES / "checkpoint-0.1.0", tmp_path)

    outcomes = _every_kill(monkeypatch, prepare, new.save, lambda d: _policy_state(d, old, new))
    assert "old" in outcomes and "refused" in outcomes


def test_mixed_files_are_refused_and_named(tmp_path, old_and_new):
    old, new, old_dir = old_and_new
    new.save(tmp_path)
    shutil.copy(old_dir / "policy.json", tmp_path / "policy.json")  # e.g. copied in by hand
    with pytest.raises(ValueError, match=r"incomplete checkpoint: policy.json is not the one saved with"):
        JatPolicy.load(tmp_path)
    (tmp_path / "policy.json").unlink()
    with pytest.raises(ValueError, match=r"incomplete checkpoint: policy.json is missing"):
        JatPolicy.load(tmp_path)


def test_stale_staging_folders_are_removed_by_the_next_save(tmp_path, old_and_new):
    old, _, _ = old_and_new
    (tmp_path / ".jat-save-abc123").mkdir(parents=True)
    (tmp_path / ".jat-save-abc123" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("kept")
    old.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "notes.txt",
        "policy.json",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


# ------------------------------------------------------------------------------------ JatModel.save_pretrained
def test_model_save_pretrained_killed_at_every_file_operation(monkeypatch, tmp_path):
    old_model = _random_model(3)
    new_model = JatModel(tiny_config(vocab_size=512, hidden_size=64, num_heads=2)).eval()  # another config.json too
    old_dir = tmp_path / "old"
    old_model.save_pretrained(old_dir)
    prepare = _copies_of(old_dir, tmp_path)

    def same_model(loaded: JatModel, model: JatModel, name: str) -> bool:
        if loaded.config.hidden_size != model.config.hidden_size:
            return False
        assert _same_weights(loaded, model), f"{name} config.json with other weights"
        return True

    def state(directory: Path) -> str:
        return _loaded_as(directory, JatModel.from_pretrained, {"old": old_model, "new": new_model}, same_model)

    outcomes = _every_kill(monkeypatch, prepare, new_model.save_pretrained, state)
    assert "old" in outcomes and "refused" in outcomes


# ----------------------------------------------------------------------------------- the trainer's checkpoint-N
def test_trainer_checkpoint_killed_at_every_file_operation(monkeypatch, tmp_path):
    from transformers import TrainingArguments

    from jat_policy.trainers.bc import _trainer_class, find_last_checkpoint

    model = _random_model(4)
    args = TrainingArguments(output_dir=str(tmp_path / "template"), report_to=[], save_total_limit=None)
    trainer = _trainer_class()(model=model, args=args, processing_class=JatProcessor.from_config(model.config))
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    trainer.state.global_step = 2
    trainer._save_checkpoint(trainer.model, trial=None)  # the old checkpoint-2, then new weights over it
    template = tmp_path / "template"
    old_weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    runs = iter(range(1000))

    def prepare() -> Path:
        run = tmp_path / f"run-{next(runs)}"
        shutil.copytree(template, run)
        trainer.args.output_dir = str(run)
        return run

    def save(run: Path) -> None:
        trainer.args.output_dir = str(run)
        trainer._save_checkpoint(trainer.model, trial=None)

    def state(run: Path) -> str:
        last = find_last_checkpoint(run)
        if last is None:
            try:  # skipped for resume; a direct load sees old, new or a clear refusal
                check_checkpoint_files(run / "checkpoint-2")
            except ValueError as err:
                assert REFUSED in str(err), err
            return "skipped"
        loaded = JatModel.from_pretrained(last).state_dict()
        if all(torch.equal(loaded[k], old_weights[k]) for k in loaded):
            return "old"
        assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items()), "a mix of weights"
        return "new"

    outcomes = _every_kill(monkeypatch, prepare, save, state)
    assert "skipped" in outcomes and set(outcomes) <= {"old", "skipped"}
    assert json.loads((tmp_path / "template" / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2


def test_processor_files_of_an_older_save_are_not_picked_up(tmp_path, old_and_new):
    old, _, _ = old_and_new
    old.save(tmp_path)  # with a processor
    JatPolicy(old.model, *OLD_SPACES, context_window=4).save(tmp_path)  # without: the tokenizer files stay
    assert (tmp_path / "tokenizer.json").is_file()
    assert JatPolicy.load(tmp_path).processor is None
