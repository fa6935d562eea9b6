"""What a checkpoint was trained on: ``training_data.json``, written by the trainer, read by evaluation.

A score normalised by another dataset's expert is a different number: the quickstart's Meta-World reach scored 0.99
against the expert it was trained on and 1.29 against the registry's (Meta-World v2) expert. So the trainer
records, beside the weights, each task's dataset (where it came from, its env id and package versions) and the
reference scores stored with it (``jat_metadata.json``'s ``scores``), and ``jat-policy evaluate`` normalises with
them by default.

File format (``"format": "jat-policy-training-data/1"``)::

    {"format": ..., "datasets": {task: {"source": "local" | "hub", "path" | "repo", "env_id", "packages",
                                        "expert", "episodes", "scores": {"expert": {...}, "random": {...},
                                        "success_rate": ...} | None}}}

Standard library only (plus the data loaders when *describing* local datasets).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jat_policy.checkpoint import read_json_object
from jat_policy.score_reference import ScoreReference

__all__ = ["TRAINING_DATA_NAME", "describe_training_data", "read_training_references", "write_training_data"]

TRAINING_DATA_NAME = "training_data.json"
_FORMAT = "jat-policy-training-data/1"


def _describe_local(task: str, data: str | os.PathLike) -> dict[str, Any]:
    from jat_policy.data.loading import find_local_dataset
    from jat_policy.data.storage import read_metadata

    directory = find_local_dataset(task, data).directory
    metadata = read_metadata(directory) or {}
    env = metadata.get("env") or {}
    splits = metadata.get("splits") or {}
    return {
        "source": "local",
        "path": str(Path(directory).resolve()),
        "env_id": env.get("id"),
        "packages": env.get("packages"),
        "expert": (metadata.get("expert") or {}).get("name"),
        "episodes": {name: split.get("episodes") for name, split in splits.items()},
        "scores": metadata.get("scores"),  # None for data not written by jat-policy collect
    }


def describe_training_data(tasks: Sequence[str], data: str | os.PathLike | None) -> dict[str, Any]:
    """The ``training_data.json`` record of a run on ``tasks`` with local data under ``data`` (None: the Hub).

    Args:
        tasks: Resolved task names.
        data: The trainer's ``--data`` folder, or None for ``jat-project/jat-dataset`` on the Hub.

    Returns:
        The record to write with :func:`write_training_data`.
    """
    from jat_policy.data.loading import HUB_REPO_ID

    datasets: dict[str, Any] = {}
    for task in tasks:
        if data is None:
            # the registry's reference scores are the Hub dataset's own (JAT's scores_dict.json)
            datasets[task] = {"source": "hub", "repo": HUB_REPO_ID, "config": task, "scores": None}
        else:
            datasets[task] = _describe_local(task, data)
    return {"format": _FORMAT, "datasets": datasets}


def write_training_data(directory: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Writes the record as ``<directory>/training_data.json`` and returns its path."""
    path = Path(directory) / TRAINING_DATA_NAME
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _reference(entry: dict[str, Any]) -> ScoreReference | None:
    scores = entry.get("scores") or {}
    expert, random = scores.get("expert") or {}, scores.get("random") or {}
    if expert.get("mean") is None or random.get("mean") is None:
        return None
    return ScoreReference(
        float(random["mean"]), float(expert["mean"]), None, "dataset", env_id=entry.get("env_id"), origin=entry["path"]
    )


def read_training_references(model_dir: str | os.PathLike) -> dict[str, ScoreReference]:
    """``{task: reference}`` of the datasets a checkpoint was trained on (empty without ``training_data.json``).

    Tasks trained on Hub data, or on data without stored random/expert scores, are left out: the registry's
    scores apply to them.

    Args:
        model_dir: A checkpoint directory.

    Returns:
        The reference scores per task, ``source="dataset"``, ``origin`` the dataset's directory.

    Raises:
        ValueError: If the file exists but is not a training-data record.
    """
    path = Path(model_dir) / TRAINING_DATA_NAME
    if not path.is_file():
        return {}
    record = read_json_object(path, "the checkpoint is corrupt", "; it was not written by jat_policy's trainer")
    if record.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a {_FORMAT!r} record; it was not written by jat_policy's trainer.")
    found = {task: _reference(entry) for task, entry in (record.get("datasets") or {}).items()}
    return {task: ref for task, ref in found.items() if ref is not None}
