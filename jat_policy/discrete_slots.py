"""The multi-discrete (slot) encoder's training-time arithmetic: one product per distinct (slot, value) pair.

``JatModel.multi_discrete_encoder`` maps ``X`` integer slots (BabyAI: 148 grid ints + 64 mission tokens) to one
token::

    y = b + sum_x W_x · relu(squeeze(wte[id_x]))        # W_x: the (H - 1, S) block of the last linear for slot x

Applied as written, a batch of ``N`` observations costs ``N·X·S·(H - 1)`` multiply-adds (and twice that backward):
for jat-tiny the encoder took about 30% of a GoToLocal training step (``benchmarks/results/step_profile.json``).
But a slot takes few distinct values in a batch (a grid cell's object type, colour or state; a mission word), so
``W_x · relu(table[v])`` is computed once per distinct pair and each observation sums its ``X`` rows with
``embedding_bag``: the same function of the same parameters (only the summation order differs), about ``10×``
cheaper for BabyAI batches. The checkpoint is unchanged; :class:`~jat_policy.modeling.JatModel` picks this path for
large batches only (:func:`use_pair_table`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["encode_slots_by_pairs", "use_pair_table"]

# The distinct pairs are found with a (slots x vocabulary) presence map; above this many cells (jat-small's
# 50257-word vocabulary) the direct product is used instead.
MAX_PAIR_CELLS = 1 << 22


def use_pair_table(ids: Tensor, vocab_size: int) -> bool:
    """Whether :func:`encode_slots_by_pairs` pays off: many observations, and a small slots x vocabulary map."""
    slots = ids.shape[-1]
    rows = ids.numel() // max(slots, 1)
    return rows >= 64 and slots * vocab_size <= MAX_PAIR_CELLS


def encode_slots_by_pairs(ids: Tensor, table: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``bias + sum_x weight_x · relu(table[ids[..., x]])``, one product per distinct (slot, value) pair.

    Args:
        ids: ``(..., X)`` ints in ``[0, V)``.
        table: ``(V, S)`` the projected embedding table ``squeeze(wte.weight)`` (before the ReLU).
        weight: ``(D, X·S)`` the last linear's weight (slot ``x`` owns columns ``[x·S, (x + 1)·S)``).
        bias: ``(D,)`` the last linear's bias, or ``None``.

    Returns:
        ``(..., D)``, equal to ``linear(flatten(relu(table[ids])), weight, bias)`` up to summation order.
    """
    vocab, squeeze = table.shape
    slots = ids.shape[-1]
    flat = ids.reshape(-1, slots)  # (N, X)
    present = torch.zeros(slots, vocab, dtype=torch.bool, device=ids.device)
    present.scatter_(1, flat.t(), True)  # (X, V): which values each slot takes in this batch
    rank = present.cumsum(1) - 1  # (X, V): a value's position among its slot's distinct values
    width = int(present.sum(1).max())  # distinct values of the busiest slot
    pair_slot, pair_value = present.nonzero(as_tuple=True)  # (R,) each, grouped by slot
    features = F.relu(table)[pair_value]  # (R, S)
    grouped = features.new_zeros(slots, width, squeeze)
    grouped = grouped.index_put((pair_slot, rank[pair_slot, pair_value]), features)  # (X, width, S), 0-padded
    blocks = weight.view(weight.shape[0], slots, squeeze).permute(1, 2, 0)  # (X, S, D)
    products = torch.bmm(grouped, blocks)  # (X, width, D): weight_x · relu(table[v]) per distinct pair
    offsets = torch.arange(slots, device=ids.device) * width  # (X,)
    rows = rank.gather(1, flat.t()).t() + offsets  # (N, X) rows of products.view(X·width, D)
    out = F.embedding_bag(rows, products.reshape(slots * width, -1), mode="sum")  # (N, D)
    if bias is not None:
        out = out + bias
    return out.view(*ids.shape[:-1], -1)  # (..., D)
