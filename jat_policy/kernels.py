"""A policy step's attention over an fp32 KV buffer, each row reading exactly its own keys, in two numba loops.

A :class:`~jat_policy.policy.JatPolicy` step has two queries per context (``[a_{t-1}, o_t]``) and reads up to ``2 W``
cached keys/values per head: the attention only streams keys and values once. torch's CPU matmul does this at about
half the machine's read bandwidth for two query rows (MKL packs the keys first), and its flash kernel is no faster;
no maintained library offers a few-query attention over per-row key ranges that streams at full bandwidth, so these
two loops are written here (numba compiles them). On jat-small's shapes (12 layers, a 448- and a 192-column row per
layer, caches flushed between layers, 1 thread, 2-core AMD EPYC with AVX2, 2026-12-07) the loops took 4.5 ms against
7.2 ms for ``matmul / softmax / matmul``, a plain sum over the same bytes 3.3 ms, with outputs within 7e-6 of torch's.

Each row reads only its valid key columns (below its length, not after the query, within a local layer's window), so
rows of different lengths need neither padding nor one call per group of rows (torch's path,
:func:`~jat_policy.rolling.attention_spans`). The kernels index the whole contiguous ``(R, heads, C, hd)`` buffer:
numba vectorises the ``hd`` loop only over C-contiguous arrays (over a strided view the loops ran 3.5x slower). The
softmax between them stays torch's (vectorised ``exp``).

The loops run on the calling thread only, so they serve steps with torch on one thread (:func:`available`). With more
threads torch's matmuls split the heads over them; a numba ``parallel=True`` variant was 1.03-1.07x faster there (2
threads, same box) but its OpenMP pool kept a second core busy even when torch was given one thread, so it was not
kept. numba is imported on first use (and compiles the loops then, cached on disk); without it
:func:`available` is False and steps keep torch's matmuls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["available", "key_ranges", "row_attention"]

# Reassociation (vectorised sums) and FMA contraction only: no "finite math" flags.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_LOW = np.float32(np.finfo(np.float32).min)


def _logits(q, keys, lo, hi, base, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[i, h, t, j - base[i]] = q[i, h, t] . keys[i, h, j]`` for ``lo[i, t] <= j < hi[i, t]``, else finfo.min."""
    rows, heads, tokens, head_dim = q.shape
    for i in range(rows):
        first, last = lo[i].min(), hi[i].max()
        for h in range(heads):
            out[i, h] = _LOW
            for j in range(first, last):  # each key row is read once, for every query token that sees it
                for t in range(tokens):
                    if lo[i, t] <= j < hi[i, t]:
                        acc = np.float32(0.0)
                        for d in range(head_dim):
                            acc += q[i, h, t, d] * keys[i, h, j, d]
                        out[i, h, t, j - base[i]] = acc


