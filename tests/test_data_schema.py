"""Schema, validation, images, storage and load_jat_dataset on synthetic episodes (no environments)."""

from __future__ import annotations

import io
import json
import os

import datasets
import numpy as np
import pytest
from datasets import Dataset, DatasetDict, Features, List, Value

from jat_policy.data import (
    ATARI_FEATURES,
    BABYAI_FEATURES,
    METADATA_FILE,
    METAWORLD_FEATURES,
    MUJOCO_FEATURES,
    DatasetValidationError,
    EpisodeSchema,
    encode_frame,
    find_local_dataset,
    frame_to_image,
    get_features,
    image_to_frame,
    load_jat_dataset,
    load_reference_scores,
    save_dataset,
    schema_for_task,
    validate_dataset,
    validate_episode,
)

RNG = np.random.default_rng(0)


def continuous_row(steps: int = 5, obs: int = 39, act: int = 4) -> dict:
    return {
        "continuous_observations": RNG.normal(size=(steps, obs)).astype(np.float32),
        "continuous_actions": RNG.uniform(-1, 1, (steps, act)).astype(np.float32),
        "rewards": RNG.normal(size=steps).astype(np.float32),
    }


def babyai_row(steps: int = 4) -> dict:
    return {
        "text_observations": ["go to the red ball"] * steps,
        "discrete_observations": RNG.integers(0, 11, (steps, 148)),
        "discrete_actions": RNG.integers(0, 7, steps),
        "rewards": np.zeros(steps, np.float32),
    }


def atari_row(steps: int = 3) -> dict:
    frames = RNG.integers(0, 256, (steps, 84, 84, 4), dtype=np.uint8)
    return {
        "image_observations": [encode_frame(f) for f in frames],
        "discrete_actions": RNG.integers(0, 6, steps),
        "rewards": np.zeros(steps, np.float32),
    }


def as_lists(row: dict) -> dict:
    return {k: [np.asarray(v).tolist() if not isinstance(v, dict) else v for v in vs] for k, vs in row.items()}


@pytest.fixture(scope="module")
def metaworld_ds() -> Dataset:
    return Dataset.from_list([continuous_row() for _ in range(6)], features=METAWORLD_FEATURES)


@pytest.fixture(scope="module")
def atari_ds() -> Dataset:
    return Dataset.from_list([atari_row() for _ in range(2)], features=ATARI_FEATURES)


# ---------------------------------------------------------------------------------------------------- schema


def test_domain_features_are_the_hubs():
    assert set(ATARI_FEATURES) == {"image_observations", "discrete_actions", "rewards"}
    assert isinstance(ATARI_FEATURES["image_observations"].feature, datasets.Image)
    assert list(BABYAI_FEATURES) == ["text_observations", "discrete_observations", "discrete_actions", "rewards"]
    assert BABYAI_FEATURES["discrete_observations"] == List(List(Value("int64")))
    assert METAWORLD_FEATURES == MUJOCO_FEATURES
    assert METAWORLD_FEATURES["continuous_observations"] == List(List(Value("float32")))
    assert get_features("metaworld-reach") == METAWORLD_FEATURES
    assert get_features("atari") == ATARI_FEATURES
    with pytest.raises(ValueError, match="No fixed schema"):
        get_features("CartPole-v1")


def test_schema_sizes_per_task():
    assert schema_for_task("metaworld-door-open").observation_size == 39
    assert schema_for_task("babyai-go-to").observation_size == 148
    assert (schema_for_task("mujoco-ant").observation_size, schema_for_task("mujoco-ant").action_size) == (27, 8)
    assert schema_for_task("CartPole-v1") is None
    schema = EpisodeSchema(("continuous_observations",), "discrete_actions", 4, num_actions=2)
    assert EpisodeSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
    with pytest.raises(ValueError, match="observation_columns"):
        EpisodeSchema(("observations",), "discrete_actions")


# ---------------------------------------------------------------------------------------------------- images


