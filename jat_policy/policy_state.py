"""The per-env rolling context of a :class:`~jat_policy.policy.JatPolicy`: the state ``predict`` passes around.

The window rule lives here too: at step ``t`` of an episode the model sees timesteps ``s(t) .. t``
(:func:`context_start`), so every context starts at position 0 and holds at most ``W`` timesteps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import Tensor

from jat_policy.cache import WindowBuffers
from jat_policy.checkpoint import space_to_json

__all__ = ["CONSUMED_MESSAGE", "JatPolicyState", "context_start", "context_starts", "state_fingerprint"]


CONSUMED_MESSAGE = (
    "This JatPolicyState was consumed by an earlier predict() call: predict updates the state's key/value buffers in "
    "place and returns the live state. Pass the state returned by the last call (actions, state = "
    "policy.predict(obs, state)), or state.copy() taken beforehand to branch."
)


@dataclass(frozen=True)
class JatPolicyState:
    """Per-env rolling context of a :class:`~jat_policy.policy.JatPolicy`, passed to and returned by ``predict``.

    The keys/values live in :class:`~jat_policy.cache.WindowBuffers` allocated once per rollout and updated in place
    (HF's ``Cache`` convention): ``predict`` consumes the state it is given and returns the live one. Predicting
    from a consumed state raises a ``ValueError``; take :meth:`copy` before the call to branch.

    Attributes:
        context_window: ``W``, the window (in timesteps) the state was built for.
        steps: ``(N,)`` int64, number of observations of the current episode already processed per env
            (the next observation is timestep ``steps[i]``; 0 means a fresh episode).
        context_starts: ``(N,)`` int64, ``s(t)``: the first timestep of each env's current context.
        last_actions: ``(N,)`` int64 action indices or ``(N, k)`` clipped continuous actions returned by the
            last call (fed back as ``a_{t-1}``); ``None`` before the first call.
        buffers: The keys/values of every env's two contexts (rows ``[0, N)`` slot 0, ``[N, 2N)`` slot 1; see
            :mod:`jat_policy.rolling`); ``None`` before the first call.
        primary: ``(N,)`` int64, the slot (0 or 1) holding each env's window.
        policy_fingerprint: :attr:`~jat_policy.policy.JatPolicy.fingerprint` of the policy that built the state
            (model architecture, precision, spaces, context window); ``predict`` rejects a state of another
            policy. ``None`` for a state assembled by hand, which any policy accepts.
    """

    context_window: int
    steps: np.ndarray
    context_starts: np.ndarray
    last_actions: Tensor | None = None
    buffers: WindowBuffers | None = field(default=None, repr=False)
    primary: np.ndarray | None = None
    policy_fingerprint: str | None = None
    token: object = field(default_factory=object, repr=False, compare=False)

    @classmethod
    def initial(cls, n_envs: int, context_window: int, policy_fingerprint: str | None = None) -> JatPolicyState:
        """An empty state for ``n_envs`` envs, all at the start of an episode."""
        zeros = np.zeros(n_envs, dtype=np.int64)
        return cls(context_window, zeros, zeros.copy(), primary=zeros.copy(), policy_fingerprint=policy_fingerprint)

    @property
    def n_envs(self) -> int:
        """Number of envs ``N``."""
        return len(self.steps)

    @property
    def context_lengths(self) -> np.ndarray:
        """``(N,)`` number of timesteps in each env's context after the last step (``t - s(t) + 1``)."""
        return self.steps - self.context_starts

    @property
    def consumed(self) -> bool:
        """Whether a later ``predict`` call took over this state's buffers (the state can no longer be used)."""
        return self.buffers is not None and self.buffers.owner is not self.token

    def check_live(self) -> None:
        """Raises ``ValueError`` if the state was consumed (see :data:`CONSUMED_MESSAGE`)."""
        if self.consumed:
            raise ValueError(CONSUMED_MESSAGE)

    def copy(self) -> JatPolicyState:
        """An independent live copy (its own buffers), e.g. to branch two futures from one past."""
        self.check_live()
        if self.buffers is None:
            return replace(self, token=object())
        buffers = self.buffers.clone()
        copied = replace(self, buffers=buffers, token=object())
        buffers.owner = copied.token
        return copied

    def __repr__(self) -> str:
        buffers = (
            None if self.buffers is None else f"{self.buffers.capacity} columns x {len(self.buffers.lengths)} rows"
        )
        return (
            f"JatPolicyState(n_envs={self.n_envs}, context_window={self.context_window}, steps={self.steps.tolist()}, "
            f"context_lengths={self.context_lengths.tolist()}, buffers={buffers}"
            f"{', consumed' if self.consumed else ''})"
        )


def context_start(t: int, context_window: int) -> int:
    """``s(t)``: first timestep the model sees at step ``t`` of an episode.

    Args:
        t: Timestep index in the episode (0-based).
        context_window: ``W`` in timesteps (even).

    Returns:
        ``0`` while ``t < W``, then ``(t // (W/2) - 1) * (W/2)``: the window holds between ``W/2 + 1`` and
        ``W`` timesteps.

    Example:
        >>> [context_start(t, 4) for t in range(9)]
        [0, 0, 0, 0, 2, 2, 4, 4, 6]
    """
    return int(context_starts(np.asarray([t]), context_window)[0])


def context_starts(steps: np.ndarray, context_window: int) -> np.ndarray:
    """:func:`context_start` of each env's ``(N,)`` timesteps, as ``(N,)`` int64 (the rule is written here once)."""
    half = context_window // 2
    steps = np.asarray(steps, dtype=np.int64)
    return np.where(steps < context_window, 0, (steps // half - 1) * half).astype(np.int64)


# Config fields that shape the KV cache or the meaning of its tokens: a state is tied to these, not to metadata
# (name_or_path, transformers_version, loss coefficients) that differs between a saved and a reloaded policy.
_FINGERPRINT_CONFIG_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "attention_layers",
    "window_size",
    "max_position_embeddings",
    "intermediate_size",
    "activation_function",
    "layer_norm_epsilon",
    "max_continuous_size",
    "max_discrete_value",
    "discrete_slot_size",
    "image_size",
    "patch_size",
    "num_channels",
)


def _describe_space(space: Any) -> Any:
    try:
        return space_to_json(space)
    except ValueError:  # a space policy.json cannot hold (e.g. an unused Tuple entry): its repr still identifies it
        return repr(space)


def state_fingerprint(
    config: dict[str, Any],
    *,
    dtype: Any,
    precision: str,
    observation_space: Any,
    action_space: Any,
    context_window: int,
) -> str:
    """A short digest of what a state depends on: architecture, precision, spaces and context window.

    Weights are left out on purpose: a policy loaded from the same checkpoint with the same spaces accepts the
    state (so would one with other weights of the same architecture, reading the context with its own weights).
    """
    described = {
        "model": {key: config.get(key) for key in _FINGERPRINT_CONFIG_KEYS},
        "dtype": str(dtype),
        "precision": precision,
        "observation_space": _describe_space(observation_space),
        "action_space": _describe_space(action_space),
        "context_window": context_window,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
