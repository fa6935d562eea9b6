"""Expert demonstrations in the Hub's schema (``jat-project/jat-dataset``): load, validate, collect.

- :func:`load_jat_dataset` reads a task from the Hub or from local data written by :func:`collect`
  (same columns and feature types either way) and validates it.
- :func:`validate_dataset` / :func:`validate_episode` check a dataset against a task's schema
  (:data:`ATARI_FEATURES`, :data:`BABYAI_FEATURES`, :data:`METAWORLD_FEATURES`, :data:`MUJOCO_FEATURES`).
- :func:`collect` runs any ``expert(step_dict) -> action`` in wrapped envs (in parallel) and writes
  episodes + reference scores (:func:`load_reference_scores`).
- Experts: :class:`BabyAIBotExpert`, :class:`MetaWorldScriptedExpert`, :class:`SB3Expert`,
  :class:`RandomExpert`, :func:`make_expert`; :func:`train_expert` trains an SB3 one.

``collect`` and the experts load their environment packages lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jat_policy.data.images import encode_frame, frame_to_image, frame_to_png, image_to_frame
from jat_policy.data.loading import (
    HUB_REPO_ID,
    ReferenceScores,
    find_local_dataset,
    load_jat_dataset,
    load_metadata,
    load_reference_scores,
)
from jat_policy.data.schema import (
    ATARI_FEATURES,
    BABYAI_FEATURES,
    DOMAIN_SCHEMAS,
    METAWORLD_FEATURES,
    MUJOCO_FEATURES,
    DatasetValidationError,
    EpisodeSchema,
    get_features,
    schema_for_task,
)
from jat_policy.data.storage import METADATA_FILE, push_to_hub, save_dataset
from jat_policy.data.validation import validate_dataset, validate_episode, validate_features

# names whose modules import gymnasium & co: loaded on first use
_LAZY = {
    "collect": "jat_policy.data.collect",
    "CollectResult": "jat_policy.data.collect",
    "Expert": "jat_policy.data.experts",
    "ExpertFailure": "jat_policy.data.experts",
    "BabyAIBotExpert": "jat_policy.data.experts",
    "MetaWorldScriptedExpert": "jat_policy.data.experts",
    "SB3Expert": "jat_policy.data.experts",
    "RandomExpert": "jat_policy.data.experts",
    "make_expert": "jat_policy.data.experts",
    "train_expert": "jat_policy.data.experts",
}

__all__ = [
    "ATARI_FEATURES",
    "BABYAI_FEATURES",
    "DOMAIN_SCHEMAS",
    "HUB_REPO_ID",
    "METADATA_FILE",
    "METAWORLD_FEATURES",
    "MUJOCO_FEATURES",
    "DatasetValidationError",
    "EpisodeSchema",
    "ReferenceScores",
    "encode_frame",
    "find_local_dataset",
    "frame_to_image",
    "frame_to_png",
    "get_features",
    "image_to_frame",
    "load_jat_dataset",
    "load_metadata",
    "load_reference_scores",
    "push_to_hub",
    "save_dataset",
    "schema_for_task",
    "validate_dataset",
    "validate_episode",
    "validate_features",
    # lazy
    "BabyAIBotExpert",
    "CollectResult",
    "Expert",
    "ExpertFailure",
    "MetaWorldScriptedExpert",
    "RandomExpert",
    "SB3Expert",
    "collect",
    "make_expert",
    "train_expert",
]

if TYPE_CHECKING:  # pragma: no cover
    from jat_policy.data.collect import CollectResult, collect
    from jat_policy.data.experts import (
        BabyAIBotExpert,
        Expert,
        ExpertFailure,
        MetaWorldScriptedExpert,
        RandomExpert,
        SB3Expert,
        make_expert,
        train_expert,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jat_policy.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
