"""Schema validation of episode datasets, with errors that name the episode, column and step.

Checks run on the Arrow data in batches (no Python loop over values), so a whole split validates in
seconds: feature types, per-episode column lengths, observation and action sizes, finite floats, action
ranges and bounds, discrete values, and images (84x84 RGBA, 8 bits, and that each one decodes: ~0.1 ms
a frame, the one per-step loop).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Image, IterableDataset, LargeList, List, Value

from jat_policy.data.schema import (
    IMAGE_SHAPE,
    REWARD_COLUMN,
    DatasetValidationError,
    EpisodeSchema,
    guess_domain,
    infer_schema,
    schema_for_task,
)
from jat_policy.wrappers.common import MAX_DISCRETE_VALUE

_FLOAT_DTYPES = {"float16", "float32", "float64"}
_INT_DTYPES = {f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)}
_STRING_DTYPES = {"string", "large_string"}
# column -> (list depth, allowed leaf dtypes, description)
_EXPECTED: dict[str, tuple[int, set[str], str]] = {
    "continuous_observations": (2, _FLOAT_DTYPES, "List(List(Value('float32')))"),
    "discrete_observations": (2, _INT_DTYPES, "List(List(Value('int64')))"),
    "text_observations": (1, _STRING_DTYPES, "List(Value('string'))"),
    "continuous_actions": (2, _FLOAT_DTYPES, "List(List(Value('float32')))"),
    "discrete_actions": (1, _INT_DTYPES, "List(Value('int64'))"),
    REWARD_COLUMN: (1, _FLOAT_DTYPES, "List(Value('float32'))"),
}
_VECTOR_SIZE_FIELD = {
    "continuous_observations": "observation_size",
    "discrete_observations": "observation_size",
    "continuous_actions": "action_size",
}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# header of an 84x84 8-bit RGBA PNG: stands in for already-decoded images when streaming
_RGBA_HEADER = _PNG_MAGIC + b"\x00\x00\x00\x0dIHDR" + struct.pack(">IIBB", IMAGE_SHAPE[1], IMAGE_SHAPE[0], 8, 6)
_IMAGES_AS_ARRAYS_HINT = (
    "images must be stored as datasets.Image (one 84x84 RGBA PNG per step, the Hub's format), never as integer "
    "arrays (8x the memory as int64); convert frames with jat_policy.data.frame_to_image"
)


def _unwrap(feature: Any) -> tuple[int, Any]:
    depth = 0
    while isinstance(feature, List | LargeList):
        feature, depth = feature.feature, depth + 1
    return depth, feature


def _check_feature(column: str, feature: Any) -> None:
    depth, leaf = _unwrap(feature)
    if column == "image_observations":
        if depth == 1 and isinstance(leaf, Image):
            return
        hint = _IMAGES_AS_ARRAYS_HINT if not isinstance(leaf, Image) else "expected List(Image())"
        raise DatasetValidationError(f"feature type {feature}: {hint}.", column=column)
    want_depth, dtypes, description = _EXPECTED[column]
    if depth != want_depth or not isinstance(leaf, Value) or leaf.dtype not in dtypes:
        raise DatasetValidationError(f"feature type {feature}, expected {description}.", column=column)


def validate_features(features: Mapping[str, Any] | None, schema: EpisodeSchema) -> None:
    """Checks that the dataset has the schema's columns with the Hub's feature types.

    Args:
        features: The dataset's ``features`` (``None`` for some streamed datasets: skipped).
        schema: The expected schema.

    Raises:
        DatasetValidationError: Naming the missing column(s) or the column with a wrong type.
    """
    if features is None:
        return
    missing = [c for c in schema.columns if c not in features]
    if missing:
        raise DatasetValidationError(
            f"missing column(s) {missing}: the dataset has {sorted(features)} (looks like a "
            f"{guess_domain(features)} dataset), expected {list(schema.columns)}. Wrong task or wrong path?"
        )
    for column in schema.columns:
        _check_feature(column, features[column])


def _locate(flat_index: int, offsets: np.ndarray) -> tuple[int, int]:
    """Maps an index into the concatenated steps of a batch to (episode in batch, step)."""
    episode = int(np.searchsorted(offsets, flat_index, side="right") - 1)
    return episode, int(flat_index - offsets[episode])


class _BatchChecker:
    """Validates Arrow record batches of a split, remembering sizes learned from earlier batches."""

    def __init__(self, schema: EpisodeSchema):
        self.schema = schema
        self.sizes: dict[str, tuple[int, str]] = {}  # column -> (size, where it came from)
        for column, attr in _VECTOR_SIZE_FIELD.items():
            value = getattr(schema, attr)
            if column in schema.columns and value is not None:
                self.sizes[column] = (value, f"the task's size ({schema.source or 'schema'})")

    def check(self, table: pa.Table, first_episode: int) -> None:
        self.first = first_episode
        lengths = self._lengths(table.column(REWARD_COLUMN).combine_chunks(), REWARD_COLUMN)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            raise DatasetValidationError("empty episode (0 steps).", episode=self.first + int(empty[0]))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for column in self.schema.columns:
            array = table.column(column).combine_chunks()
            column_lengths = self._lengths(array, column)
            bad = np.flatnonzero(column_lengths != lengths)
            if bad.size:
                i = int(bad[0])
                raise DatasetValidationError(
                    f"{column_lengths[i]} steps but '{REWARD_COLUMN}' has {lengths[i]}: all columns of an episode "
                    "must have one entry per step (the terminal observation is not stored).",
                    episode=self.first + i,
                    column=column,
                )
            self._check_steps(column, pc.list_flatten(array), offsets)

    def _lengths(self, array: pa.Array, column: str) -> np.ndarray:
        if array.null_count:
            first = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
            raise DatasetValidationError("episode is null.", episode=self.first + first, column=column)
        return pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)

    def _fail(self, message: str, column: str, flat_index: int, offsets: np.ndarray) -> None:
        episode, step = _locate(flat_index, offsets)
        raise DatasetValidationError(message, episode=self.first + episode, column=column, step=step)

    def _check_steps(self, column: str, steps: pa.Array, offsets: np.ndarray) -> None:
        if steps.null_count:
            first = int(np.flatnonzero(steps.is_null().to_numpy(zero_copy_only=False))[0])
            self._fail("null step.", column, first, offsets)
        if column in _VECTOR_SIZE_FIELD:
            self._check_vectors(column, steps, offsets)
        elif column == "image_observations":
            self._check_images(column, steps, offsets)
        elif column in ("discrete_actions", REWARD_COLUMN):
            self._check_values(column, steps.to_numpy(zero_copy_only=False), offsets, size=1)

    def _check_vectors(self, column: str, steps: pa.Array, offsets: np.ndarray) -> None:
        sizes = pc.list_value_length(steps).to_numpy(zero_copy_only=False)
        if column not in self.sizes and sizes.size:
            self.sizes[column] = (int(sizes[0]), "the first step of this episode batch")
        expected, origin = self.sizes[column]
        bad = np.flatnonzero(sizes != expected)
        if bad.size:
            i = int(bad[0])
            self._fail(f"{sizes[i]} values per step, expected {expected} ({origin}).", column, i, offsets)
        values = pc.list_flatten(steps)
        if values.null_count:
            first = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            self._fail("null value.", column, first // max(expected, 1), offsets)
        values = values.to_numpy(zero_copy_only=False)
        self._check_values(column, values, offsets, size=max(expected, 1))
        if column == "continuous_actions":
            self._check_bounds(column, values, offsets, max(expected, 1))

    def _check_values(self, column: str, values: np.ndarray, offsets: np.ndarray, size: int) -> None:
        if values.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                self._fail(f"non-finite value {values[bad[0]]}.", column, int(bad[0]) // size, offsets)
            return
        if column == "discrete_observations":
            high = self.schema.observation_high or MAX_DISCRETE_VALUE
        else:
            high = self.schema.num_actions
        bad = np.flatnonzero((values < 0) | (values >= high if high is not None else False))
        if bad.size:
            allowed = f"[0, {high})" if high is not None else ">= 0"
            origin = f" ({self.schema.source})" if self.schema.source and high is not None else ""
            self._fail(f"value {values[bad[0]]} outside {allowed}{origin}.", column, int(bad[0]) // size, offsets)

    def _check_bounds(self, column: str, values: np.ndarray, offsets: np.ndarray, size: int) -> None:
        """Continuous actions inside the action space's Box (the collectors clip them, so any excess is corrupt)."""
        low, high = self.schema.action_low, self.schema.action_high
        if (low is None and high is None) or not values.size:
            return
        steps = values.reshape(-1, size)  # (steps, action size)
        low = np.full(size, -np.inf) if low is None else np.asarray(low, np.float64)
        high = np.full(size, np.inf) if high is None else np.asarray(high, np.float64)
        if low.shape != (size,) or high.shape != (size,):
            raise DatasetValidationError(
                f"the schema's action bounds have {low.size}/{high.size} values but the actions have {size}.",
                column=column,
            )
        slack = 1e-5 * np.maximum(1.0, np.abs(np.where(np.isfinite(high), high, 0.0)))
        bad = np.argwhere((steps < low - slack) | (steps > high + slack))
        if bad.size:
            step, i = (int(v) for v in bad[0])
            self._fail(
                f"action value {steps[step, i]} (index {i}) outside the action space [{low[i]}, {high[i]}] "
                f"({self.schema.source or 'the stored schema'}).",
                column,
                step,
                offsets,
            )

    def _check_images(self, column: str, steps: pa.Array, offsets: np.ndarray) -> None:
        blobs = steps.field("bytes").to_pylist()
        paths = steps.field("path").to_pylist()
        for i, (blob, path) in enumerate(zip(blobs, paths, strict=True)):
            problem = _image_problem(blob, path)
            if problem:
                self._fail(problem, column, i, offsets)


