"""What load_jat_dataset catches: another task's data, out-of-space actions, broken images, changed or bad files."""

from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from PIL import Image

from jat_policy.data import (
    ATARI_FEATURES,
    METADATA_FILE,
    METAWORLD_FEATURES,
    DatasetValidationError,
    encode_frame,
    load_jat_dataset,
    save_dataset,
    validate_dataset,
)

RNG = np.random.default_rng(0)


def _metaworld(n: int = 4, steps: int = 30) -> Dataset:
    rows = [
        {
            "continuous_observations": RNG.normal(size=(steps, 39)).astype(np.float32).tolist(),
            "continuous_actions": RNG.uniform(-1, 1, (steps, 4)).astype(np.float32).tolist(),
            "rewards": RNG.normal(size=steps).astype(np.float32).tolist(),
        }
        for _ in range(n)
    ]
    return Dataset.from_list(rows, features=METAWORLD_FEATURES)


def _atari_row(steps: int = 3, actions: list[int] | None = None) -> dict:
    frames = RNG.integers(0, 256, (steps, 84, 84, 4), dtype=np.uint8)
    return {
        "image_observations": [encode_frame(f) for f in frames],
        "discrete_actions": actions if actions is not None else [0] * steps,
        "rewards": [0.0] * steps,
    }


def _arrow_file(root: Path) -> Path:
    return next((root / "metaworld-reach" / "train").glob("*.arrow"))


# ----------------------------------------------------------------------------------------------- defect 7: task
def test_a_task_name_is_checked_against_the_metadata(tmp_path):
    save_dataset(_metaworld(), tmp_path, "metaworld-reach", {"task": "metaworld-reach"})
    folder = tmp_path / "metaworld-reach"
    with pytest.raises(ValueError, match="holds data of task 'metaworld-reach'.*not 'babyai-go-to-red-ball'") as info:
        load_jat_dataset("babyai-go-to-red-ball", path=folder)
    assert str(folder) in str(info.value)
    assert len(load_jat_dataset("metaworld-reach", path=folder)) == 4


def test_train_refuses_another_tasks_data(tmp_path):
    from jat_policy.trainers.bc import TrainOptions, train

    save_dataset(_metaworld(), tmp_path, "metaworld-reach", {"task": "metaworld-reach"})
    options = TrainOptions(
        tasks=["metaworld-push"], data=str(tmp_path / "metaworld-reach"), model="jat-tiny",
        output_dir=str(tmp_path / "run"), max_steps=1, report_to="none", bf16="no",
    )  # fmt: skip
    with pytest.raises(ValueError, match="holds data of task 'metaworld-reach'"):
        train(options)


# ----------------------------------------------------------------------------------------------- defect 8: values
def test_actions_outside_the_action_space_are_rejected():
    ds = _metaworld(2)
    rows = ds.to_list()
    rows[1]["continuous_actions"][7][2] = 5.0  # Meta-World acts in Box(-1, 1)
    bad = Dataset.from_list(rows, features=METAWORLD_FEATURES)
    with pytest.raises(DatasetValidationError, match="episode 1, column 'continuous_actions', step 7: action value 5"):
        validate_dataset(bad, task="metaworld-reach")
    pong = Dataset.from_list([_atari_row(3, [0, 5, 6])], features=ATARI_FEATURES)  # Pong has 6 actions
    with pytest.raises(DatasetValidationError, match="column 'discrete_actions', step 2: value 6 outside \\[0, 6\\)"):
        validate_dataset(pong, task="atari-pong")


def test_collected_schema_stores_the_action_bounds(tmp_path):
    import gymnasium as gym

    from jat_policy.data import collect, load_metadata

    collect(lambda: gym.make("Pendulum-v1"), "random", 2, out=tmp_path, task="pend", max_steps=5, progress=False)
    metadata = load_metadata(tmp_path, "pend")
    assert metadata["schema"]["action_low"] == [-2.0] and metadata["schema"]["action_high"] == [2.0]
    assert set(metadata["checksums"]["files"]) >= {"dataset_dict.json", "train/state.json"}