def _mix(weights, values, lo, hi, base, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[i, h, t] = sum_j weights[i, h, t, j - base[i]] * values[i, h, j]`` over ``lo[i, t] <= j < hi[i, t]``."""
    rows, heads, tokens, head_dim = out.shape
    for i in range(rows):
        first, last = lo[i].min(), hi[i].max()
        for h in range(heads):
            out[i, h] = 0.0  # a query that sees no key (a placeholder token) gets zeros
            for j in range(first, last):
                for t in range(tokens):
                    if lo[i, t] <= j < hi[i, t]:
                        w = weights[i, h, t, j - base[i]]
                        for d in range(head_dim):
                            out[i, h, t, d] += w * values[i, h, j, d]


@functools.cache
def _kernels() -> tuple[Callable, Callable] | None:
    """:func:`_logits` and :func:`_mix` compiled by numba (on their first call), or ``None`` without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; a broken install falls back to torch
        return None
    compile_ = numba.njit(fastmath=_FASTMATH, nogil=True, cache=True)
    return compile_(_logits), compile_(_mix)


def available(keys: Tensor) -> bool:
    """Whether :func:`row_attention` serves this buffer.

    It does for a contiguous fp32 buffer on the CPU, with torch on one thread and numba importable.
    """
    return (
        keys.device.type == "cpu"
        and keys.dtype == torch.float32
        and torch.get_num_threads() == 1
        and keys.is_contiguous()
        and _kernels() is not None
    )


def key_ranges(columns: np.ndarray, lengths: np.ndarray, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The key columns ``[lo, hi)`` each new token attends over, GPT-Neo's masks as ranges.

    Column = position: a token at column ``c`` sees the valid columns (``< length``) up to ``c``, and in a local
    layer only the last ``window`` of them (``c - window < j``), as :func:`~jat_policy.backbone.build_attention_bias`.

    Args:
        columns: ``(R, T)`` column of each new token.
        lengths: ``(R,)`` valid columns of each row (the new tokens included).
        window: The layer's local window in positions, or ``None`` for a global layer.

    Returns:
        ``lo`` and ``hi``, ``(R, T)`` int64 each, ``lo <= hi`` (equal: the token sees no key).
    """
    columns = np.asarray(columns, dtype=np.int64)
    hi = np.minimum(columns + 1, np.asarray(lengths, dtype=np.int64)[:, None])
    lo = np.zeros_like(columns) if window is None else np.maximum(columns + 1 - window, 0)
    return np.minimum(lo, hi), hi  # a token that sees no key: lo = hi


def row_attention(q: Tensor, keys: Tensor, values: Tensor, lo: np.ndarray, hi: np.ndarray) -> Tensor:
    """GPT-Neo attention (unscaled logits) of each row's new tokens over its own key columns of the buffer.

    Equal to :meth:`~jat_policy.backbone.GPTNeoSelfAttentionCore._attend_step` with the additive mask of
    :func:`key_ranges` (within fp32 rounding): masked logits weigh exactly 0 there too. A token that sees no key (a
    placeholder) gets zeros.

    Args:
        q: ``(R, heads, T, hd)`` queries of every buffer row.
        keys: ``(R, heads, C, hd)`` a layer's whole key buffer (C-contiguous fp32, :func:`available`).
        values: The same for the values.
        lo: ``(R, T)`` first key column of each token (:func:`key_ranges`).
        hi: ``(R, T)`` one past its last.

    Returns:
        ``(R, heads, T, hd)`` attention outputs.
    """
    logits_kernel, mix_kernel = _kernels()
    rows, heads, tokens, head_dim = q.shape
    # The compiled loops do not check bounds: a range outside the buffer would read stray memory.
    if keys.shape != values.shape or keys.shape[:2] != (rows, heads) or keys.shape[3] != head_dim:
        raise ValueError(
            f"row_attention: queries {tuple(q.shape)}, keys {tuple(keys.shape)} and values {tuple(values.shape)} "
            "do not match ((R, heads, T, hd) and (R, heads, C, hd))."
        )
    if lo.shape != (rows, tokens) or hi.shape != (rows, tokens) or (lo < 0).any() or (hi > keys.shape[2]).any():
        raise ValueError(
            f"row_attention: key ranges {lo.tolist()}..{hi.tolist()} must be ({rows}, {tokens}) columns within the "
            f"buffer's {keys.shape[2]}."
        )
    base = lo.min(axis=1)  # (R,) first column any token of the row reads: logits are stored from there
    width = max(int((hi.max(axis=1) - base).max()), 1)
    logits = torch.empty(rows, heads, tokens, width, dtype=torch.float32, device="cpu")  # (R, heads, T, S)
    logits_kernel(q.contiguous().numpy(), keys.numpy(), lo, hi, base, logits.numpy())
    weights = torch.softmax(logits, dim=-1)
    out = torch.empty(rows, heads, tokens, head_dim, dtype=torch.float32, device="cpu")
    mix_kernel(weights.numpy(), values.numpy(), lo, hi, base, out.numpy())
    return out