def _image_header(blob: bytes | None, path: str | None) -> tuple[int, int, str]:
    """(width, height, PIL mode) of a stored image, reading only its header."""
    if blob is not None and blob[:8] == _PNG_MAGIC and blob[12:16] == b"IHDR":
        width, height, depth, color = struct.unpack(">IIBB", blob[16:26])
        mode = {(8, 6): "RGBA", (8, 2): "RGB", (8, 0): "L"}.get((depth, color), f"PNG depth {depth} color {color}")
        return width, height, mode
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(blob) if blob is not None else path) as image:
        return image.width, image.height, image.mode


def _decode_problem(blob: bytes | None, path: str | None) -> str | None:
    """Decodes the whole image: a valid header says nothing of a truncated or corrupt body (~0.1 ms per frame)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(blob) if blob is not None else path) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # PIL's errors for truncated/corrupt data
        return f"image does not decode ({type(error).__name__}: {error}): a truncated or corrupt PNG."
    return None


def _image_problem(blob: bytes | None, path: str | None) -> str | None:
    if blob is None and not path:
        return "image has neither bytes nor path."
    try:
        width, height, mode = _image_header(blob, path)
    except (OSError, ValueError) as error:
        return f"unreadable image ({error})."
    if (height, width) != IMAGE_SHAPE[:2] or mode != "RGBA":
        return (
            f"image is {width}x{height} {mode}, expected {IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]} RGBA "
            "(4 stacked grayscale frames, oldest in R, newest in A)."
        )
    return None if blob == _RGBA_HEADER else _decode_problem(blob, path)  # the header stands in for decoded images


def _select_split(dataset: Any, split: str | None) -> Any:
    if isinstance(dataset, DatasetDict | dict) and not isinstance(dataset, Dataset):
        if split is None or split not in dataset:
            raise DatasetValidationError(
                f"got a DatasetDict with splits {sorted(dataset)}; pass split= one of them (got split={split!r})."
            )
        return dataset[split]
    if not isinstance(dataset, Dataset | IterableDataset):
        raise TypeError(f"expected a datasets.Dataset or DatasetDict, got {type(dataset).__name__}.")
    return dataset


def resolve_schema(
    task: str | None, features: Mapping[str, Any] | None, schema: EpisodeSchema | None
) -> EpisodeSchema:
    """The schema to validate against: given > the task's Hub schema > inferred from the columns."""
    if schema is not None:
        return schema
    if task is not None:
        known = schema_for_task(task)
        if known is not None:
            return known
    if features is None:
        raise DatasetValidationError(f"no schema known for task {task!r} and the dataset has no features.")
    return infer_schema(features)


