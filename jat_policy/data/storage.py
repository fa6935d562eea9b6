"""On-disk layout of collected datasets, atomic writes, and the ``jat_metadata.json`` beside the data.

Layout (``out`` is the folder given to the collector; one sub-folder per task, like the Hub's
configs)::

    <out>/<task>/
        dataset_dict.json  train/  test/          # format="disk" (DatasetDict.save_to_disk)
        train-00000-of-00001.parquet  test-...    # or format="parquet" (the Hub's file names)
        jat_metadata.json                         # reference scores, seeds, env id/versions, expert

A dataset is first written to a hidden staging folder next to the target and then renamed into
place, so an interrupted collection leaves either the old dataset or nothing, never half a one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

METADATA_FILE = "jat_metadata.json"
CHECKSUMS_KEY = "checksums"  # in jat_metadata.json: {"algorithm": "sha256", "files": {relative path: hex digest}}
FORMATS = ("disk", "parquet")
_MAX_SHARD_BYTES = 500 * 1024**2  # the Hub's push_to_hub default shard size
_OWNER_FILE = "owner.json"
_STAGING_NAME = re.compile(r"\..+\.tmp-[0-9a-f]{8}")
_UNOWNED_STAGING_TTL_S = 3600.0  # staging folders without an owner file are left alone for an hour


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Hides ``datasets``' own progress bars (Arrow writing, parquet export) for the duration."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def task_dirname(task: str) -> str:
    """The folder name of a task's dataset (Gymnasium ids such as ``ALE/Pong-v5`` lose their slash)."""
    if not task or task in {".", ".."}:
        raise ValueError(f"task={task!r} is not a usable dataset name.")
    return task.replace("/", "--").replace("\\", "--")


