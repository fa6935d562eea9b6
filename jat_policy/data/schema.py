"""The Hub's episode schema (``jat-project/jat-dataset``): columns, feature types and expected sizes.

One row is one episode; every column holds one entry per timestep, and all columns of a row have
the same length T (the terminal observation is not stored). ``rewards[t]`` is the reward received
after ``actions[t]`` was taken in ``observations[t]``: rewards are stored unshifted, the processor
shifts them. Columns per domain:

============  ======================================================================================
atari         ``image_observations`` List(Image) (84x84 RGBA PNG = 4 stacked grayscale frames, oldest
              in R, newest in A), ``discrete_actions`` List(int64), ``rewards`` List(float32)
babyai        ``text_observations`` List(string) (the mission, every step), ``discrete_observations``
              List(List(int64)) (148 = direction + 7x7x3 grid), ``discrete_actions``, ``rewards``
metaworld     ``continuous_observations`` List(List(float32)) (raw obs, no reward appended),
mujoco        ``continuous_actions`` List(List(float32)), ``rewards`` List(float32)
============  ======================================================================================

Environments outside the four domains (any Gymnasium env run through ``wrap_env``) use the same
column names, picked from the observation keys their wrapper produces.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from datasets import Features, Image, List, Value

from jat_policy.data.columns import (  # noqa: F401 (re-exported: the schema's names live here too)
    ACTION_COLUMNS,
    DOMAINS,
    IMAGE_SHAPE,
    OBSERVATION_COLUMNS,
    REWARD_COLUMN,
    task_domain,
)

_COLUMN_FEATURES: dict[str, Any] = {
    "continuous_observations": List(List(Value("float32"))),
    "discrete_observations": List(List(Value("int64"))),
    "text_observations": List(Value("string")),
    "image_observations": List(Image()),
    "continuous_actions": List(List(Value("float32"))),
    "discrete_actions": List(Value("int64")),
    REWARD_COLUMN: List(Value("float32")),
}
# (observation size, action size) of the Hub's MuJoCo data: gymnasium v4 envs (Pusher: v5, same sizes)
HUB_MUJOCO_SIZES: dict[str, tuple[int, int]] = {
    "mujoco-ant": (27, 8),
    "mujoco-doublependulum": (11, 1),
    "mujoco-halfcheetah": (17, 6),
    "mujoco-hopper": (11, 3),
    "mujoco-humanoid": (376, 17),
    "mujoco-pendulum": (4, 1),
    "mujoco-pusher": (23, 7),
    "mujoco-reacher": (11, 2),
    "mujoco-standup": (376, 17),
    "mujoco-swimmer": (8, 2),
    "mujoco-walker": (17, 6),
}


@dataclasses.dataclass(frozen=True)
class EpisodeSchema:
    """What one episode row of a task's dataset must look like.

    Attributes:
        observation_columns: Observation columns, e.g. ``("continuous_observations",)``.
        action_column: ``"discrete_actions"`` or ``"continuous_actions"``.
        observation_size: Values per step of the continuous or discrete observation column
            (raw size, without the reward the wrappers append); ``None`` = only check that all
            steps agree.
        action_size: Values per step of ``continuous_actions``; ``None`` = only check agreement.
        num_actions: Discrete actions must lie in ``[0, num_actions)``; ``None`` = only check ``>= 0``.
        source: Where the sizes come from (shown in error messages), e.g. ``"Hub mujoco v4 sizes"``.
        observation_high: Discrete observation values must lie in ``[0, observation_high)``; ``None`` =
            ``[0, 50257)``, the GPT-2 vocabulary JAT embeds them with (the collectors store the env's bound).
        action_low: Lower bound of continuous actions, one per action value (the env's ``Box.low``); ``None`` =
            unbounded.
        action_high: Upper bound of continuous actions; ``None`` = unbounded.

    Example:
        >>> schema = EpisodeSchema(("continuous_observations",), "continuous_actions", 39, 4)
        >>> schema.columns
        ('continuous_observations', 'continuous_actions', 'rewards')
    """

    observation_columns: tuple[str, ...]
    action_column: str
    observation_size: int | None = None
    action_size: int | None = None
    num_actions: int | None = None
    source: str = ""
    observation_high: int | None = None
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.observation_columns if c not in OBSERVATION_COLUMNS.values()]
        if unknown or not self.observation_columns:
            raise ValueError(
                f"observation_columns={self.observation_columns!r}: expected a non-empty subset of "
                f"{sorted(OBSERVATION_COLUMNS.values())}."
            )
        if self.action_column not in ACTION_COLUMNS.values():
            raise ValueError(
                f"action_column={self.action_column!r}: expected one of {sorted(ACTION_COLUMNS.values())}."
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """All required columns: observations, action, rewards."""
        return (*self.observation_columns, self.action_column, REWARD_COLUMN)

    def features(self) -> Features:
        """The ``datasets.Features`` of this schema (the Hub's feature types)."""
        return Features({column: _COLUMN_FEATURES[column] for column in self.columns})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (stored in ``jat_metadata.json``)."""
        out = dataclasses.asdict(self)
        for name in ("observation_columns", "action_low", "action_high"):
            out[name] = None if out[name] is None else list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeSchema:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["observation_columns"] = tuple(kwargs.get("observation_columns", ()))
        for name in ("action_low", "action_high"):  # absent in metadata written before 0.2: unbounded
            if kwargs.get(name) is not None:
                kwargs[name] = tuple(float(v) for v in kwargs[name])
        return cls(**kwargs)


ATARI_SCHEMA = EpisodeSchema(("image_observations",), "discrete_actions", num_actions=18, source="ALE full action set")
BABYAI_SCHEMA = EpisodeSchema(
    ("text_observations", "discrete_observations"),
    "discrete_actions",
    148,
    num_actions=7,
    source="BabyAI",
    observation_high=256,  # minigrid's grid bytes
)
METAWORLD_SCHEMA = EpisodeSchema(
    ("continuous_observations",),
    "continuous_actions",
    39,
    4,
    source="Meta-World",
    action_low=(-1.0,) * 4,  # every Meta-World v2/v3 env acts in Box(-1, 1, (4,))
    action_high=(1.0,) * 4,
)
# MuJoCo sizes differ per task; see :func:`schema_for_task`.
MUJOCO_SCHEMA = EpisodeSchema(("continuous_observations",), "continuous_actions", source="MuJoCo")
DOMAIN_SCHEMAS: dict[str, EpisodeSchema] = {
    "atari": ATARI_SCHEMA,
    "babyai": BABYAI_SCHEMA,
    "metaworld": METAWORLD_SCHEMA,
    "mujoco": MUJOCO_SCHEMA,
}
ATARI_FEATURES = ATARI_SCHEMA.features()
BABYAI_FEATURES = BABYAI_SCHEMA.features()
METAWORLD_FEATURES = METAWORLD_SCHEMA.features()
MUJOCO_FEATURES = MUJOCO_SCHEMA.features()


def get_features(domain_or_task: str) -> Features:
    """The Hub's ``datasets.Features`` for a domain (``"atari"``) or a task (``"atari-pong"``).

    Args:
        domain_or_task: A domain in :data:`DOMAINS` or a task name of one.

    Returns:
        The features (column -> feature type).

    Raises:
        ValueError: For tasks outside the four domains (their columns depend on the env; use
            ``EpisodeSchema(...).features()``).
    """
    domain = domain_or_task if domain_or_task in DOMAINS else task_domain(domain_or_task)
    if domain is None:
        raise ValueError(
            f"No fixed schema for {domain_or_task!r}: expected a domain in {DOMAINS} or one of their tasks. "
            "For other envs build one with EpisodeSchema(observation_columns, action_column).features()."
        )
    return DOMAIN_SCHEMAS[domain].features()


def schema_for_task(task: str) -> EpisodeSchema | None:
    """The schema of a Hub task, with the sizes of the Hub's data.

    Args:
        task: A task name.

    Returns:
        The schema, or ``None`` when the task is outside the four domains (then the schema comes
        from the dataset's ``jat_metadata.json`` or from its columns).
    """
    domain = task_domain(task)
    if domain is None:
        return None
    schema = DOMAIN_SCHEMAS[domain]
    if domain == "atari" and (n := _atari_num_actions(task)) is not None:
        schema = dataclasses.replace(schema, num_actions=n, source="the game's minimal action set (ALE v5)")
    if domain == "mujoco" and task in HUB_MUJOCO_SIZES:
        obs_size, act_size = HUB_MUJOCO_SIZES[task]
        schema = dataclasses.replace(schema, observation_size=obs_size, action_size=act_size, source="Hub MuJoCo v4")
    return schema


@functools.cache
def _atari_num_actions(task: str) -> int | None:
    """Actions of a game's minimal action set, the one the Hub's data uses (Pong: 6); ``None`` without ale-py."""
    try:
        import ale_py
        import gymnasium as gym

        from jat_policy.tasks import get_task

        gym.register_envs(ale_py)
        env = gym.make(get_task(task).env_id)
    except Exception:  # noqa: BLE001 (no ale-py, unknown game: fall back to the full action set's 18)
        return None
    try:
        return int(env.action_space.n)
    finally:
        env.close()


def infer_schema(features: Mapping[str, Any]) -> EpisodeSchema:
    """Guesses a schema from the columns a dataset has (sizes left to the agreement checks).

    Args:
        features: The dataset's features (or any mapping with its column names as keys).

    Returns:
        The schema made of the known columns present.

    Raises:
        DatasetValidationError: Without rewards, exactly one action column and an observation column.
    """
    observations = tuple(c for c in OBSERVATION_COLUMNS.values() if c in features)
    actions = [c for c in ACTION_COLUMNS.values() if c in features]
    if not observations or len(actions) != 1 or REWARD_COLUMN not in features:
        raise DatasetValidationError(
            f"Not a JAT episode dataset: columns {sorted(features)}; expected 'rewards', one of "
            f"{sorted(ACTION_COLUMNS.values())} and at least one of {sorted(OBSERVATION_COLUMNS.values())}."
        )
    return EpisodeSchema(observations, actions[0], source="inferred from the columns")


def guess_domain(columns: Any) -> str:
    """Names the domain a set of columns looks like (for error messages)."""
    columns = set(columns)
    for domain in ("atari", "babyai"):
        if set(DOMAIN_SCHEMAS[domain].observation_columns) <= columns:
            return domain
    if "continuous_observations" in columns:
        return "metaworld/mujoco"
    return "unknown"


class DatasetValidationError(ValueError):
    """A dataset does not follow the JAT episode schema.

    Attributes:
        episode: Index of the offending episode (row) in the split, when the error is per episode.
        column: The offending column, when known.
        step: The offending timestep inside the episode, when known.
    """

    def __init__(
        self,
        message: str,
        episode: int | None = None,
        column: str | None = None,
        step: int | None = None,
        context: str | None = None,
    ):
        where = [context] if context else []
        if episode is not None:
            where.append(f"episode {episode}")
        if column is not None:
            where.append(f"column {column!r}")
        if step is not None:
            where.append(f"step {step}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.detail, self.episode, self.column, self.step = message, episode, column, step
        self.context = context

    def with_context(self, context: str) -> DatasetValidationError:
        """The same error with ``context`` (e.g. the task and split) in front of the message."""
        return DatasetValidationError(self.detail, self.episode, self.column, self.step, context)
