"""Dataset column names and domains: the part of the schema that needs no ``datasets`` import.

Worker processes of the collector import only this (and numpy), so they start fast.
"""

from __future__ import annotations

from jat_policy.tasks import RL_DOMAINS as DOMAINS  # noqa: N811 - the domains with a fixed dataset schema
from jat_policy.tasks import get_task

# step-dict key (wrappers) -> dataset column, in the Hub's column order (BabyAI: text before discrete)
OBSERVATION_COLUMNS: dict[str, str] = {
    "continuous_observation": "continuous_observations",
    "text_observation": "text_observations",
    "discrete_observation": "discrete_observations",
    "image_observation": "image_observations",
}
# action type ("discrete" | "continuous") -> dataset column
ACTION_COLUMNS: dict[str, str] = {"discrete": "discrete_actions", "continuous": "continuous_actions"}
REWARD_COLUMN = "rewards"
IMAGE_SHAPE = (84, 84, 4)  # (H, W, stacked frames); stored as one RGBA image per step

__all__ = ["ACTION_COLUMNS", "DOMAINS", "IMAGE_SHAPE", "OBSERVATION_COLUMNS", "REWARD_COLUMN", "task_domain"]


def task_domain(task: str) -> str | None:
    """The domain of a task: the registry's when it knows the task, else the name's prefix.

    Args:
        task: A task name such as ``"metaworld-reach"``, or any other name.

    Returns:
        One of :data:`DOMAINS`, or ``None`` for tasks outside them (user tasks, Gymnasium ids).
    """
    try:
        domain = get_task(task).domain
    except KeyError:  # task unknown to the registry: fall back to the name
        domain = task.split("-", 1)[0]
    return domain if domain in DOMAINS else None
