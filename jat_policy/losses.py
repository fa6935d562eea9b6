"""Per-step losses of :class:`~jat_policy.modeling.JatModel`: masked, weighted, divided by the valid steps.

The reference's rule: a batch's loss is the sum over real steps divided by their number, so padded steps count for
nothing and short episodes weigh as much per step as long ones.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["compute_ce_loss", "compute_mse_loss", "reduce_per_step_loss"]


def compute_mse_loss(pred: Tensor, target: Tensor, mask: Tensor | None, weights: Tensor | None = None) -> Tensor:
    """Per-step MSE averaged over feature dims, masked and weighted, divided by the number of valid steps.

    Args:
        pred: Predictions ``(B, L, ...)``.
        target: Targets, same shape.
        mask: ``(B, L)``, 1 for real steps; ``None`` means all real.
        weights: ``(B, L)`` per-step loss weights (they scale the loss; the divisor stays the step count).

    Returns:
        A scalar tensor.
    """
    loss = F.mse_loss(pred, target, reduction="none")
    loss = loss.flatten(start_dim=2).mean(dim=-1)  # (B, L)
    return reduce_per_step_loss(loss, mask, weights)


def compute_ce_loss(logits: Tensor, labels: Tensor, mask: Tensor | None, weights: Tensor | None = None) -> Tensor:
    """Per-step cross-entropy, masked and weighted, divided by the number of valid steps.

    The reference collapses per-step weights to ``mean(CE) * mean(weights)`` and crashes without a
    mask; here each step keeps its own weight (identical for the constant weights of a task batch).

    Args:
        logits: ``(B, L, C)``.
        labels: ``(B, L)`` class ids.
        mask: ``(B, L)``, 1 for real steps; ``None`` means all real.
        weights: ``(B, L)`` per-step loss weights.

    Returns:
        A scalar tensor.
    """
    loss = F.cross_entropy(logits.flatten(end_dim=-2).float(), labels.flatten(), reduction="none")
    loss = loss.view(labels.shape)  # (B, L)
    return reduce_per_step_loss(loss, mask, weights)


def reduce_per_step_loss(loss: Tensor, mask: Tensor | None, weights: Tensor | None) -> Tensor:
    """Reduces a per-step loss ``(B, L)``: weight, mask, divide by the number of valid steps (the reference's rule)."""
    if weights is not None:
        loss = loss * weights
    if mask is None:
        return loss.mean()
    mask = mask.to(loss.dtype)
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)
