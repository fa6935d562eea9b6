"""Evaluation: vectorised rollouts, raw and normalised scores, IQM with bootstrap CIs, plots, CLI.

One module per concept, each importable on its own:

* :mod:`~jat_policy.evaluation.scores`: reference scores, normalisation, IQM / mean with CIs (numpy only);
* :mod:`~jat_policy.evaluation.rollout`: :func:`evaluate` over anything with SB3's ``predict`` (gymnasium);
* :mod:`~jat_policy.evaluation.results`: :class:`TaskResult`, :class:`EvaluationResult`, strict JSON;
* :mod:`~jat_policy.evaluation.plots`: the paper's figures (matplotlib);
* :mod:`~jat_policy.evaluation.report`: the printed results table, with the source of every reference score;
* :mod:`~jat_policy.evaluation.video`: episodes as MP4 (Gymnasium's ``RecordVideo``, imageio-ffmpeg) and GIFs;
* :mod:`~jat_policy.evaluation.cli`: ``jat-policy evaluate``.

The names below are re-exported lazily, so ``import jat_policy.evaluation.scores`` needs neither gymnasium nor
torch.

Example:
    >>> import gymnasium as gym
    >>> from jat_policy.evaluation import RandomPolicy, evaluate
    >>> result = evaluate(
    ...     lambda task, env: RandomPolicy(env.action_space, seed=0),
    ...     "cartpole", n_episodes=4, n_envs=2, seed=0, progress=False,
    ...     env_fn=lambda task: gym.make("CartPole-v1"), reference_scores={"cartpole": (22.0, 500.0)},
    ... )
    >>> len(result.tasks["cartpole"].returns)
    4
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AggregateScore": "scores",
    "NormalizedScores": "scores",
    "ScoreReference": "scores",
    "aggregate_scores": "scores",
    "get_reference_scores": "scores",
    "normalize": "scores",
    "normalize_score": "scores",
    "EvaluationResult": "results",
    "TaskResult": "results",
    "aggregate_results": "results",
    "Predictor": "rollout",
    "RandomPolicy": "rollout",
    "evaluate": "rollout",
    "expand_tasks": "rollout",
    "jat_policy_factory": "rollout",
    "random_policy_factory": "rollout",
    "plot_results": "plots",
    "format_results": "report",
    "RecordEpisodeVideo": "video",
    "EvaluateArgs": "cli",
    "cli_main": "cli",
}

_SUBMODULES = ("scores", "results", "rollout", "plots", "report", "video", "cli")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