def validate_dataset(
    dataset: Dataset | DatasetDict,
    task: str | None = None,
    split: str | None = None,
    schema: EpisodeSchema | None = None,
    max_episodes: int | None = None,
    batch_size: int = 256,
) -> Dataset:
    """Validates an episode dataset against the JAT schema of its task.

    Args:
        dataset: A ``Dataset``, or a ``DatasetDict`` together with ``split``.
        task: The task name (picks the schema and expected sizes, e.g. 39 floats for Meta-World).
        split: The split to take from a ``DatasetDict``.
        schema: An explicit schema (wins over ``task``); e.g. from ``jat_metadata.json``.
        max_episodes: Validate only the first episodes (``None`` = all).
        batch_size: Episodes per Arrow batch.

    Returns:
        The validated ``Dataset`` (the split, when a ``DatasetDict`` was given).

    Raises:
        DatasetValidationError: Naming the episode, column and step at fault.

    Example:
        >>> from datasets import Dataset
        >>> from jat_policy.data import METAWORLD_FEATURES, validate_dataset
        >>> row = {"continuous_observations": [[0.0] * 39], "continuous_actions": [[0.0] * 4], "rewards": [1.0]}
        >>> ds = validate_dataset(Dataset.from_list([row], features=METAWORLD_FEATURES), task="metaworld-reach")
    """
    dataset = _select_split(dataset, split)
    label = f"task {task!r}" + (f" split {split!r}" if split else "")
    schema = resolve_schema(task, dataset.features, schema)
    try:
        validate_features(dataset.features, schema)
        if isinstance(dataset, IterableDataset):
            raise TypeError("use validate_iterable() for streamed datasets")
        checker = _BatchChecker(schema)
        subset = dataset if max_episodes is None else dataset.select(range(min(max_episodes, len(dataset))))
        arrow = subset.select_columns(list(schema.columns)).with_format("arrow")
        for start in range(0, len(arrow), batch_size):
            checker.check(arrow[start : start + batch_size], start)
    except DatasetValidationError as error:
        raise error.with_context(label) from None
    return dataset


