"""KV caches: the model's :class:`KVCache`, and :class:`WindowBuffers`, the preallocated keys/values of a policy state.

:class:`KVCache` is what :class:`~jat_policy.backbone.JatTransformer` reads and returns. :class:`WindowBuffers` holds
the keys/values of every context of a :class:`~jat_policy.policy.JatPolicy` rollout in fixed-size tensors allocated
once per state: a step writes its new tokens in place (HF's ``Cache`` convention), so no step copies the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["KVCache", "KVExtend", "KVRows", "KVSpans", "RowSpan", "WindowBuffers"]


@dataclass
class KVCache:
    """Keys and values of past tokens, with their positions and validity.

    Rows of a batch may hold contexts of different lengths: a row's unused slots are marked
    invalid (left padding), so one forward pass serves every row.

    Attributes:
        keys: One tensor per layer, ``(B, heads, S, head_dim)``.
        values: One tensor per layer, ``(B, heads, S, head_dim)``.
        positions: ``(B, S)`` position id of each cached token.
        valid: ``(B, S)`` bool, False for padding slots.
    """

    keys: list[Tensor]
    values: list[Tensor]
    positions: Tensor
    valid: Tensor

    @property
    def length(self) -> int:
        """Number of cached slots ``S`` (valid or not)."""
        return self.positions.shape[1]

    def next_positions(self) -> Tensor:
        """``(B,)`` position following the last valid token of each row (0 for an empty row)."""
        last = torch.where(self.valid, self.positions, torch.full_like(self.positions, -1))
        return last.max(dim=1).values + 1

    # The attention layers append new keys/values through this hook (JatPolicy's in-place step passes
    # WindowBuffers.write instead).
    def extend(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Cached keys/values of ``layer`` followed by the new ``(B, heads, T, hd)`` ones (here: a concatenation).

        Args:
            layer: Layer index.
            keys: New keys ``(B, heads, T, hd)``.
            values: New values ``(B, heads, T, hd)``.

        Returns:
            Keys and values ``(B, heads, S + T, hd)``.
        """
        return torch.cat((self.keys[layer], keys), dim=2), torch.cat((self.values[layer], values), dim=2)


@dataclass(frozen=True)
class RowSpan:
    """Consecutive rows ``rows`` of a batch that attend over key columns ``[start, stop)`` only.

    Attributes:
        rows: The rows, a ``slice`` of the batch.
        start: First key column the rows attend over.
        stop: One past the last.
        bias: ``(rows, 1, T, stop - start)`` additive attention bias over those columns.
    """

    rows: slice
    start: int
    stop: int
    bias: Tensor


@dataclass(frozen=True)
class KVSpans:
    """What a layer attends over when rows of one batch read different key columns (see :class:`RowSpan`).

    Attributes:
        spans: The row spans, covering the batch's rows in order.
        keys: ``(rows, heads, stop - start, hd)`` per span (views of the layer's buffers, no copy).
        values: The same for the values.
    """

    spans: list[RowSpan]
    keys: list[Tensor]
    values: list[Tensor]


@dataclass(frozen=True)
class KVRows:
    """What a layer attends over when every row reads its own key columns of the buffers (:mod:`jat_policy.kernels`).

    Attributes:
        keys: The layer's whole ``(R, heads, C, hd)`` key buffer.
        values: The same for the values.
        lo: ``(R, T)`` first key column each new token attends over (:func:`~jat_policy.kernels.key_ranges`).
        hi: ``(R, T)`` one past its last.
    """

    keys: Tensor
    values: Tensor
    lo: np.ndarray
    hi: np.ndarray


KVExtend = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor] | KVSpans | KVRows"]
"""``(new keys, new values) -> (all keys, all values)`` of one layer (:meth:`KVCache.extend` bound to it), or what
each row of the buffers attends over (:meth:`WindowBuffers.write`): :class:`KVSpans` per group of rows, or
:class:`KVRows`."""


# --------------------------------------------------------------------------------------------------
# Preallocated per-state buffers (rows = contexts), for JatPolicy's rolling context
# --------------------------------------------------------------------------------------------------


