"""Uploading a collected dataset to the Hub.

Its own module because it needs both halves of local I/O: :mod:`jat_policy.data.loading` opens the dataset and
:mod:`jat_policy.data.storage` its metadata; living in either would make the two import each other.
"""

from __future__ import annotations

import json
import os

from datasets import DatasetDict

from jat_policy.data.loading import find_local_dataset, open_local_dataset
from jat_policy.data.storage import CHECKSUMS_KEY, METADATA_FILE, json_default, read_metadata

__all__ = ["push_to_hub"]


def push_to_hub(path: str | os.PathLike, task: str, repo_id: str, private: bool = False) -> None:
    """Uploads a collected dataset to the Hub as config ``task`` of ``repo_id`` (parquet, like jat-dataset).

    Args:
        path: The ``out`` folder given to the collector (or the task folder itself).
        task: Task name (becomes the Hub config name).
        repo_id: Dataset repository, e.g. ``"me/my-jat-data"``.
        private: Create the repository as private.
    """
    found = find_local_dataset(task, path)
    dataset = DatasetDict({split: open_local_dataset(found, split) for split in found.splits})
    try:
        dataset.push_to_hub(repo_id, config_name=task, private=private)
        metadata = read_metadata(found.directory)
        if metadata is not None:
            from huggingface_hub import HfApi

            # the checksums are of the local files; the Hub re-encodes them as parquet shards
            metadata = {key: value for key, value in metadata.items() if key != CHECKSUMS_KEY}
            HfApi().upload_file(
                path_or_fileobj=(json.dumps(metadata, indent=2, default=json_default) + "\n").encode(),
                path_in_repo=f"{task}/{METADATA_FILE}",
                repo_id=repo_id,
                repo_type="dataset",
            )
    except (ConnectionError, OSError) as error:
        raise ConnectionError(
            f"Could not push {found.directory} to the Hub repo {repo_id!r} ({type(error).__name__}: {error}). "
            "Check `huggingface-cli login`, network access and HF_HUB_OFFLINE; the local copy is intact."
        ) from error
