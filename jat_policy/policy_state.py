"""The per-env rolling context of a :class:`~jat_policy.policy.JatPolicy`: the state ``predict`` passes around.

The window rule lives here too: at step ``t`` of an episode the model sees timesteps ``s(t) .. t``
(:func:`context_start`), so every context starts at position 0 and holds at most ``W`` timesteps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from jat_policy.cache import KVCache

__all__ = ["JatPolicyState", "context_start", "context_starts"]


@dataclass(frozen=True)
class JatPolicyState:
    """Per-env rolling context of a :class:`~jat_policy.policy.JatPolicy`, passed to and returned by ``predict``.

    ``predict`` never modifies the state it is given: it returns a new one (tensors that did not change
    are shared). Keeping an old state and predicting from it again is therefore safe (e.g. to branch).

    Attributes:
        context_window: ``W``, the window (in timesteps) the state was built for.
        steps: ``(N,)`` int64, number of observations of the current episode already processed per env
            (the next observation is timestep ``steps[i]``; 0 means a fresh episode).
        context_starts: ``(N,)`` int64, ``s(t)``: the first timestep of each env's current context.
        tokens: Per env, the input embeddings ``(H,)`` of the context's tokens in position order
            ``[o_s, a_s, ..., o_t]`` (at most ``2 W - 1``), kept to re-encode the newest half when the window
            rolls over.
        last_actions: ``(N,)`` int64 action indices or ``(N, k)`` clipped continuous actions returned by the
            last call (fed back as ``a_{t-1}``); ``None`` before the first call.
        cache: The :class:`~jat_policy.cache.KVCache` of every env's context (rows left-padded with
            invalid slots); ``None`` before the first call.
        policy_fingerprint: :attr:`~jat_policy.policy.JatPolicy.fingerprint` of the policy that built the state
            (model architecture, weight dtype, spaces, context window); ``predict`` rejects a state of another
            policy. ``None`` for a state assembled by hand, which any policy accepts.
    """

    context_window: int
    steps: np.ndarray
    context_starts: np.ndarray
    tokens: tuple[tuple[Tensor, ...], ...]
    last_actions: Tensor | None = None
    cache: KVCache | None = field(default=None, repr=False)
    policy_fingerprint: str | None = None

    @classmethod
    def initial(cls, n_envs: int, context_window: int, policy_fingerprint: str | None = None) -> JatPolicyState:
        """An empty state for ``n_envs`` envs, all at the start of an episode."""
        zeros = np.zeros(n_envs, dtype=np.int64)
        tokens = tuple(() for _ in range(n_envs))
        return cls(context_window, zeros, zeros.copy(), tokens, policy_fingerprint=policy_fingerprint)

    @property
    def n_envs(self) -> int:
        """Number of envs ``N``."""
        return len(self.steps)

    @property
    def context_lengths(self) -> np.ndarray:
        """``(N,)`` number of timesteps in each env's context after the last step (``t - s(t) + 1``)."""
        return self.steps - self.context_starts

    def __repr__(self) -> str:
        cache = None if self.cache is None else f"{self.cache.length} slots"
        return (
            f"JatPolicyState(n_envs={self.n_envs}, context_window={self.context_window}, steps={self.steps.tolist()}, "
            f"context_lengths={self.context_lengths.tolist()}, cache={cache})"
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
    half = context_window // 2
    return 0 if t < context_window else (t // half - 1) * half


def context_starts(steps: np.ndarray, context_window: int) -> np.ndarray:
    """:func:`context_start` of each env's ``(N,)`` timesteps."""
    return np.array([context_start(int(t), context_window) for t in steps], dtype=np.int64)
