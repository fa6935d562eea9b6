"""A policy step's attention over an fp32 KV buffer, streamed by two small numba kernels.

A :class:`~jat_policy.policy.JatPolicy` step has two queries per context (``[a_{t-1}, o_t]``) and reads up to ``2 W``
cached keys/values per head: the attention only streams keys and values once. torch's CPU matmul does this at about
half the machine's read bandwidth for two query rows (MKL packs the keys first), and its flash kernel is no faster; no
maintained library offers a few-query attention that streams at full bandwidth, so these two loops are written here
(numba compiles them). Measured on jat-small's shapes (12 layers, a 448- and a 192-column span per layer, caches
flushed between layers, 1 thread, 2-core AMD EPYC with AVX2, 2026-12-07): 4.5 ms against 7.2 ms for
``matmul / softmax / matmul``, with a plain sum over the same bytes taking 3.3 ms; outputs within 7e-6 of torch's.

The kernels index the whole contiguous ``(R, heads, C, hd)`` buffer (rows ``row0 ..``, columns ``start ..``):
numba vectorises the ``hd`` loop only over C-contiguous arrays (over a strided view of the same columns the loops
ran 3.5x slower). The softmax between them stays torch's (vectorised ``exp``).

The kernels run on the calling thread only, so they are used when torch runs on one thread (:func:`available`).
With more threads torch's matmuls split the heads over them; a numba ``parallel=True`` variant was 1.03-1.07x faster
there (2 threads, same box) but its OpenMP pool kept a second core busy even when torch was given one thread, so
it was not kept.

Whole ``JatPolicy.predict`` steps, jat-small int8, W = 256, one thread, interleaved A/B in one process (same box and
day): 1 env 1.05x (mean) / 1.09x (p50), 16 envs 1.14x / 1.18x; fp32 at 1 env 1.01x / 1.02x.

numba is imported on first use (and compiles the kernels then, cached on disk); :func:`available` is False where it
cannot be imported, and callers then keep torch's matmuls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["available", "stream_attention"]

# Reassociation (vectorised sums) and FMA contraction only: no "finite math" flags, since a masked logit is
# ``finfo.min + finfo.min = -inf`` before the clamp.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


_LOW = np.float32(np.finfo(np.float32).min)


def _logits(q, keys, bias, row0, start, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[i, h, t, j] = max(q[i, h, t] . keys[row0 + i, h, start + j] + bias[i, 0, t, j], finfo.min)``."""
    rows, heads, tokens, head_dim = q.shape
    columns = out.shape[3]
    for i in range(rows):
        for h in range(heads):
            for j in range(columns):  # each key row is read once, for every query token
                for t in range(tokens):
                    acc = np.float32(0.0)
                    for d in range(head_dim):
                        acc += q[i, h, t, d] * keys[row0 + i, h, start + j, d]
                    x = acc + bias[i, 0, t, j]
                    out[i, h, t, j] = x if x > _LOW else _LOW  # masked logits stay finite, as SDPA's


def _mix(weights, values, row0, start, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[i, h, t] = sum_j weights[i, h, t, j] * values[row0 + i, h, start + j]``."""
    rows, heads, tokens, columns = weights.shape
    head_dim = out.shape[3]
    for i in range(rows):
        for h in range(heads):
            out[i, h] = 0.0
            for j in range(columns):
                for t in range(tokens):
                    w = weights[i, h, t, j]
                    for d in range(head_dim):
                        out[i, h, t, d] += w * values[row0 + i, h, start + j, d]


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
    """Whether :func:`stream_attention` serves this buffer.

    It does for a contiguous fp32 buffer on the CPU, with torch on one thread and numba importable.
    """
    return (
        keys.device.type == "cpu"
        and keys.dtype == torch.float32
        and torch.get_num_threads() == 1
        and keys.is_contiguous()
        and _kernels() is not None
    )


def stream_attention(q: Tensor, keys: Tensor, values: Tensor, row0: int, start: int, bias: Tensor) -> Tensor:
    """GPT-Neo attention (unscaled logits, as :meth:`GPTNeoSelfAttentionCore._attend_step`) of ``q`` over a buffer.

    Args:
        q: ``(r, heads, T, hd)`` queries of rows ``row0 .. row0 + r`` of the buffer.
        keys: ``(R, heads, C, hd)`` a layer's whole key buffer (C-contiguous fp32, :func:`available`).
        values: The same for the values.
        row0: First buffer row of the queries.
        start: First key column attended; ``bias.shape[-1]`` columns are read from there.
        bias: ``(r, 1, T, S)`` additive attention bias.

    Returns:
        ``(r, heads, T, hd)`` attention outputs.
    """
    logits_kernel, mix_kernel = _kernels()
    rows, heads, tokens, head_dim = q.shape
    columns = bias.shape[-1]
    # The compiled loops do not check bounds: a span outside the buffer would read stray memory.
    if row0 < 0 or start < 0 or row0 + rows > keys.shape[0] or start + columns > keys.shape[2]:
        raise ValueError(
            f"stream_attention: rows {row0}:{row0 + rows} of a buffer of {keys.shape[0]}, columns "
            f"{start}:{start + columns} of a buffer of {keys.shape[2]}: the span must lie inside the buffer."
        )
    if values.shape != keys.shape or q.shape[1:] != (keys.shape[1], tokens, keys.shape[3]):
        raise ValueError(
            f"stream_attention: queries {tuple(q.shape)}, keys {tuple(keys.shape)} and values "
            f"{tuple(values.shape)} do not match ((r, heads, T, hd) and (R, heads, C, hd))."
        )
    logits = torch.empty(rows, heads, tokens, columns, dtype=torch.float32, device="cpu")  # (r, heads, T, S)
    logits_kernel(q.contiguous().numpy(), keys.numpy(), bias.contiguous().numpy(), row0, start, logits.numpy())
    weights = torch.softmax(logits, dim=-1)
    out = torch.empty(rows, heads, tokens, head_dim, dtype=torch.float32, device="cpu")
    mix_kernel(weights.numpy(), values.numpy(), row0, start, out.numpy())
    return out
