"""training_data.json: what a checkpoint was trained on, read back as reference scores for evaluation."""

from __future__ import annotations

import json

import pytest

from jat_policy.evaluation import get_reference_scores
from jat_policy.evaluation.rollout import jat_policy_factory
from jat_policy.training_data import TRAINING_DATA_NAME, read_training_references, write_training_data


def _record(path: str) -> dict:
    scores = {"expert": {"mean": 4.0, "std": 1.0, "episodes": 30}, "random": {"mean": 1.0, "episodes": 10}}
    local = {"source": "local", "path": path, "env_id": "reach-v3", "scores": scores}
    hub = {"source": "hub", "repo": "jat-project/jat-dataset", "config": "atari-pong", "scores": None}
    return {"format": "jat-policy-training-data/1", "datasets": {"metaworld-reach": local, "atari-pong": hub}}


def test_round_trip_and_priority(tmp_path):
    write_training_data(tmp_path, _record("/data/metaworld-reach"))
    refs = read_training_references(tmp_path)
    assert list(refs) == ["metaworld-reach"]  # Hub data carries no scores: the registry's apply
    ref = refs["metaworld-reach"]
    assert (ref.random, ref.expert, ref.source, ref.env_id, ref.origin) == (
        1.0, 4.0, "dataset", "reach-v3", "/data/metaworld-reach"
    )  # fmt: skip
    # the checkpoint's scores beat the registry's; explicit ones beat the checkpoint's
    assert get_reference_scores("metaworld-reach", training_scores=refs) is ref
    assert get_reference_scores("metaworld-reach", {"metaworld-reach": (0, 2)}, training_scores=refs).expert == 2
    assert jat_policy_factory(tmp_path).reference_scores == refs


def test_missing_and_foreign_files(tmp_path):
    assert read_training_references(tmp_path) == {}
    (tmp_path / TRAINING_DATA_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a 'jat-policy-training-data/1' record"):
        read_training_references(tmp_path)
    (tmp_path / TRAINING_DATA_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_training_references(tmp_path)