def test_a_truncated_png_is_caught_on_load(tmp_path):
    row = _atari_row(4)
    blob = row["image_observations"][2]["bytes"]
    row["image_observations"][2] = {"bytes": blob[: len(blob) // 2], "path": None}  # header intact, body cut
    save_dataset(Dataset.from_list([_atari_row(), row], features=ATARI_FEATURES), tmp_path, "atari-pong")
    with pytest.raises(DatasetValidationError, match="episode 1, column 'image_observations', step 2: .*decode"):
        load_jat_dataset("atari-pong", path=tmp_path)


def test_decoded_images_are_still_accepted_when_streaming(tmp_path):
    save_dataset(Dataset.from_list([_atari_row()], features=ATARI_FEATURES), tmp_path, "atari-pong")
    assert len(list(load_jat_dataset("atari-pong", path=tmp_path, streaming=True))) == 1
    image = Image.open(io.BytesIO(_atari_row(1)["image_observations"][0]["bytes"]))
    assert image.mode == "RGBA"


# ----------------------------------------------------------------------------------------------- defect 8: files
@pytest.mark.parametrize("damage", ["zero-4k", "bit-flip"])
def test_changed_files_fail_their_checksum(tmp_path, damage):
    save_dataset(DatasetDict({"train": _metaworld(), "test": _metaworld(1)}), tmp_path, "metaworld-reach")
    arrow = _arrow_file(tmp_path)
    data = bytearray(arrow.read_bytes())
    middle = len(data) // 2
    if damage == "zero-4k":
        size = min(4096, len(data) // 4)
        data[middle : middle + size] = bytes(size)
    else:
        data[middle] ^= 0x10
    arrow.write_bytes(bytes(data))
    with pytest.raises(DatasetValidationError, match=f"{arrow}.*changed since it was written"):
        load_jat_dataset("metaworld-reach", path=tmp_path)
    assert len(load_jat_dataset("metaworld-reach", split="test", path=tmp_path)) == 1  # only the split read is hashed


def test_datasets_without_checksums_still_load(tmp_path):
    save_dataset(_metaworld(), tmp_path, "metaworld-reach", {"task": "metaworld-reach"})
    meta_path = tmp_path / "metaworld-reach" / METADATA_FILE
    metadata = json.loads(meta_path.read_text())
    del metadata["checksums"]  # as written by jat-policy 0.1
    meta_path.write_text(json.dumps(metadata))
    assert len(load_jat_dataset("metaworld-reach", path=tmp_path)) == 4
    arrow = _arrow_file(tmp_path)
    arrow.write_bytes(arrow.read_bytes()[:100])  # no checksum to fail: the read error still names the file
    with pytest.raises(DatasetValidationError, match=str(tmp_path / "metaworld-reach" / "train")):
        load_jat_dataset("metaworld-reach", path=tmp_path)


def test_checksums_can_be_skipped(tmp_path):
    save_dataset(_metaworld(), tmp_path, "metaworld-reach")
    info = tmp_path / "metaworld-reach" / "train" / "dataset_info.json"
    info.write_text(info.read_text() + " ")  # harmless change: the checksum still notices
    with pytest.raises(DatasetValidationError, match="dataset_info.json changed"):
        load_jat_dataset("metaworld-reach", path=tmp_path)
    assert len(load_jat_dataset("metaworld-reach", path=tmp_path, verify_checksums=False)) == 4


CORRUPTIONS = {
    "truncated-arrow": lambda root: _truncate(next((root / "train").glob("*.arrow")), 200),
    "garbage-arrow": lambda root: next((root / "train").glob("*.arrow")).write_bytes(b"\x00garbage" * 50),
    "empty-arrow": lambda root: next((root / "train").glob("*.arrow")).write_bytes(b""),
    "missing-arrow": lambda root: next((root / "train").glob("*.arrow")).unlink(),
    "garbage-state": lambda root: (root / "train" / "state.json").write_text("{broken"),
    "garbage-info": lambda root: (root / "train" / "dataset_info.json").write_text("[1, 2"),
    "garbage-dict": lambda root: (root / "dataset_dict.json").write_text('{"splits": 3}'),
    "wrong-state": lambda root: (root / "train" / "state.json").write_text('{"_data_files": [{}]}'),
}


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("checksums", [True, False])
def test_corrupt_files_raise_errors_that_name_the_path(tmp_path, corruption, checksums):
    save_dataset(_metaworld(), tmp_path, "metaworld-reach")
    root = tmp_path / "metaworld-reach"
    if not checksums:
        meta = json.loads((root / METADATA_FILE).read_text())
        (root / METADATA_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "checksums"}))
    CORRUPTIONS[corruption](root)
    with pytest.raises(DatasetValidationError) as info:
        load_jat_dataset("metaworld-reach", path=tmp_path)
    assert str(root) in str(info.value)


@pytest.mark.parametrize("checksums", [True, False])
def test_corrupt_parquet_names_the_file(tmp_path, checksums):
    save_dataset(_metaworld(), tmp_path, "metaworld-reach", format="parquet")
    root = tmp_path / "metaworld-reach"
    if not checksums:
        (root / METADATA_FILE).write_text("{}")
    parquet = next(root.glob("train-*.parquet"))
    _truncate(parquet, parquet.stat().st_size // 2)
    with pytest.raises(DatasetValidationError, match=str(parquet)):
        load_jat_dataset("metaworld-reach", path=tmp_path, cache_dir=str(tmp_path / "cache"))


# ----------------------------------------------------------------------------------------------- defect 10: staging
_SLOW_COLLECT = """
import sys, time
import gymnasium as gym
from jat_policy.data import collect

def slow(obs):
    time.sleep(0.05)
    return 0

collect(lambda: gym.make("CartPole-v1"), slow, 1000, out=sys.argv[1], task="cartpole", progress=False)
"""


def _staging(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name.startswith(".")] if out.is_dir() else []


def test_a_killed_collection_leaves_staging_that_the_next_run_removes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import gymnasium as gym

    from jat_policy.data import collect

    out = tmp_path / "data"
    script = tmp_path / "slow_collect.py"
    script.write_text(_SLOW_COLLECT)
    process = subprocess.Popen([sys.executable, str(script), str(out)])
    try:
        deadline = time.monotonic() + 120
        while not _staging(out) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert _staging(out), "the collector never started staging"
    alive = out / ".other.tmp-0123abcd"  # a live collection's staging (this process): kept
    alive.mkdir()
    (alive / "owner.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    collect(lambda: gym.make("CartPole-v1"), "random", 2, out=out, task="cartpole", max_steps=5, progress=False)
    assert _staging(out) == [alive]
    assert len(load_jat_dataset("cartpole", path=out)) >= 1


def test_a_truncated_png_is_caught_when_streaming(tmp_path):
    row = _atari_row(3)
    blob = row["image_observations"][1]["bytes"]
    row["image_observations"][1] = {"bytes": blob[: len(blob) // 2], "path": None}
    save_dataset(Dataset.from_list([row], features=ATARI_FEATURES), tmp_path, "atari-pong")
    with pytest.raises(DatasetValidationError, match="episode 0, column 'image_observations', step 1: .*decode"):
        list(load_jat_dataset("atari-pong", path=tmp_path, streaming=True))


@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2]", "holds a JSON list, not an object"),
        (json.dumps({"schema": {"observation_columns": ["pixels"]}}), "unreadable 'schema' entry"),
        (json.dumps({"checksums": {"algorithm": "md5", "files": {}}}), "unreadable 'checksums' entry"),
        ("\xff\xfe garbage", "not valid JSON"),
    ],
)
def test_broken_metadata_names_its_file(tmp_path, content, match):
    save_dataset(_metaworld(), tmp_path, "metaworld-reach")
    path = tmp_path / "metaworld-reach" / METADATA_FILE
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        load_jat_dataset("metaworld-reach", path=tmp_path)
    assert str(path) in str(info.value)
