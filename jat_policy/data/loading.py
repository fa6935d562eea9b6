"""``load_jat_dataset``: the Hub's ``jat-project/jat-dataset`` or a local copy, validated, same result either way.

Local data is what the collectors write (``save_to_disk`` folders or Hub-style parquet shards,
see :mod:`jat_policy.data.storage`), or parquet files downloaded from the Hub. Reference scores
stored beside collected data are read with :func:`load_reference_scores`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import datasets
import pyarrow as pa
from datasets import Dataset, DatasetDict, IterableDataset
from datasets.exceptions import DatasetGenerationError

from jat_policy.data.schema import DatasetValidationError, EpisodeSchema
from jat_policy.data.storage import CHECKSUMS_KEY, METADATA_FILE, read_metadata, task_dirname
from jat_policy.data.storage import verify_checksums as verify_checksums_of
from jat_policy.data.validation import validate_dataset, validate_iterable
from jat_policy.score_reference import ScoreReference

HUB_REPO_ID = "jat-project/jat-dataset"
_TRUE = {"1", "ON", "YES", "TRUE"}
_SPLIT_FOLDERS = ("train", "test", "validation")
# what corrupt Arrow/parquet/JSON files raise from inside pyarrow and datasets
_READ_ERRORS = (
    pa.ArrowException,
    OSError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    KeyError,
    IndexError,
    TypeError,
    DatasetGenerationError,
)


class _SplitError(ValueError):
    """The split asked for is not in a local dataset: the caller's mistake, not a corrupt file."""


@dataclasses.dataclass(frozen=True)
class LocalDataset:
    """Where a local dataset lives and in which format.

    Attributes:
        directory: The folder holding the data (and ``jat_metadata.json`` when collected here).
        format: ``"disk"`` (a ``DatasetDict`` folder), ``"disk-single"`` (one ``Dataset`` folder) or ``"parquet"``.
        parquet_files: Split -> parquet files, for the parquet format.
    """

    directory: Path
    format: str
    parquet_files: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        """Split names available (``[]`` for a single ``Dataset`` folder, whose split is not named)."""
        if self.format == "parquet":
            return sorted(self.parquet_files)
        if self.format == "disk":
            return sorted(DatasetDict.load_from_disk(str(self.directory)).keys())
        return []


def _parquet_splits(directory: Path) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    # Hub layout (<split>-*.parquet), `data/` folders, or one folder per split
    for pattern in ("*.parquet", "data/*.parquet", *(f"{split}/*.parquet" for split in _SPLIT_FOLDERS)):
        for file in sorted(directory.glob(pattern)):
            parent = file.parent.name if file.parent != directory and file.parent.name != "data" else ""
            split = parent or file.name.split("-", 1)[0].split(".", 1)[0]
            if file.as_posix() not in files.get(split, []):
                files.setdefault(split, []).append(file.as_posix())
        if files:
            return files
    return files


def _detect(directory: Path) -> LocalDataset | None:
    if (directory / "dataset_dict.json").is_file():
        return LocalDataset(directory, "disk")
    if (directory / "state.json").is_file() and (directory / "dataset_info.json").is_file():
        return LocalDataset(directory, "disk-single")
    if directory.is_file() and directory.suffix == ".parquet":
        return LocalDataset(directory.parent, "parquet", {"train": [directory.as_posix()]})
    parquet = _parquet_splits(directory) if directory.is_dir() else {}
    return LocalDataset(directory, "parquet", parquet) if parquet else None


def find_local_dataset(task: str, path: str | os.PathLike) -> LocalDataset:
    """Finds a task's dataset under ``path`` (``<path>/<task>/``) or at ``path`` itself.

    Args:
        task: The task name.
        path: The collector's ``out`` folder, the task folder, or a parquet file.

    Returns:
        The location and format.

    Raises:
        FileNotFoundError: Naming what was looked for and the task folders that do exist.
    """
    root = Path(path).expanduser()
    for candidate in (root / task_dirname(task), root):
        found = _detect(candidate)
        if found is not None:
            return found
    if not root.exists():
        raise FileNotFoundError(f"path={str(root)!r} does not exist (looking for task {task!r}).")
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and _detect(p) is not None) if root.is_dir() else []
    hint = f" It holds datasets for: {others}." if others else ""
    raise FileNotFoundError(
        f"No dataset for task {task!r} under {str(root)!r}: looked for {root / task_dirname(task)} and {root} "
        f"as a save_to_disk folder (dataset_dict.json) or parquet files (train-*.parquet, test-*.parquet).{hint}"
    )


