"""The multi-discrete (slot) encoder's arithmetic for training batches: one product per distinct (slot, value).

``JatModel.multi_discrete_encoder`` maps ``X`` integer slots (BabyAI: 148 grid ints + 64 mission tokens) to one
token::

    y = b + sum_x W_x · relu(table[id_x])        # table = squeeze(wte.weight) (V, S); W_x the (D, S) block of slot x

Applied as written, ``N`` observations cost ``N·X·S·D`` multiply-adds forward and twice that backward: for jat-tiny
the encoder took about 30% of a GoToLocal training step (``benchmarks/results/step_profile.json``). But a slot
takes few distinct values in a batch (a grid cell's object type, colour or state; a mission word), so each
``W_x · relu(table[v])`` is computed once per distinct pair present (``R`` of them, a padded ``bmm`` per slot)
and every observation adds up its ``X`` rows through a 0/1 matrix: ``N·R·D`` multiply-adds with ``R ≈ 5·X`` for
BabyAI instead of ``N·X·16·D``, and no ``(N, X, S)`` tensor to gather, rectify and scatter back. It is the same
function of the same parameters (only the summation order differs), so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["encode_discrete_slots"]

# The distinct pairs are found with a presence map over (slot, value); above this many cells (jat-small's
# 50257-word vocabulary x 212 slots) the direct product is used.
MAX_PAIR_CELLS = 1 << 22


def encode_discrete_slots(ids: Tensor, table: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``bias + sum_x weight_x · relu(table[ids[..., x]])`` for a batch, by whichever of two exact ways is cheaper.

    Args:
        ids: ``(..., X)`` ints in ``[0, V)``.
        table: ``(V, S)`` the projected embedding table ``squeeze(wte.weight)`` (before the ReLU).
        weight: ``(D, X·S)`` the last linear's weight (slot ``x`` owns columns ``[x·S, (x + 1)·S)``).
        bias: ``(D,)`` the last linear's bias, or ``None``.

    Returns:
        ``(..., D)``, ``linear(flatten(relu(table[ids])), weight, bias)`` up to summation order.
    """
    vocab, squeeze = table.shape
    slots = ids.shape[-1]
    flat = ids.reshape(-1, slots)  # (N, X)
    if slots * vocab <= MAX_PAIR_CELLS:
        keys = flat + torch.arange(slots, device=ids.device) * vocab  # (N, X) one key per (slot, value)
        present = torch.zeros(slots * vocab, dtype=torch.bool, device=ids.device)
        present[keys.flatten()] = True
        pairs = present.nonzero().squeeze(1)  # (R,) distinct keys, sorted: grouped by slot
        if len(pairs) < slots * squeeze // 2:  # else the 0/1 matrix costs about what the direct product does
            out = _sum_pair_products(flat, keys, present, pairs, table, weight)
            return _finish(out, bias, ids.shape)
    slot_features = F.relu(F.embedding(flat, table))  # (N, X, S)
    return _finish(slot_features.flatten(1) @ weight.t(), bias, ids.shape)


def _sum_pair_products(
    flat: Tensor, keys: Tensor, present: Tensor, pairs: Tensor, table: Tensor, weight: Tensor
) -> Tensor:
    """``(N, D)`` sums of ``weight_x · relu(table[v])`` over each row's pairs, each product computed once."""
    vocab, squeeze = table.shape
    slots = flat.shape[1]
    pair_slot, pair_value = pairs // vocab, pairs % vocab  # (R,) each
    counts = torch.bincount(pair_slot, minlength=slots)  # (X,) distinct values per slot
    first = torch.cumsum(counts, 0) - counts  # (X,) where each slot's pairs start
    column = torch.arange(len(pairs), device=flat.device) - first[pair_slot]  # (R,) position within the slot
    grouped = table.new_zeros(slots, int(counts.max()), squeeze)
    grouped = grouped.index_put((pair_slot, column), F.relu(table)[pair_value])  # (X, width, S), 0-padded
    blocks = weight.view(weight.shape[0], slots, squeeze).permute(1, 2, 0)  # (X, S, D)
    products = torch.bmm(grouped, blocks)[pair_slot, column]  # (R, D)
    pair_row = torch.cumsum(present, 0) - 1  # (X·V,) a key's row among the R pairs
    picks = torch.zeros(flat.shape[0], len(pairs), dtype=products.dtype, device=flat.device)
    picks.scatter_(1, pair_row[keys], 1.0)  # (N, R): row n takes one pair per slot
    return picks @ products  # (N, D)


def _finish(out: Tensor, bias: Tensor | None, shape: torch.Size) -> Tensor:
    if bias is not None:
        out = out + bias
    return out.view(*shape[:-1], -1)  # (..., D)