def json_default(value: Any) -> Any:
    """JSON ``default=`` hook for metadata (numpy scalars and arrays, paths); also used by data/hub.py."""
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_metadata(directory: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Writes ``jat_metadata.json`` into ``directory`` and returns its path."""
    path = Path(directory) / METADATA_FILE
    path.write_text(json.dumps(metadata, indent=2, default=json_default) + "\n")
    return path


def read_metadata(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Reads ``jat_metadata.json`` from ``directory``; ``None`` when there is none."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it or restore it from the collector.") from None
    if not isinstance(metadata, dict):
        raise ValueError(
            f"{path} holds a JSON {type(metadata).__name__}, not an object; delete it or restore it from the collector"
        )
    return metadata


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(directory: str | os.PathLike) -> dict[str, Any]:
    """sha256 of every data file under ``directory`` (all but ``jat_metadata.json``), for ``jat_metadata.json``.

    Arrow and parquet files carry no checksum of their own: a zeroed page or a flipped bit reads back as other
    numbers, silently. ~1 GB/s on one core, so collected datasets are verified on every load.
    """
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != METADATA_FILE)
    return {"algorithm": "sha256", "files": {p.relative_to(root).as_posix(): _sha256(p) for p in files}}


def _split_of(relative: str) -> str | None:
    """The split a data file belongs to (``train/data-*.arrow``, ``train-*.parquet``), ``None`` if shared."""
    if "/" in relative:
        return relative.split("/", 1)[0]
    return relative.split("-", 1)[0] if relative.endswith(".parquet") else None


def verify_checksums(directory: str | os.PathLike, checksums: Any, split: str | None = None) -> None:
    """Checks the data files of ``directory`` against the checksums stored at collection time.

    Files ``datasets`` adds later (``cache-*.arrow`` from ``map``) are not listed and not checked.

    Args:
        directory: The dataset folder.
        checksums: The ``checksums`` entry of its ``jat_metadata.json``.
        split: Verify only this split's files (and the shared ones); ``None`` = all.

    Raises:
        DatasetValidationError: Naming the file that is missing or whose content changed.
    """
    from jat_policy.data.schema import DatasetValidationError

    root = Path(directory)
    files = checksums.get("files") if isinstance(checksums, dict) else None
    if not isinstance(files, dict) or checksums.get("algorithm") != "sha256":
        raise DatasetValidationError(
            f"{root / METADATA_FILE}: unreadable '{CHECKSUMS_KEY}' entry {str(checksums)[:80]!r}; expected "
            "{'algorithm': 'sha256', 'files': {path: digest}}. Restore the file or re-collect the dataset."
        )
    for relative, expected in sorted(files.items()):
        if split is not None and _split_of(relative) not in (None, split):
            continue
        path = root / relative
        if not path.is_file():
            raise DatasetValidationError(f"{path} is listed in {METADATA_FILE} but missing: a partial copy?")
        actual = _sha256(path)
        if actual != expected:
            raise DatasetValidationError(
                f"{path} changed since it was written (sha256 {actual[:16]}..., stored {str(expected)[:16]}"
                "...): disk corruption, a truncated copy or an edit. Restore it or re-collect the dataset "
                "(load_jat_dataset(..., verify_checksums=False) skips this check)."
            )


def _write_parquet(dataset: DatasetDict, directory: Path, max_shard_bytes: int) -> None:
    for split, data in dataset.items():
        num_shards = max(1, math.ceil(data.data.nbytes / max_shard_bytes))
        for index in range(num_shards):
            shard = data.shard(num_shards, index, contiguous=True)
            shard.to_parquet(str(directory / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))


def _owner_alive(staging: Path) -> bool:
    """Whether the process that made a staging folder may still be writing to it."""
    try:
        owner = json.loads((staging / _OWNER_FILE).read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):  # no owner file: made before 0.2, or mid-creation
        try:
            return time.time() - staging.stat().st_mtime < _UNOWNED_STAGING_TTL_S
        except OSError:
            return False
    if host != socket.gethostname():
        return True  # another machine's process on a shared filesystem: not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def remove_stale_staging(out: str | os.PathLike) -> list[Path]:
    """Removes the staging folders of collections that crashed (their process is gone) from ``out``.

    A finished or failed collection removes its own; only a killed one leaves ``.<task>.tmp-<id>`` behind
    (about 20 MB each, the generator's Arrow cache).

    Args:
        out: The parent folder of the datasets.

    Returns:
        The folders removed.
    """
    root = Path(out)
    if not root.is_dir():
        return []
    removed = []
    for staging in root.glob(".*.tmp-*"):
        if staging.is_dir() and _STAGING_NAME.fullmatch(staging.name) and not _owner_alive(staging):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


class StagedWrite:
    """Context manager that stages a dataset next to its target and renames it into place on commit.

    Args:
        out: Parent folder (``<out>`` in the layout above).
        task: Task name; the dataset goes to ``<out>/<task_dirname(task)>``.
        overwrite: Replace an existing dataset on commit; otherwise fail before any work is done.

    Example:
        >>> import tempfile
        >>> from datasets import Dataset, DatasetDict
        >>> with StagedWrite(tempfile.mkdtemp(), "my-task") as stage:
        ...     path = stage.commit(DatasetDict({"train": Dataset.from_dict({"rewards": [[1.0]]})}), {})
    """

    def __init__(self, out: str | os.PathLike, task: str, overwrite: bool = False):
        self.target = Path(out) / task_dirname(task)
        self.overwrite = overwrite
        if self.target.exists() and not overwrite:
            raise FileExistsError(f"{self.target} already exists: pass overwrite=True (--overwrite) or another out.")
        self.staging = Path(out) / f".{self.target.name}.tmp-{uuid.uuid4().hex[:8]}"

    @property
    def cache_dir(self) -> Path:
        """Scratch space inside the staging folder (e.g. for ``Dataset.from_generator``'s cache)."""
        return self.staging / "cache"

    def __enter__(self) -> StagedWrite:
        remove_stale_staging(self.target.parent)
        self.cache_dir.mkdir(parents=True)
        # who owns this folder: a later run removes it once that process is gone (SIGKILL, power loss)
        (self.staging / _OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def commit(
        self,
        dataset: DatasetDict,
        metadata: dict[str, Any],
        format: str = "disk",
        max_shard_bytes: int = _MAX_SHARD_BYTES,
    ) -> Path:
        """Writes ``dataset`` + metadata to the staging folder, then renames it to the target.

        Args:
            dataset: The splits to write.
            metadata: Written as ``jat_metadata.json`` beside the data.
            format: ``"disk"`` (``save_to_disk``) or ``"parquet"`` (Hub-style shards).
            max_shard_bytes: Parquet shard size.

        Returns:
            The target folder.
        """
        if format not in FORMATS:
            raise ValueError(f"format={format!r}: expected one of {FORMATS}.")
        data_dir = self.staging / "dataset"
        with quiet_datasets():
            if format == "disk":
                # an empty split saved with the default sharding writes no Arrow file and cannot be loaded back
                empty = {split: 1 for split, data in dataset.items() if len(data) == 0}
                dataset.save_to_disk(str(data_dir), num_shards=empty or None)
            else:
                data_dir.mkdir()
                _write_parquet(dataset, data_dir, max_shard_bytes)
        write_metadata(data_dir, {**metadata, CHECKSUMS_KEY: file_checksums(data_dir)})
        old = None
        if self.target.exists():
            if not self.overwrite:
                raise FileExistsError(f"{self.target} appeared while collecting; not overwriting it.")
            old = self.staging / "old"
            os.replace(self.target, old)
        os.replace(data_dir, self.target)  # atomic on one filesystem
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target


def save_dataset(
    dataset: DatasetDict | Dataset,
    out: str | os.PathLike,
    task: str,
    metadata: dict[str, Any] | None = None,
    format: str = "disk",
    overwrite: bool = False,
) -> Path:
    """Atomically writes a dataset (and its metadata) to ``<out>/<task>/`` in the layout above.

    Args:
        dataset: A ``DatasetDict`` (e.g. train/test) or a ``Dataset`` (saved as split ``train``).
        out: Parent folder.
        task: Task name.
        metadata: Content of ``jat_metadata.json`` (``{}`` when omitted).
        format: ``"disk"`` or ``"parquet"``.
        overwrite: Replace an existing dataset.

    Returns:
        The dataset folder.
    """
    if isinstance(dataset, Dataset):
        dataset = DatasetDict({"train": dataset})
    with StagedWrite(out, task, overwrite) as stage:
        return stage.commit(dataset, metadata or {}, format)
