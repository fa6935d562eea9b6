"""Expert demonstrations in the Hub's schema (``jat-project/jat-dataset``): load, validate, collect.

- :func:`load_jat_dataset` reads a task from the Hub or from local data written by :func:`collect`
  (same columns and feature types either way) and validates it.
- :func:`validate_dataset` / :func:`validate_episode` check a dataset against a task's schema
  (:data:`ATARI_FEATURES`, :data:`BABYAI_FEATURES`, :data:`METAWORLD_FEATURES`, :data:`MUJOCO_FEATURES`).
- :func:`collect` runs any ``expert(step_dict) -> action`` in wrapped envs (in parallel) and writes
  episodes + reference scores (:func:`load_reference_scores`).
- Experts: :class:`BabyAIBotExpert`, :class:`MetaWorldScriptedExpert`, :class:`SB3Expert`,
  :class:`RandomExpert`, the Atari RAM experts :class:`PongRamExpert` and :class:`BreakoutRamExpert`,
  :func:`make_expert`; :func:`train_expert` trains an SB3 one.

Every name loads on first use (a collector's worker process imports only
:mod:`jat_policy.data.rollout`, without ``datasets``); environment packages load when an env is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jat_policy.utils.lazy import lazy_attributes

_MODULES: dict[str, list[str]] = {
    "jat_policy.data.images": ["encode_frame", "frame_to_image", "frame_to_png", "image_to_frame"],
    "jat_policy.data.loading": [
        "HUB_REPO_ID",
        "ReferenceScores",
        "find_local_dataset",
        "load_jat_dataset",
        "load_metadata",
        "load_reference_scores",
    ],
    "jat_policy.data.schema": [
        "ATARI_FEATURES",
        "BABYAI_FEATURES",
        "DOMAIN_SCHEMAS",
        "METAWORLD_FEATURES",
        "MUJOCO_FEATURES",
        "DatasetValidationError",
        "EpisodeSchema",
        "get_features",
        "schema_for_task",
    ],
    "jat_policy.data.hub": ["push_to_hub"],
    "jat_policy.data.storage": ["METADATA_FILE", "save_dataset"],
    "jat_policy.data.validation": ["validate_dataset", "validate_episode", "validate_features"],
    "jat_policy.data.collect": ["CollectResult", "collect"],
    "jat_policy.data.atari_experts": ["BreakoutRamExpert", "PongRamExpert"],
    "jat_policy.data.experts": [
        "BabyAIBotExpert",
        "Expert",
        "ExpertFailure",
        "MetaWorldScriptedExpert",
        "RandomExpert",
        "make_expert",
    ],
    "jat_policy.data.sb3_experts": ["SB3Expert"],
    "jat_policy.data.train_expert": ["train_expert"],
}
# public name -> module defining it
_LAZY: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ATARI_FEATURES",
    "BABYAI_FEATURES",
    "DOMAIN_SCHEMAS",
    "HUB_REPO_ID",
    "METADATA_FILE",
    "METAWORLD_FEATURES",
    "MUJOCO_FEATURES",
    "BabyAIBotExpert",
    "BreakoutRamExpert",
    "CollectResult",
    "DatasetValidationError",
    "EpisodeSchema",
    "Expert",
    "ExpertFailure",
    "MetaWorldScriptedExpert",
    "PongRamExpert",
    "RandomExpert",
    "ReferenceScores",
    "SB3Expert",
    "collect",
    "encode_frame",
    "find_local_dataset",
    "frame_to_image",
    "frame_to_png",
    "get_features",
    "image_to_frame",
    "load_jat_dataset",
    "load_metadata",
    "load_reference_scores",
    "make_expert",
    "push_to_hub",
    "save_dataset",
    "schema_for_task",
    "train_expert",
    "validate_dataset",
    "validate_episode",
    "validate_features",
]

if TYPE_CHECKING:  # pragma: no cover
    from jat_policy.data.atari_experts import BreakoutRamExpert, PongRamExpert
    from jat_policy.data.collect import CollectResult, collect
    from jat_policy.data.experts import (
        BabyAIBotExpert,
        Expert,
        ExpertFailure,
        MetaWorldScriptedExpert,
        RandomExpert,
        make_expert,
    )
    from jat_policy.data.hub import push_to_hub
    from jat_policy.data.images import encode_frame, frame_to_image, frame_to_png, image_to_frame
    from jat_policy.data.loading import (
        HUB_REPO_ID,
        ReferenceScores,
        find_local_dataset,
        load_jat_dataset,
        load_metadata,
        load_reference_scores,
    )
    from jat_policy.data.sb3_experts import SB3Expert
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
    from jat_policy.data.storage import METADATA_FILE, save_dataset
    from jat_policy.data.train_expert import train_expert
    from jat_policy.data.validation import validate_dataset, validate_episode, validate_features


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
