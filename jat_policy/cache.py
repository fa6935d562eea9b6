"""KV caches: the model's :class:`KVCache`, and the preallocated per-env store behind ``JatPolicy``'s rolling context.

:class:`KVCache` is what :class:`~jat_policy.backbone.JatTransformer` reads and returns. :class:`StoredCache` is a
``KVCache`` whose keys/values live in a :class:`KVStore` preallocated with spare columns, so a policy step writes its
two new tokens in place instead of concatenating the whole cache (HF's ``Cache`` convention). The row functions
below treat the batch rows as envs: reset, replace or trim some rows without touching the states that share a store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "KVCache",
    "KVExtend",
    "KVStore",
    "StoredCache",
    "invalidate_rows",
    "reserve",
    "to_store",
    "trim",
    "write_rows",
]


@dataclass
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

    # Added for JatPolicy's rolling context (StoredCache below): the attention layers append new keys/values
    # through this method, so a subclass can write them into preallocated storage instead of copying
    # the whole cache on every step.
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


KVExtend = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``(new keys, new values) -> (all keys, all values)`` of one layer: :meth:`KVCache.extend` bound to it."""


# --------------------------------------------------------------------------------------------------
# Per-env store (rows = envs), for JatPolicy's rolling context
# --------------------------------------------------------------------------------------------------


@dataclass
@dataclass
class KVStore:
    """Preallocated keys/values ``(B, heads, C, hd)`` per layer, shared by the successive states of a rollout.

    ``end`` marks the columns claimed by the newest state: a state may append in place only if its cache ends
    there; otherwise (an older state predicted from again) it copies first, so no state ever sees another's
    tokens.
    """

    keys: list[Tensor]
    values: list[Tensor]
    end: int

    @property
    def capacity(self) -> int:
        """Columns ``C`` of the store."""
        return self.keys[0].shape[2]


class StoredCache(KVCache):
    """A :class:`KVCache` over the columns ``[lo, hi)`` of a :class:`KVStore`; :meth:`extend` appends in place.

    Appending in place instead of concatenating saves copying the whole cache on every step (the
    concatenation took more than half of a 16-env step of jat-small on CPU).
    """

    def __init__(self, store: KVStore, lo: int, hi: int, positions: Tensor, valid: Tensor) -> None:
        keys = [k[:, :, lo:hi] for k in store.keys]
        values = [v[:, :, lo:hi] for v in store.values]
        super().__init__(keys, values, positions, valid)
        self.store, self.lo, self.hi = store, lo, hi

    def extend(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Writes the new ``(B, heads, T, hd)`` keys/values after column ``hi`` (claimed by :func:`reserve`)."""
        end = self.hi + keys.shape[2]
        stored_keys, stored_values = self.store.keys[layer], self.store.values[layer]
        stored_keys[:, :, self.hi : end] = keys
        stored_values[:, :, self.hi : end] = values
        return stored_keys[:, :, self.lo : end], stored_values[:, :, self.lo : end]  # (B, heads, S + T, hd)

    def with_slots(self, lo: int, hi: int, positions: Tensor, valid: Tensor) -> StoredCache:
        """Another view of the same store."""
        return StoredCache(self.store, lo, hi, positions, valid)


def to_store(cache: KVCache, width: int, margin: int) -> StoredCache:
    """Copies ``cache`` right-aligned into a new store of ``width + margin`` columns (left slots invalid)."""
    batch, length = cache.positions.shape
    pad = width - length
    store = KVStore(
        [k.new_empty(*k.shape[:2], width + margin, k.shape[3]) for k in cache.keys],
        [v.new_empty(*v.shape[:2], width + margin, v.shape[3]) for v in cache.values],
        width,
    )
    for mine, theirs in zip(store.keys + store.values, cache.keys + cache.values, strict=True):
        mine[:, :, :pad] = 0.0  # padding slots are masked but must hold finite numbers; the margin is written first
        mine[:, :, pad:width] = theirs
    positions = torch.cat((cache.positions.new_zeros(batch, pad), cache.positions), dim=1)  # (B, width)
    valid = torch.cat((cache.valid.new_zeros(batch, pad), cache.valid), dim=1)
    return StoredCache(store, 0, width, positions, valid)


def reserve(cache: StoredCache, extra: int, margin: int) -> StoredCache:
    """A cache that may append ``extra`` slots in place: the same store if it has room and is ours, else a copy."""
    if cache.store.end != cache.hi or cache.hi + extra > cache.store.capacity:
        cache = to_store(cache, cache.length, extra + margin)
    cache.store.end = cache.hi + extra
    return cache


def invalidate_rows(cache: StoredCache, rows: Tensor) -> StoredCache:
    """The same slots with every slot of the ``rows`` (bool ``(B,)``) invalid (nothing is modified)."""
    return cache.with_slots(cache.lo, cache.hi, cache.positions, cache.valid & ~rows[:, None])


def write_rows(cache: StoredCache, rows: Tensor, part: KVCache, margin: int) -> StoredCache:
    """Replaces rows ``rows`` (indices) by ``part`` (right-aligned) in a copy (older states keep theirs)."""
    cache = to_store(cache, max(cache.length, part.length), margin)
    tail = cache.length - part.length
    for mine, theirs in zip(cache.store.keys + cache.store.values, part.keys + part.values, strict=True):
        mine[rows, :, tail : cache.hi] = theirs
    cache.valid[rows] = False
    cache.valid[rows, tail:] = part.valid
    cache.positions[rows, tail:] = part.positions
    return cache


def trim(cache: StoredCache) -> StoredCache:
    """Drops the leading slots that are invalid in every row (a narrower view, no copy)."""
    used = cache.valid.any(dim=0)  # (S,)
    first = int(used.to(torch.int8).argmax()) if bool(used.any()) else cache.length
    if first == 0:
        return cache
    return cache.with_slots(cache.lo + first, cache.hi, cache.positions[:, first:], cache.valid[:, first:])