def test_frame_image_round_trip_keeps_channel_order_and_uint8():
    frame = RNG.integers(0, 256, (84, 84, 4), dtype=np.uint8)
    image = frame_to_image(frame)
    assert image.mode == "RGBA" and image.size == (84, 84)
    assert np.array_equal(np.asarray(image)[..., 0], frame[..., 0])  # oldest frame in R
    assert np.array_equal(image_to_frame(encode_frame(frame)), frame)
    with pytest.raises(ValueError, match="channel-first"):
        frame_to_image(frame.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="expected \\(84, 84, 4\\)"):
        frame_to_image(frame[:, :, :3])


def test_images_stay_uint8_in_numpy_format(atari_ds):
    frames = atari_ds.with_format("numpy")[0]["image_observations"]
    assert frames.dtype == np.uint8 and frames.shape == (3, 84, 84, 4)


# ---------------------------------------------------------------------------------------------------- validation


def test_valid_datasets_pass(metaworld_ds, atari_ds):
    assert validate_dataset(metaworld_ds, task="metaworld-reach") is metaworld_ds
    validate_dataset(atari_ds, task="atari-pong")
    validate_dataset(Dataset.from_list([babyai_row(), babyai_row(7)], features=BABYAI_FEATURES), task="babyai-go-to")
    # unknown task: schema inferred from the columns, sizes checked for agreement
    validate_dataset(Dataset.from_list([continuous_row(3, 4, 1)] * 2, features=MUJOCO_FEATURES), task="my-env")


def _bad(rows: list[dict], features: Features, task: str, **match: object) -> DatasetValidationError:
    with pytest.raises(DatasetValidationError) as info:
        validate_dataset(Dataset.from_list(rows, features=features), task=task)
    for key, value in match.items():
        assert getattr(info.value, key) == value, (key, str(info.value))
    return info.value


def test_length_mismatch_names_episode_and_column():
    rows = [continuous_row() for _ in range(3)]
    rows[2]["continuous_actions"] = rows[2]["continuous_actions"][:4]
    error = _bad(rows, METAWORLD_FEATURES, "metaworld-reach", episode=2, column="continuous_actions")
    assert "4 steps but 'rewards' has 5" in str(error) and "metaworld-reach" in str(error)


def test_observation_size_mismatch_names_step():
    rows = [as_lists(continuous_row()) for _ in range(3)]
    rows[1]["continuous_observations"][3] = [0.0] * 38
    error = _bad(rows, METAWORLD_FEATURES, "metaworld-reach", episode=1, column="continuous_observations", step=3)
    assert "38 values per step, expected 39" in str(error)
    # a whole dataset of the wrong size: e.g. MuJoCo v5 Ant data checked against the Hub's v4 size
    _bad([continuous_row(2, 105, 8)], MUJOCO_FEATURES, "mujoco-ant", episode=0, step=0)


def test_non_finite_and_out_of_range_values():
    rows = [continuous_row() for _ in range(2)]
    rows[1]["rewards"][2] = np.nan
    _bad(rows, METAWORLD_FEATURES, "metaworld-reach", episode=1, column="rewards", step=2)
    rows = [babyai_row(), babyai_row()]
    rows[0]["discrete_actions"][1] = 9
    assert "outside [0, 7)" in str(_bad(rows, BABYAI_FEATURES, "babyai-go-to", episode=0, step=1))


def test_empty_episode_and_wrong_domain():
    _bad([continuous_row(), continuous_row(0)], METAWORLD_FEATURES, "metaworld-reach", episode=1)
    error = _bad([continuous_row()], METAWORLD_FEATURES, "babyai-go-to")
    assert "missing column(s)" in str(error) and "metaworld/mujoco" in str(error)


def test_images_as_int_arrays_are_rejected():
    frames = RNG.integers(0, 256, (2, 84, 84, 4)).tolist()
    ds = Dataset.from_list([{"image_observations": frames, "discrete_actions": [0, 1], "rewards": [0.0, 0.0]}])
    with pytest.raises(DatasetValidationError, match="never as integer") as info:
        validate_dataset(ds, task="atari-pong")
    assert info.value.column == "image_observations"


