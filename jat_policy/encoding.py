"""Shape rules the model applies to its inputs, so that training batches and the policy's steps cannot disagree.

* continuous vectors are expanded *cyclically* to ``max_continuous_size`` (the reference's rule, not zero-padding);
* discrete observations are zero-padded to the multi-discrete encoder's slots.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cyclic_expand_dim", "pad_discrete_slots"]


def cyclic_expand_dim(tensor: Tensor, size: int) -> Tensor:
    """Expands the last dimension cyclically: element ``i`` of the result is element ``i % X``.

    Args:
        tensor: Tensor of shape ``(..., X)``.
        size: Target size, at least ``X``.

    Returns:
        Tensor of shape ``(..., size)``.

    Example:
        >>> cyclic_expand_dim(torch.tensor([[1, 2, 3]]), 7).tolist()
        [[1, 2, 3, 1, 2, 3, 1]]
    """
    width = tensor.shape[-1]
    if size < width:
        raise ValueError(
            f"Cannot expand a last dimension of {width} to {size}: the vector is larger than the model's "
            f"max_continuous_size ({size}). Continuous observations (with the reward) must have at most {size} values."
        )
    index = torch.arange(size, device=tensor.device) % width
    return tensor[..., index]


def pad_discrete_slots(ids: Tensor, slots: int) -> Tensor:
    """Right-pads discrete observations with 0 to the encoder's ``slots`` (``max_discrete_value``).

    The one padding rule for discrete observations, applied inside the model so that training batches and the
    policy's per-step tensors can never disagree. BabyAI's 148 ints + 64 mission tokens fill all 212 slots and
    pass unchanged; smaller spaces (FrozenLake's one int, Taxi's, a MultiBinary) get zeros in the unused slots,
    which the per-slot linear learns to ignore (the same slots are padding in every step of a task).

    Args:
        ids: ``(..., X)`` ints with ``X <= slots``.
        slots: Width of the multi-discrete encoder.

    Returns:
        ``(..., slots)`` ints.

    Example:
        >>> pad_discrete_slots(torch.tensor([[3, 1]]), 4).tolist()
        [[3, 1, 0, 0]]
    """
    missing = slots - ids.shape[-1]
    return F.pad(ids, (0, missing)) if missing > 0 else ids  # (..., slots)