def open_local_dataset(found: LocalDataset, split: str | None, streaming: bool = False, cache_dir: str | None = None):
    """Opens one split of a located local dataset (see :func:`find_local_dataset`).

    Args:
        found: The location.
        split: The split; ``None`` is accepted only for a single ``Dataset`` folder.
        streaming: Return an ``IterableDataset``.
        cache_dir: Cache folder for parquet -> Arrow conversion.

    Returns:
        A ``Dataset`` (or ``IterableDataset`` when streaming).
    """
    if found.format == "disk-single":
        dataset = Dataset.load_from_disk(str(found.directory))
        if split is not None and dataset.split is not None and str(dataset.split) != split:
            raise _SplitError(
                f"{found.directory} holds a single Dataset (split {str(dataset.split)!r}), not a DatasetDict; "
                f"asked for split {split!r}. Pass split={str(dataset.split)!r} or split=None."
            )
        return dataset.to_iterable_dataset() if streaming else dataset
    available = found.splits
    if split not in available:
        raise _SplitError(
            f"{found.directory} holds a DatasetDict with splits {available}; asked for split={split!r}. "
            "Pass one of those."
        )
    if found.format == "disk":
        dataset = DatasetDict.load_from_disk(str(found.directory))[split]
        return dataset.to_iterable_dataset() if streaming else dataset
    return datasets.load_dataset(
        "parquet",
        data_files={split: found.parquet_files[split]},
        split=split,
        streaming=streaming,
        cache_dir=cache_dir,
    )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` asks for offline mode."""
    return any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_resolvable() -> bool:
    """Whether the Hub's host name resolves: without network huggingface_hub retries for ~25 s before failing.

    Skipped (``True``) behind a proxy, where name resolution is the proxy's business.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def _load_from_hub(task: str, split: str | None, streaming: bool, cache_dir: str | None):
    if split is None:
        raise ValueError(f"split=None: the Hub dataset has 'train' and 'test' splits for {task!r}; pass one of them.")
    advice = (
        f"Use local data instead: collect some with `jat-policy collect --task {task} --out data/` and load it with "
        f"load_jat_dataset({task!r}, path='data/')."
    )
    if hub_offline():
        raise ConnectionError(
            f"Cannot load {HUB_REPO_ID!r} config {task!r}: offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE). "
            + advice
        )
    if not _hub_resolvable():
        raise ConnectionError(
            f"Cannot load {HUB_REPO_ID!r} config {task!r}: the Hub's host does not resolve (no network?). " + advice
        )
    try:
        return datasets.load_dataset(HUB_REPO_ID, task, split=split, streaming=streaming, cache_dir=cache_dir)
    except (ConnectionError, OSError) as error:
        raise ConnectionError(
            f"Could not load {HUB_REPO_ID!r} config {task!r} from the Hub ({type(error).__name__}: {error}). " + advice
        ) from error


def _select_in_memory(data: Dataset | DatasetDict, split: str | None) -> Dataset:
    if isinstance(data, DatasetDict):
        if split not in data:
            raise ValueError(
                f"got a DatasetDict with splits {sorted(data)}; asked for split={split!r}. Pass one of those."
            )
        return data[split]
    if split is not None and data.split is not None and str(data.split) != split:
        raise ValueError(
            f"got a single Dataset (split {str(data.split)!r}), not a DatasetDict; asked for split {split!r}. "
            f"Pass split={str(data.split)!r} or split=None."
        )
    return data


def load_jat_dataset(
    task: str,
    split: str | None = "train",
    path: str | os.PathLike | Dataset | DatasetDict | None = None,
    streaming: bool = False,
    validate: bool | int = True,
    cache_dir: str | None = None,
    verify_checksums: bool = True,
) -> Dataset | IterableDataset:
    """Loads a task's episodes from the Hub or from local data, and validates them.

    Args:
        task: Task name (the Hub config), e.g. ``"metaworld-reach"``.
        split: ``"train"`` or ``"test"``; ``None`` only for a single-split ``Dataset``.
        path: ``None`` for the Hub (``jat-project/jat-dataset``); a folder written by the
            collectors (``<path>/<task>/``), a task folder, a parquet file; or an in-memory
            ``Dataset`` / ``DatasetDict``.
        streaming: Return an ``IterableDataset`` (episodes validated lazily as they are read).
        validate: ``True`` validates every episode, an int the first that many, ``False`` none.
        cache_dir: ``datasets`` cache folder (Hub downloads, parquet conversion).
        verify_checksums: Check local data files against the sha256 sums the collector stored in
            ``jat_metadata.json`` (datasets without them, e.g. Hub downloads, are not checked). ``False`` skips
            it for huge data.

    Returns:
        The split: one row per episode, columns as in the Hub.

    Raises:
        ConnectionError: Hub path in offline mode (at once) or without network.
        FileNotFoundError: Nothing for ``task`` under ``path``.
        ValueError: Wrong split for a ``DatasetDict``, a single ``Dataset`` under another split, a local dataset
            whose metadata names another task.
        DatasetValidationError: The data does not follow the task's schema, a checksum does not match, or a
            file cannot be read (names the file, and the episode and column where known).

    Example:
        >>> ds = load_jat_dataset("babyai-go-to-red-ball", path="data/")  # doctest: +SKIP
        >>> ds[0]["discrete_actions"][:3]  # doctest: +SKIP
        [1, 2, 2]
    """
    schema, where = None, None
    if path is None:
        dataset = _load_from_hub(task, split, streaming, cache_dir)
    elif isinstance(path, DatasetDict | Dataset):
        dataset = _select_in_memory(path, split)
        dataset = dataset.to_iterable_dataset() if streaming else dataset
    else:
        found = find_local_dataset(task, path)
        metadata = read_metadata(found.directory) or {}
        _check_task(task, metadata, found.directory)
        if verify_checksums and metadata.get(CHECKSUMS_KEY) is not None:
            verify_checksums_of(found.directory, metadata[CHECKSUMS_KEY], split)
        if metadata.get("schema"):
            schema = _stored_schema(metadata["schema"], found.directory)
        where = _data_location(found, split)
        with _named_errors(where):
            dataset = open_local_dataset(found, split, streaming, cache_dir)
    if validate is False:
        return dataset
    if isinstance(dataset, IterableDataset):
        return validate_iterable(dataset, task=task, schema=schema)
    max_episodes = None if validate is True else int(validate)
    with _named_errors(where):
        return validate_dataset(dataset, task=task, split=None, schema=schema, max_episodes=max_episodes)


def _stored_schema(data: Any, directory: Path) -> EpisodeSchema:
    try:
        return EpisodeSchema.from_dict(data)
    except (TypeError, ValueError, AttributeError) as error:
        raise DatasetValidationError(
            f"{directory / METADATA_FILE}: unreadable 'schema' entry ({error}). Restore the file or re-collect."
        ) from None


def _check_task(task: str, metadata: dict[str, Any], directory: Path) -> None:
    """The task a collected dataset holds (its metadata says) must be the one asked for."""
    stored = metadata.get("task")
    if stored is not None and stored != task:
        raise ValueError(
            f"load_jat_dataset({task!r}): {directory} holds data of task {stored!r} (its {METADATA_FILE} says so), "
            f"not {task!r}. Wrong path? Point path= at the folder holding <task>/ (e.g. the collector's out)."
        )


def _data_location(found: LocalDataset, split: str | None) -> str:
    """The files a split is read from, for error messages."""
    if found.format == "parquet" and split in found.parquet_files:
        return ", ".join(found.parquet_files[split])
    if found.format == "disk" and split is not None:
        return str(found.directory / split)
    return str(found.directory)


@contextlib.contextmanager
def _named_errors(where: str | None) -> Iterator[None]:
    """Raw pyarrow / JSON / OS errors of corrupt files become DatasetValidationErrors that name the files."""
    if where is None:
        yield
        return
    try:
        yield
    except DatasetValidationError as error:
        context = f"{error.context} in {where}" if error.context else f"in {where}"
        raise error.with_context(context) from None
    except _SplitError:
        raise
    except (*_READ_ERRORS, ValueError) as error:  # datasets raises bare ValueErrors for Arrow/JSON mismatches
        raise DatasetValidationError(
            f"cannot read the data ({type(error).__name__}: {str(error)[:300]}): the files are corrupt or incomplete. "
            "Restore them or re-collect the dataset.",
            context=where,
        ) from error


@dataclasses.dataclass(frozen=True)
class ReferenceScores:
    """Expert and random reference returns of a collected dataset (raw episode returns), with their counts.

    This is the record read from ``jat_metadata.json`` (``scores.expert.mean`` etc.); its scores as the library's
    one score type are :attr:`reference` (a :class:`~jat_policy.score_reference.ScoreReference`).

    Attributes:
        task: Task name.
        expert_mean: Mean return over all collected episodes (train + test), as JAT defines the expert score.
        expert_std: Their standard deviation.
        random_mean: Mean return of a uniform random policy (``None`` if not measured).
        random_std: Its standard deviation.
        expert_episodes: Episodes behind ``expert_mean``.
        random_episodes: Episodes behind ``random_mean``.
        success_rate: Fraction of successful expert episodes when the env reports success.
        env_id: The environment the data came from (with its version).
        expert: The expert's name.
        directory: The dataset's folder.
    """

    task: str
    expert_mean: float
    expert_std: float
    random_mean: float | None
    random_std: float | None
    expert_episodes: int
    random_episodes: int
    success_rate: float | None = None
    env_id: str | None = None
    expert: str | None = None
    directory: str | None = None

    @property
    def reference(self) -> ScoreReference | None:
        """The scores as the library's one score type; None when no random score was measured."""
        if self.random_mean is None:
            return None
        return ScoreReference(
            self.random_mean, self.expert_mean, None, "dataset", env_id=self.env_id, origin=self.directory
        )


def load_metadata(path: str | os.PathLike, task: str) -> dict[str, Any]:
    """Reads the ``jat_metadata.json`` written beside a collected dataset.

    Args:
        path: The collector's ``out`` folder (or the task folder).
        task: Task name.

    Returns:
        The metadata (schema, seeds, splits, env id and versions, expert, reference scores).
    """
    found = find_local_dataset(task, path)
    metadata = read_metadata(found.directory)
    if metadata is None:
        raise FileNotFoundError(
            f"{found.directory} has no {METADATA_FILE}: it was not written by jat_policy's collector "
            "(Hub downloads carry no reference scores; use the task registry's)."
        )
    return metadata


def load_reference_scores(path: str | os.PathLike, task: str) -> ReferenceScores:
    """Reference scores stored with a collected dataset, to normalise tasks the registry does not know.

    Args:
        path: The collector's ``out`` folder (or the task folder).
        task: Task name.

    Returns:
        The expert (dataset mean return) and random (random-policy mean return) scores.
    """
    metadata = load_metadata(path, task)
    directory = find_local_dataset(task, path).directory
    scores = metadata.get("scores") or {}
    expert, random = scores.get("expert") or {}, scores.get("random") or {}
    if "mean" not in expert:
        raise ValueError(f"{METADATA_FILE} for task {task!r} has no expert score (keys: {sorted(scores)}).")
    return ReferenceScores(
        task=metadata.get("task", task),
        expert_mean=float(expert["mean"]),
        expert_std=float(expert.get("std", 0.0)),
        random_mean=None if random.get("mean") is None else float(random["mean"]),
        random_std=None if random.get("std") is None else float(random["std"]),
        expert_episodes=int(expert.get("episodes", 0)),
        random_episodes=int(random.get("episodes", 0)),
        success_rate=scores.get("success_rate"),
        env_id=(metadata.get("env") or {}).get("id"),
        expert=(metadata.get("expert") or {}).get("name"),
        directory=str(directory),
    )