def test_wrong_image_mode_or_size_names_step():
    from PIL import Image

    row = atari_row()
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8)).save(buffer, format="PNG")
    row["image_observations"][1] = {"bytes": buffer.getvalue(), "path": None}
    error = _bad([atari_row(), row], ATARI_FEATURES, "atari-pong", episode=1, column="image_observations", step=1)
    assert "84x84 RGB, expected 84x84 RGBA" in str(error)
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(buffer, format="PNG")
    row["image_observations"][1] = {"bytes": buffer.getvalue(), "path": None}
    _bad([row], ATARI_FEATURES, "atari-pong", episode=0, step=1)
    row["image_observations"][1] = {"bytes": b"not an image", "path": None}
    assert "unreadable image" in str(_bad([row], ATARI_FEATURES, "atari-pong", episode=0, step=1))


def test_wrong_feature_type():
    ds = Dataset.from_dict({"continuous_observations": [[["a"]]], "continuous_actions": [[[0.0]]], "rewards": [[0.0]]})
    with pytest.raises(DatasetValidationError, match="expected List\\(List\\(Value\\('float32'\\)\\)\\)"):
        validate_dataset(ds, task="metaworld-reach")


def test_datasetdict_needs_a_split(metaworld_ds):
    dd = DatasetDict({"train": metaworld_ds, "test": metaworld_ds})
    assert len(validate_dataset(dd, task="metaworld-reach", split="test")) == 6
    with pytest.raises(DatasetValidationError, match="DatasetDict with splits \\['test', 'train'\\]"):
        validate_dataset(dd, task="metaworld-reach")


def test_validate_episode_decoded_rows(atari_ds):
    schema = schema_for_task("atari-pong")
    validate_episode(atari_ds[0], schema, index=0)  # decoded PIL images
    row = atari_ds[0]
    row["image_observations"][2] = np.zeros((84, 84, 4), np.uint8)
    with pytest.raises(DatasetValidationError, match="never as integer"):
        validate_episode(row, schema, index=3)


# ------------------------------------------------------------------------------------------------ storage + loading