def validate_episode(episode: Mapping[str, Any], schema: EpisodeSchema, index: int | None = None) -> None:
    """Validates one decoded episode (a row as ``datasets`` returns it), e.g. while streaming.

    Args:
        episode: Column -> per-step values (lists, arrays, PIL images or ``{"bytes", "path"}`` dicts).
        schema: The expected schema.
        index: Episode index, for the error message.

    Raises:
        DatasetValidationError: Naming the column and step at fault.
    """
    missing = [c for c in schema.columns if c not in episode]
    if missing:
        raise DatasetValidationError(f"missing column(s) {missing}.", episode=index)
    table = pa.table({column: [_to_arrow_value(column, episode[column])] for column in schema.columns})
    checker = _BatchChecker(schema)
    checker.check(table, index or 0)


def _to_arrow_value(column: str, steps: Any) -> Any:
    if column != "image_observations":
        return [np.asarray(s).tolist() for s in steps] if column in _VECTOR_SIZE_FIELD else np.asarray(steps).tolist()
    out = []
    for step, image in enumerate(steps):
        if isinstance(image, Mapping):
            out.append({"bytes": image.get("bytes"), "path": image.get("path")})
        elif hasattr(image, "mode") and hasattr(image, "size"):  # a decoded PIL image
            width, height = image.size
            if (height, width) != IMAGE_SHAPE[:2] or image.mode != "RGBA":
                raise DatasetValidationError(
                    f"image is {width}x{height} {image.mode}, expected {IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]} RGBA.",
                    column=column,
                    step=step,
                )
            _load_decoded(image, column, step)
            out.append({"bytes": _RGBA_HEADER, "path": None})
        else:
            raise DatasetValidationError(
                f"step value of type {type(image).__name__}: {_IMAGES_AS_ARRAYS_HINT}.", column=column
            )
    return out


def _load_decoded(image: Any, column: str, step: int) -> None:
    """PIL opens images lazily: make it read the pixels, so a truncated PNG fails here, not in training."""
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise DatasetValidationError(
            f"image does not decode ({type(error).__name__}: {error}): a truncated or corrupt PNG.",
            column=column,
            step=step,
        ) from None


def validate_iterable(dataset: IterableDataset, task: str | None = None, schema: EpisodeSchema | None = None) -> Any:
    """Validates a streamed dataset: features now, each episode lazily as it is read.

    Args:
        dataset: The ``IterableDataset``.
        task: The task name (picks the schema).
        schema: An explicit schema (wins over ``task``).

    Returns:
        An ``IterableDataset`` that raises :class:`DatasetValidationError` on the first bad episode.
    """
    schema = resolve_schema(task, dataset.features, schema)
    validate_features(dataset.features, schema)

    def check(example: dict[str, Any], index: int) -> dict[str, Any]:
        validate_episode(example, schema, index)
        return example

    features = dataset.features
    images = features is not None and "image_observations" in schema.columns
    if images:  # check the PNG bytes before datasets decodes them (a truncated one fails inside its decoder)
        dataset = dataset.cast_column("image_observations", List(Image(decode=False)))
    checked = dataset.map(check, with_indices=True, features=dataset.features)
    return checked.cast_column("image_observations", features["image_observations"]) if images else checked
