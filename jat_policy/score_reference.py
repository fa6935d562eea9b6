"""The one type for a task's reference scores (random / expert / human), shared by every part of the library.

The task registry (:attr:`jat_policy.tasks.TaskSpec.reference`), the datasets' stored scores
(:attr:`jat_policy.data.ReferenceScores.reference`) and evaluation (:func:`jat_policy.evaluation.normalize`) all
hand out a :class:`ScoreReference`. Standard library only, so :mod:`jat_policy.tasks` can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScoreReference"]

# Spellings older code and users pass in mappings or duck-typed objects (TaskSpec used *_score, the dataset
# record *_mean). Accepted on input only; every ScoreReference spells them random/expert/human.
_ALIASES = {who: (who, f"{who}_score", f"{who}_mean") for who in ("random", "expert", "human")}


@dataclass(frozen=True)
class ScoreReference:
    """Raw scores that normalise a task's returns.

    Attributes:
        random: Mean return of a uniform random policy.
        expert: Mean return of the expert that produced the dataset.
        human: Mean human score (Atari only), or None.
        source: Where the numbers come from: ``"registry"``, ``"dataset"`` or ``"user"``.
        env_id: The environment (with its version) the scores were measured on, when known: a score normalised
            by Meta-World v2 experts (the registry's) is not one normalised by v3 experts.
        origin: Which registry file or dataset directory holds them, when known.

    ``env_id`` and ``origin`` describe the numbers and are left out of ``==``.

    Example:
        >>> ScoreReference.coerce({"random": 0, "expert": 10}, "user")
        ScoreReference(random=0.0, expert=10.0, human=None, source='user', env_id=None, origin=None)
    """

    random: float
    expert: float
    human: float | None = None
    source: str = "user"
    env_id: str | None = field(default=None, compare=False)
    origin: str | None = field(default=None, compare=False)

    @classmethod
    def coerce(cls, value: Any, source: str = "user") -> ScoreReference | None:
        """Reads a ScoreReference, a ``(random, expert[, human])`` tuple, a mapping or an object with scores.

        Args:
            value: The scores in any of those forms; objects with a ``reference`` attribute (TaskSpec, the
                dataset record) give that.
            source: Recorded on the result.

        Returns:
            The scores, or None when ``value`` is None or (for a non-user source) lacks a random/expert score.

        Raises:
            ValueError: For user-given scores without a random and an expert score.
        """
        if value is None or isinstance(value, ScoreReference):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (2, 3):
            return cls._checked(*value[:3], source=source, given=value)
        if not isinstance(value, Mapping):
            if hasattr(value, "reference"):
                return value.reference
            value = {key: getattr(value, key) for keys in _ALIASES.values() for key in keys if hasattr(value, key)}
        found = {
            who: next((value[k] for k in keys if value.get(k) is not None), None) for who, keys in _ALIASES.items()
        }
        return cls._checked(found["random"], found["expert"], found["human"], source=source, given=value)

    @classmethod
    def _checked(
        cls, random: Any, expert: Any, human: Any = None, *, source: str, given: Any
    ) -> ScoreReference | None:
        if random is None or expert is None:
            if source == "user":
                raise ValueError(
                    "Reference scores must give a random and an expert score, e.g. (random, expert) or "
                    f"{{'random': r, 'expert': e}}; got {given!r}."
                )
            return None
        return cls(float(random), float(expert), None if human is None else float(human), source)