def test_disk_and_parquet_load_the_same(tmp_path, atari_ds):
    dd = DatasetDict({"train": atari_ds, "test": atari_ds.select([1])})
    save_dataset(dd, tmp_path / "disk", "atari-pong", {"task": "atari-pong"})
    save_dataset(dd, tmp_path / "parquet", "atari-pong", format="parquet")
    assert sorted(os.listdir(tmp_path / "parquet" / "atari-pong")) == [
        METADATA_FILE,
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    a = load_jat_dataset("atari-pong", path=tmp_path / "disk")
    b = load_jat_dataset("atari-pong", path=tmp_path / "parquet", cache_dir=str(tmp_path / "cache"))
    assert a.features == b.features == ATARI_FEATURES
    for x, y in zip(a[0]["image_observations"], b[0]["image_observations"], strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert a[1]["discrete_actions"] == b[1]["discrete_actions"]
    # the task folder itself also works; so does a single parquet file
    assert len(load_jat_dataset("atari-pong", split="test", path=tmp_path / "disk" / "atari-pong")) == 1
    parquet = tmp_path / "parquet" / "atari-pong" / "test-00000-of-00001.parquet"
    assert len(load_jat_dataset("atari-pong", path=parquet, cache_dir=str(tmp_path / "cache"))) == 1
    assert not [p for p in os.listdir(tmp_path / "disk") if p.startswith(".")]  # no staging left


def test_split_errors_say_what_was_found(tmp_path, metaworld_ds):
    save_dataset(DatasetDict({"train": metaworld_ds}), tmp_path, "metaworld-reach")
    with pytest.raises(ValueError, match="holds a DatasetDict with splits \\['train'\\]; asked for split='test'"):
        load_jat_dataset("metaworld-reach", split="test", path=tmp_path)
    single = tmp_path / "single"
    metaworld_ds.save_to_disk(str(single))
    assert len(load_jat_dataset("metaworld-reach", path=single)) == 6
    with pytest.raises(ValueError, match="got a DatasetDict with splits"):
        load_jat_dataset("metaworld-reach", split="valid", path=DatasetDict({"train": metaworld_ds}))
    assert len(load_jat_dataset("metaworld-reach", split=None, path=metaworld_ds)) == 6


def test_missing_dataset_lists_what_exists(tmp_path, metaworld_ds):
    save_dataset(metaworld_ds, tmp_path, "metaworld-reach")
    with pytest.raises(FileNotFoundError, match="It holds datasets for: \\['metaworld-reach'\\]"):
        load_jat_dataset("metaworld-door-open", path=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_jat_dataset("metaworld-door-open", path=tmp_path / "nope")


def test_atomic_save_and_overwrite(tmp_path, metaworld_ds):
    save_dataset(metaworld_ds, tmp_path, "metaworld-reach")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_dataset(metaworld_ds, tmp_path, "metaworld-reach")
    save_dataset(metaworld_ds.select([0]), tmp_path, "metaworld-reach", overwrite=True)
    assert len(load_jat_dataset("metaworld-reach", path=tmp_path)) == 1
    assert os.listdir(tmp_path) == ["metaworld-reach"]


def test_corrupt_data_on_disk_is_named(tmp_path):
    rows = [as_lists(continuous_row()) for _ in range(4)]
    rows[3]["continuous_observations"][0] = [0.0] * 40
    save_dataset(Dataset.from_list(rows, features=METAWORLD_FEATURES), tmp_path, "metaworld-reach", format="parquet")
    with pytest.raises(DatasetValidationError, match="episode 3, column 'continuous_observations', step 0"):
        load_jat_dataset("metaworld-reach", path=tmp_path, cache_dir=str(tmp_path / "cache"))
    assert len(load_jat_dataset("metaworld-reach", path=tmp_path, validate=2, cache_dir=str(tmp_path / "c"))) == 4
    streamed = load_jat_dataset("metaworld-reach", path=tmp_path, streaming=True)
    with pytest.raises(DatasetValidationError, match="episode 3"):
        list(streamed)
    (tmp_path / "metaworld-reach" / METADATA_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_jat_dataset("metaworld-reach", path=tmp_path)


def test_metadata_schema_overrides_hub_sizes(tmp_path):
    # MuJoCo v5 Ant (105 obs) collected locally: the metadata's schema wins over the Hub's v4 size (27)
    ds = Dataset.from_list([continuous_row(3, 105, 8)], features=MUJOCO_FEATURES)
    schema = EpisodeSchema(("continuous_observations",), "continuous_actions", 105, 8, source="collected")
    save_dataset(ds, tmp_path, "mujoco-ant", {"schema": schema.to_dict()})
    assert len(load_jat_dataset("mujoco-ant", path=tmp_path)) == 1
    assert find_local_dataset("mujoco-ant", tmp_path).format == "disk"
    with pytest.raises(ValueError, match="no expert score"):
        load_reference_scores(tmp_path, "mujoco-ant")


def test_hub_offline_fails_fast_without_calling_datasets(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("load_dataset must not be called offline")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="offline mode is on.*path='data/'"):
        load_jat_dataset("metaworld-reach")


def test_hub_unresolvable_fails_fast(monkeypatch):
    import socket

    def no_dns(*args, **kwargs):
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("must not retry for 25 s"))
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConnectionError, match="does not resolve"):
        load_jat_dataset("babyai-go-to")


def test_hub_connection_errors_are_explained(monkeypatch):
    calls = []

    def unreachable(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConnectionError("Couldn't reach 'jat-project/jat-dataset' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.setattr("jat_policy.data.loading._hub_resolvable", lambda: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(ConnectionError, match="Could not load 'jat-project/jat-dataset' config 'atari-pong'"):
        load_jat_dataset("atari-pong", split="test")
    assert calls[0][0] == ("jat-project/jat-dataset", "atari-pong") and calls[0][1]["split"] == "test"
