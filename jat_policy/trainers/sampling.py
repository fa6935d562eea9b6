"""Task-batched data for behaviour cloning: processed windows, a single-task batch sampler, a collator.

Every episode of a task is processed once by :class:`~jat_policy.processing.JatProcessor` (rewards shifted,
``truncation="preserve"`` windows) and kept **unpadded** in flat per-task arrays (:class:`TaskWindows`):
a BabyAI episode of 10 steps costs 10 steps of memory, not a 256-step padded row. Batches are padded to
their longest window when collated (:class:`TaskBatchCollator`, through ``JatProcessor.pad``). Padded steps
are masked out of attention and losses and come after the real steps of a causal model, so this gives the
same losses as the reference's ``padding="max_length"`` at a fraction of the compute.

:class:`TaskBatchSampler` draws, for each micro-batch, one task by sampling weight and then
``batch_size × world_size`` windows of it (each rank keeps its slice): every device batch is single-task, as
in the reference, and the whole order is a pure function of the seed, so resumed and multi-process runs
see exactly the data an uninterrupted single-process run sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from jat_policy.processing import JatProcessor, previous_rewards, unscale_pixels

logger = logging.getLogger(__name__)

__all__ = [
    "RL_COLUMNS",
    "TEXT_COLUMNS",
    "MultiTaskDataset",
    "TaskBatchCollator",
    "TaskBatchSampler",
    "TaskWindows",
    "build_task_windows",
]

RL_COLUMNS = (
    "continuous_observations",
    "discrete_observations",
    "text_observations",
    "image_observations",
    "continuous_actions",
    "discrete_actions",
    "rewards",
)
"""Hub-schema episode columns the processor takes (one entry per timestep)."""

TEXT_COLUMNS = ("text", "images")
"""Columns of the text (``text``) and captioning / VQA (``text`` + ``images``) datasets."""

_PER_STEP_KEYS = frozenset(
    {
        "continuous_observations",
        "discrete_observations",
        "image_observations",
        "continuous_actions",
        "discrete_actions",
        "rewards",
        "input_ids",
    }
)
_PIECE_BYTES = 64 * 2**20  # long image episodes are processed in pieces of about this many float32 bytes


@dataclass
class TaskWindows:
    """The processed, unpadded windows of one task, stored flat.

    Window ``i`` is ``steps[key][offsets[i]:offsets[i + 1]]`` for every per-step key (observations, actions,
    rewards, ``input_ids``); per-window keys (``pixel_values``) are ``per_window[key][i]``. Integers are kept as
    int32 and Atari frames as uint8 ``(S, 4, 84, 84)`` until collation.

    Attributes:
        name: Task name.
        kind: ``"rl"`` or ``"text"`` (text and captioning).
        steps: Per-step key -> ``(S, ...)`` array, all windows concatenated.
        offsets: ``(N + 1,)`` window boundaries into ``steps``.
        per_window: Per-window key -> ``(N, ...)`` array.
        loss_weight: Weight of this task's loss (multiplies every step's loss; RL only).
        sample_weight: Relative probability of drawing a batch of this task.
    """

    name: str
    kind: str
    steps: dict[str, np.ndarray]
    offsets: np.ndarray
    per_window: dict[str, np.ndarray] = field(default_factory=dict)
    loss_weight: float = 1.0
    sample_weight: float = 1.0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """``(N,)`` timesteps (or tokens) of each window."""
        return np.diff(self.offsets)

    @property
    def num_steps(self) -> int:
        """Real (unpadded) timesteps or tokens over all windows."""
        return int(self.offsets[-1])

    def window(self, index: int) -> dict[str, np.ndarray]:
        """Window ``index`` as a dict of arrays (views, no copy)."""
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        row = {key: value[start:stop] for key, value in self.steps.items()}
        row.update({key: value[index] for key, value in self.per_window.items()})
        return row


# --------------------------------------------------------------------------------------------------------------
# Building windows from Hub-schema datasets


def _pieces(length: int, piece: int) -> list[tuple[int, int]]:
    return [(start, min(start + piece, length)) for start in range(0, length, piece)]


def _compact(key: str, row: np.ndarray) -> np.ndarray:
    """Storage dtype: uint8 frames, int32 ids; ``JatProcessor.pad`` turns them back into float / int64."""
    if key == "image_observations":
        return unscale_pixels(row)
    if np.issubdtype(row.dtype, np.integer):
        return row.astype(np.int32)
    return row


class _WindowBuffer:
    """Collects processed rows, then concatenates them into a :class:`TaskWindows`."""

    def __init__(self) -> None:
        self.steps: dict[str, list[np.ndarray]] = {}
        self.per_window: dict[str, list[np.ndarray]] = {}
        self.lengths: list[int] = []

    def add(self, processed: Mapping[str, Any]) -> None:
        length_key = next(key for key in processed if key in _PER_STEP_KEYS)
        self.lengths.extend(len(row) for row in processed[length_key])
        for key, rows in processed.items():
            if key == "attention_mask":  # unpadded rows: all ones, rebuilt when collated
                continue
            target = self.steps if key in _PER_STEP_KEYS else self.per_window
            target.setdefault(key, []).extend(_compact(key, np.asarray(row)) for row in rows)

    def finish(self, name: str, kind: str) -> TaskWindows:
        if not self.lengths:
            raise ValueError(
                f"Task {name!r} has no usable episodes (all empty, or max_episodes=0): nothing to train on."
            )
        offsets = np.zeros(len(self.lengths) + 1, np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        steps = {key: np.concatenate(rows) for key, rows in self.steps.items()}  # (S, ...)
        per_window = {key: np.stack(rows) for key, rows in self.per_window.items()}  # (N, ...)
        return TaskWindows(name, kind, steps, offsets, per_window)


def _episode_columns(batch: Mapping[str, list[Any]]) -> list[str]:
    columns = [column for column in RL_COLUMNS if column in batch]
    if "rewards" not in columns or not any(c.endswith("_actions") for c in columns):
        raise ValueError(
            f"Columns {sorted(batch)} are neither Hub-schema episodes (observations, *_actions, rewards) nor text "
            "('text', optionally 'images'); load the data with jat_policy.data.load_jat_dataset."
        )
    return columns


def _process_episodes(
    batch: Mapping[str, list[Any]], processor: JatProcessor, window: int, buffer: _WindowBuffer
) -> None:
    columns = _episode_columns(batch)
    keep = [i for i, rewards in enumerate(batch["rewards"]) if len(rewards) > 0]  # the reference drops empty ones
    images = "image_observations" in columns
    piece = window
    if images:  # bound the float32 copy the processor makes of long Atari episodes
        piece = window * max(1, _PIECE_BYTES // (window * 4 * 84 * 84 * 4))
    inputs: dict[str, list[Any]] = {column: [] for column in columns}
    for index in keep:
        shifted = previous_rewards(batch["rewards"][index])  # per whole episode, before pieces are cut
        bounds = _pieces(len(shifted), piece) if images else [(0, len(shifted))]
        for start, stop in bounds:
            for column in columns:
                value = shifted if column == "rewards" else batch[column][index]
                inputs[column].append(
                    _frames(value, start, stop) if column == "image_observations" else value[start:stop]
                )
        if images:  # one piece at a time
            buffer.add(_call_rl(processor, inputs, window))
            inputs = {column: [] for column in columns}
    if inputs["rewards"]:
        buffer.add(_call_rl(processor, inputs, window))


def _frames(episode: Any, start: int, stop: int) -> np.ndarray:
    """Steps [start, stop) of an image episode as (T, 84, 84, 4) uint8, decoding stored PNGs only there."""
    if isinstance(episode, np.ndarray):
        return episode[start:stop]
    from jat_policy.data.images import image_to_frame

    frames = episode[start:stop]
    return np.stack([np.asarray(f, np.uint8) if isinstance(f, np.ndarray) else image_to_frame(f) for f in frames])


def _undecoded_images(dataset: Any) -> Any:
    """Atari rows hold whole games: keep their PNGs encoded until each piece is processed."""
    from datasets import Image, List

    return dataset.cast_column("image_observations", List(Image(decode=False)))


def _call_rl(processor: JatProcessor, inputs: Mapping[str, list[Any]], window: int) -> dict[str, Any]:
    # Rewards are shifted per whole episode above, so the processor must not shift each piece again.
    return processor(**inputs, truncation="preserve", max_steps=window, shift_rewards=False, return_tensors=None)


def _process_text(batch: Mapping[str, list[Any]], processor: JatProcessor, max_tokens: int, buffer: _WindowBuffer):
    texts = list(batch["text"])
    images = batch.get("images")
    keep = [i for i, text in enumerate(texts) if text]
    if not keep:
        return
    texts = [texts[i] for i in keep]
    images = None if images is None else [images[i] for i in keep]
    buffer.add(processor(text=texts, images=images, truncation="preserve", max_length=max_tokens))


def build_task_windows(
    episodes: Any,
    processor: JatProcessor,
    window: int,
    name: str = "task",
    *,
    loss_weight: float = 1.0,
    sample_weight: float = 1.0,
    max_episodes: int | None = None,
    batch_size: int = 64,
    augment: Callable[[Mapping[str, list[Any]]], Mapping[str, list[Any]]] | None = None,
) -> TaskWindows:
    """Processes a Hub-schema dataset (one row per episode) or a text dataset into training windows.

    RL episodes: rewards are shifted per episode, then each episode is cut into consecutive windows of
    ``window`` timesteps (``truncation="preserve"``: 1000 steps -> 256 + 256 + 256 + 232). Text rows are
    tokenised and cut into windows of ``window`` tokens (image patches included for captioning).

    Args:
        episodes: A ``datasets.Dataset`` (anything with ``select`` and ``iter(batch_size)``), or a mapping
            column -> list of rows. Atari games are read one at a time, their frames decoded piece by piece.
        processor: The processor (its tokenizer encodes missions and text).
        window: Timesteps per RL window, or tokens per text window.
        name: Task name (for messages and the sampler).
        loss_weight: Weight of the task's loss.
        sample_weight: Relative sampling probability.
        max_episodes: Use only the first that many rows.
        batch_size: Rows processed per processor call.
        augment: RL episodes only: maps a batch of episodes (column -> rows) to extra episodes, processed after
            each batch (e.g. :func:`jat_policy.wrappers.babyai.mirror_episodes`); ``max_episodes`` counts the
            original rows.

    Returns:
        The task's windows.
    """
    if window <= 0:
        raise ValueError(f"window must be a positive number of timesteps/tokens, got {window}.")
    if "image_observations" in getattr(episodes, "column_names", ()):
        episodes, batch_size = _undecoded_images(episodes), 1
    batches = _row_batches(episodes, batch_size, max_episodes)
    buffer = _WindowBuffer()
    kind = None
    for batch in batches:
        kind = kind or ("text" if "text" in batch else "rl")
        if kind == "text":
            _process_text(batch, processor, window, buffer)
        else:
            _process_episodes(batch, processor, window, buffer)
            if augment is not None:
                _process_episodes(augment(batch), processor, window, buffer)
    windows = buffer.finish(name, kind or "rl")
    windows.loss_weight, windows.sample_weight = float(loss_weight), float(sample_weight)
    return windows


def _row_batches(episodes: Any, batch_size: int, max_episodes: int | None) -> Iterable[Mapping[str, list[Any]]]:
    if isinstance(episodes, Mapping):
        count = len(next(iter(episodes.values()))) if episodes else 0
        limit = count if max_episodes is None else min(count, max_episodes)
        return (
            {k: list(v[s : min(s + batch_size, limit)]) for k, v in episodes.items()}
            for s in range(0, limit, batch_size)
        )
    if max_episodes is not None:
        episodes = episodes.select(range(min(max_episodes, len(episodes))))
    return episodes.iter(batch_size=batch_size)


# --------------------------------------------------------------------------------------------------------------
# Dataset, sampler, collator


class MultiTaskDataset(Dataset):
    """All tasks' windows behind one index: ``[task 0 windows, task 1 windows, ...]``.

    Items are ``{"task": t, key: array, ...}`` (unpadded). Use it with :class:`TaskBatchSampler`, which keeps
    every batch inside one task, and :class:`TaskBatchCollator`.

    Args:
        tasks: The tasks' windows.
    """

    def __init__(self, tasks: Sequence[TaskWindows]) -> None:
        if not tasks:
            raise ValueError("MultiTaskDataset needs at least one task.")
        self.tasks = list(tasks)
        sizes = [len(task) for task in self.tasks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def task_sizes(self) -> list[int]:
        """Number of windows of each task."""
        return [len(task) for task in self.tasks]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Global index -> (task index, window index within the task)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows.")
        task = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return task, index - int(self.offsets[task])

    def __getitem__(self, index: int) -> dict[str, Any]:
        task, local = self.locate(int(index))
        return {"task": task, **self.tasks[task].window(local)}


class TaskBatchSampler(Sampler[list[int]]):
    """Yields single-task micro-batches of dataset indices, deterministically from the seed.

    Micro-batch ``i`` picks a task with probability proportional to its sampling weight, then takes the next
    ``batch_size × world_size`` windows from that task's shuffled order (a fresh permutation each time a
    task's windows run out) and hands rank ``r`` the slice ``[r·batch_size, (r+1)·batch_size)``. All draws come
    from generators seeded by ``(seed, epoch)``, and the sequence does not depend on ``num_batches``, so:

    - a resumed run that skips the first ``k`` batches sees what the uninterrupted run saw;
    - ``world_size`` ranks together see exactly the batches of one process with ``world_size × batch_size``.

    With ``task_lengths`` (``transformers``' ``group_by_length`` sampling strategy), a task's windows are drawn
    ``group_batches`` micro-batches at a time, sorted by length, cut into micro-batches of similar lengths and
    handed out in a shuffled order: the same windows are seen as without grouping, but a batch of short
    episodes is no longer padded to the one long episode it happened to draw (BabyAI: 2.7× fewer padded steps).

    Args:
        task_sizes: Windows per task (in :class:`MultiTaskDataset` order).
        weights: Sampling weight per task (need not sum to 1).
        batch_size: Windows per rank per micro-batch.
        num_batches: Micro-batches per epoch (``max_steps × gradient_accumulation_steps`` for one long epoch).
        seed: Seed of the order.
        rank: This process's rank.
        world_size: Number of data-parallel processes.
        task_lengths: Per task, the ``(N,)`` lengths of its windows, to group batches by length; ``None``
            draws every batch at random.
        group_batches: Micro-batches sorted together when grouping by length.

    Example:
        >>> sampler = TaskBatchSampler([10, 3], [1.0, 1.0], batch_size=2, num_batches=4, seed=0)
        >>> [len(batch) for batch in sampler]
        [2, 2, 2, 2]
    """

    def __init__(
        self,
        task_sizes: Sequence[int],
        weights: Sequence[float],
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        task_lengths: Sequence[Sequence[int] | np.ndarray] | None = None,
        group_batches: int = 16,
    ) -> None:
        if len(task_sizes) != len(weights) or not task_sizes:
            raise ValueError(f"got {len(task_sizes)} task sizes and {len(weights)} weights; need one weight per task.")
        if any(size <= 0 for size in task_sizes):
            raise ValueError(f"every task needs at least one window, got sizes {list(task_sizes)}.")
        probs = np.asarray(weights, np.float64)
        if (probs < 0).any() or not probs.sum() > 0:
            raise ValueError(f"sampling weights must be >= 0 with a positive sum, got {list(weights)}.")
        if batch_size <= 0 or num_batches < 0 or not 0 <= rank < world_size:
            raise ValueError(f"bad batch_size={batch_size}, num_batches={num_batches}, rank={rank}/{world_size}.")
        if task_lengths is not None:
            task_lengths = [np.asarray(lengths) for lengths in task_lengths]
            if [len(lengths) for lengths in task_lengths] != [int(size) for size in task_sizes]:
                raise ValueError(
                    f"task_lengths must hold one length per window: got {[len(x) for x in task_lengths]} lengths "
                    f"for task sizes {list(task_sizes)}."
                )
        if group_batches < 1:
            raise ValueError(f"group_batches must be >= 1, got {group_batches}.")
        self.task_lengths, self.group_batches = task_lengths, int(group_batches)
        self.task_sizes = [int(size) for size in task_sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.task_sizes)]).astype(np.int64)
        self.probs = probs / probs.sum()
        self.batch_size, self.num_batches = int(batch_size), int(num_batches)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch (part of the seed); ``transformers.Trainer`` calls it."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def global_batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(task, window indices within the task)`` of every global micro-batch (all ranks together)."""
        chooser = np.random.default_rng([self.seed, self.epoch, 0])
        streams = [_WindowStream(size, [self.seed, self.epoch, 1, task]) for task, size in enumerate(self.task_sizes)]
        grouper = np.random.default_rng([self.seed, self.epoch, 2])
        pending: list[list[np.ndarray]] = [[] for _ in self.task_sizes]
        size = self.batch_size * self.world_size
        for _ in range(self.num_batches):
            task = int(chooser.choice(len(self.task_sizes), p=self.probs))
            if self.task_lengths is None:
                yield task, streams[task].take(size)
                continue
            if not pending[task]:
                windows = streams[task].take(size * self.group_batches)
                windows = windows[np.argsort(self.task_lengths[task][windows], kind="stable")]
                groups = np.split(windows, self.group_batches)  # (group_batches, size) of similar lengths
                pending[task] = [groups[i] for i in grouper.permutation(self.group_batches)]
            yield task, pending[task].pop()

    def __iter__(self) -> Iterator[list[int]]:
        start, stop = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for task, windows in self.global_batches():
            yield (windows[start:stop] + self.offsets[task]).tolist()


class _WindowStream:
    """Endless shuffled passes over one task's windows."""

    def __init__(self, size: int, seed: list[int]) -> None:
        self.size, self.rng = size, np.random.default_rng(seed)
        self.order, self.cursor = self.rng.permutation(size), 0

    def take(self, count: int) -> np.ndarray:
        out = []
        while count > 0:
            if self.cursor == self.size:
                self.order, self.cursor = self.rng.permutation(self.size), 0
            chunk = self.order[self.cursor : self.cursor + count]
            self.cursor += len(chunk)
            count -= len(chunk)
            out.append(chunk)
        return np.concatenate(out)


class TaskBatchCollator:
    """Pads a single-task list of windows into model inputs (``JatProcessor.pad``) and adds the loss weights.

    RL batches get ``loss_weight`` = the task's loss weight on every step (the model masks padding itself);
    uint8 frames become floats in [-1, 1] and int32 ids int64 here.

    Args:
        processor: The processor (padding and pixel scaling rules).
        tasks: The tasks, in :class:`MultiTaskDataset` order (for their kind and loss weight).
    """

    def __init__(self, processor: JatProcessor, tasks: Sequence[TaskWindows]) -> None:
        self.processor = processor
        self.kinds = [task.kind for task in tasks]
        self.loss_weights = [task.loss_weight for task in tasks]

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Collates rows of :class:`MultiTaskDataset` (all from one task)."""
        tasks = {row["task"] for row in rows}
        if len(tasks) != 1:
            raise ValueError(
                f"a batch mixes tasks {sorted(tasks)}: batches must be single-task (use TaskBatchSampler)."
            )
        task = tasks.pop()
        batch = self.processor.pad([{k: v for k, v in row.items() if k != "task"} for row in rows], padding="longest")
        if self.kinds[task] == "rl":
            batch["loss_weight"] = batch["attention_mask"].to(torch.float32) * self.loss_weights[task]  # (B, L)
        batch["return_loss"] = True
        return batch