@dataclass
class WindowBuffers:
    """Keys/values of ``R`` contexts in preallocated ``(R, heads, C, hd)`` tensors, one pair per layer.

    Column ``j`` of a row holds the context's token at position ``j`` (contexts start at position 0), so a row is
    fully described by its length: columns ``[0, length)`` are valid. The last column ``C - 1`` is never a valid
    token: tokens that only fill a batch slot (a masked ``a_{t-1}`` before an episode's first observation) are
    written there. :meth:`write` updates the tensors in place; the buffers therefore belong to one live state at a
    time (``owner``), and :meth:`clone` copies them for a branch.

    Attributes:
        keys: One ``(R, heads, C, hd)`` tensor per layer.
        values: One ``(R, heads, C, hd)`` tensor per layer.
        lengths: ``(R,)`` int64 (host), valid columns of each row.
        owner: The token of the state allowed to use (and update) the buffers.
        graphs: Captured step graphs keyed by their static shapes (CUDA graphs, see :mod:`jat_policy.rolling`).
    """

    keys: list[Tensor]
    values: list[Tensor]
    lengths: np.ndarray
    owner: object = None
    graphs: dict = field(default_factory=dict, repr=False)

    @classmethod
    def allocate(
        cls, rows: int, layers: int, heads: int, head_dim: int, capacity: int, dtype: torch.dtype, device: torch.device
    ) -> WindowBuffers:
        """Zeroed buffers (unused columns must hold finite numbers: masked logits still multiply them)."""
        shape = (rows, heads, capacity, head_dim)
        keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        return cls(keys, values, np.zeros(rows, dtype=np.int64))

    @property
    def capacity(self) -> int:
        """Columns ``C`` per row."""
        return self.keys[0].shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def slots(self, columns: Tensor) -> Tensor:
        """Where new tokens at ``columns`` ``(R, T)`` go in a layer's ``(R * heads * C, hd)`` flat view.

        Returns:
            ``(R * heads * T,)`` int64 indices, in the order of ``(R, heads, T, hd)`` keys flattened: computed once per
            step, since every layer writes the same columns.
        """
        rows, heads, capacity, _ = self.keys[0].shape
        device = columns.device
        base = torch.arange(rows, device=device)[:, None] * heads + torch.arange(heads, device=device)  # (R, heads)
        return (base[:, :, None] * capacity + columns[:, None, :]).reshape(-1)

    def write(
        self,
        layer: int,
        slots: Tensor,
        reads: list[RowSpan] | tuple[np.ndarray, np.ndarray],
        keys: Tensor,
        values: Tensor,
    ) -> KVSpans | KVRows:
        """Writes the new ``(R, heads, T, hd)`` keys/values of ``layer`` at ``slots`` (:meth:`slots`), in place.

        Args:
            layer: The layer.
            slots: Where the new tokens go (:meth:`slots`).
            reads: What the rows attend over next: groups of rows (:class:`RowSpan`), or each token's key columns
                ``(lo, hi)`` (:func:`~jat_policy.kernels.key_ranges`).
            keys: The new keys.
            values: The new values.

        Returns:
            Each span's rows and columns of the layer's keys and values (views, no copy), or the whole buffers with
            the key ranges.
        """
        keys_, values_ = self.keys[layer], self.values[layer]
        head_dim = keys_.shape[-1]
        # One index_copy_ per tensor into a flat view: 6 us a call against 21 us for advanced indexing on (row,
        # column) of a transposed view (2 rows, jat-small's heads; 1 thread, 2-core AVX2 EPYC), 24 calls a step;
        # whole int8 steps: within noise at 1 env, 1.4% faster at 16. keys.to is a no-op unless a hand-built state
        # holds another dtype.
        keys_.view(-1, head_dim).index_copy_(0, slots, keys.reshape(-1, head_dim).to(keys_.dtype))
        values_.view(-1, head_dim).index_copy_(0, slots, values.reshape(-1, head_dim).to(values_.dtype))
        if isinstance(reads, tuple):
            return KVRows(keys_, values_, *reads)
        return KVSpans(
            reads,
            [keys_[s.rows, :, s.start : s.stop] for s in reads],
            [values_[s.rows, :, s.start : s.stop] for s in reads],
        )

    def clone(self) -> WindowBuffers:
        """An independent copy (no owner, no captured graphs)."""
        return WindowBuffers([k.clone() for k in self.keys], [v.clone() for v in self.values], self.lengths.copy())
