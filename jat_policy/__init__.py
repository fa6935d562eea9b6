"""jat-policy: the JAT agent (Jack of All Trades, arXiv 2402.09844) as an everyday RL tool.

Importing this package is cheap: the heavy modules (torch, transformers) load on first use of a
name that needs them, so ``import jat_policy.wrappers`` never imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from jat_policy.utils.lazy import lazy_attributes
from jat_policy.version import __version__

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "JatConfig": "jat_policy.configuration",
    "JatModel": "jat_policy.modeling",
    "JatOutput": "jat_policy.modeling",
    "JatProcessor": "jat_policy.processing",
    "JatPolicy": "jat_policy.policy",
    "make_env": "jat_policy.wrappers",
    "wrap_env": "jat_policy.wrappers",
    "get_task": "jat_policy.tasks",
    "list_tasks": "jat_policy.tasks",
    "register_task": "jat_policy.tasks",
    "load_jat_dataset": "jat_policy.data",
    "collect": "jat_policy.data",
    "evaluate": "jat_policy.evaluation",
    "finetune": "jat_policy.finetune",
    "FinetuneOptions": "jat_policy.finetune",
}

__all__ = [
    "FinetuneOptions",
    "JatConfig",
    "JatModel",
    "JatOutput",
    "JatPolicy",
    "JatProcessor",
    "__version__",
    "collect",
    "evaluate",
    "finetune",
    "get_task",
    "list_tasks",
    "load_jat_dataset",
    "make_env",
    "register_task",
    "wrap_env",
]

if TYPE_CHECKING:  # pragma: no cover
    from jat_policy.configuration import JatConfig
    from jat_policy.data import collect, load_jat_dataset
    from jat_policy.evaluation import evaluate
    from jat_policy.finetune import FinetuneOptions, finetune
    from jat_policy.modeling import JatModel, JatOutput
    from jat_policy.policy import JatPolicy
    from jat_policy.processing import JatProcessor
    from jat_policy.tasks import get_task, list_tasks, register_task
    from jat_policy.wrappers import make_env, wrap_env


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


# Registers the Gymnasium ids jat/<task> (gymnasium + the task table only: no torch, no optional domain), so
# gym.make("jat_policy:jat/atari-pong") works. Gymnasium 1.x has no entry-point plugins: see wrappers/registration.py.
# gymnasium is a dependency; the check only lets the numpy-only parts (jat_policy.evaluation.scores) run without it.
if importlib.util.find_spec("gymnasium") is not None:
    importlib.import_module("jat_policy.wrappers")
