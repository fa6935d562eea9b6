"""Behaviour-cloning training of JAT models (``transformers.Trainer`` with single-task batches).

- :func:`~jat_policy.trainers.bc.train` / ``jat-policy train``, options in
  :class:`~jat_policy.trainers.bc.TrainOptions`.
- :mod:`jat_policy.trainers.sampling`: processed windows, the single-task batch sampler, the collator.

Importing this package is cheap; torch and transformers load when a name is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jat_policy.utils.lazy import lazy_attributes

_LAZY = {
    "TrainOptions": "jat_policy.trainers.options",
    "train": "jat_policy.trainers.bc",
    "find_last_checkpoint": "jat_policy.trainers.bc",
    "MultiTaskDataset": "jat_policy.trainers.sampling",
    "TaskBatchCollator": "jat_policy.trainers.sampling",
    "TaskBatchSampler": "jat_policy.trainers.sampling",
    "TaskWindows": "jat_policy.trainers.sampling",
    "build_task_windows": "jat_policy.trainers.sampling",
}

__all__ = [
    "MultiTaskDataset",
    "TaskBatchCollator",
    "TaskBatchSampler",
    "TaskWindows",
    "TrainOptions",
    "build_task_windows",
    "find_last_checkpoint",
    "train",
]

if TYPE_CHECKING:  # pragma: no cover
    from jat_policy.trainers.bc import TrainOptions, find_last_checkpoint, train
    from jat_policy.trainers.sampling import (
        MultiTaskDataset,
        TaskBatchCollator,
        TaskBatchSampler,
        TaskWindows,
        build_task_windows,
    )


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
