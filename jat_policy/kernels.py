"""numba loops for a CPU policy step: its attention over the KV buffer, and bf16 matmuls without native bf16.

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
softmax between them stays torch's (vectorised ``exp``). A step's two tokens share one pass over the keys they both
see.

The buffer is fp32 or bf16 (precision bf16's, and int8's on CPUs without native fp16): a bf16 is the top half of an
fp32, so the loops widen it exactly as they read it, and the two tokens share each widened key. 32 rows (16 envs) over
400 or 200 columns, 12 layers, 1 thread, the same EPYC: 41 ms from bf16 buffers against 62 ms from fp32 ones (the same
numbers, the bf16 values widened). torch has no such path on these CPUs: its bf16 attention there is emulated.

:func:`bf16_linear` is the same idea for precision ``"bf16"``'s weights on CPUs without native bf16, where torch
emulates bf16 matmuls (7x slower than fp32's on 64 rows): a step's few rows meet the weights widened as they are
read, so it reads half fp32's bytes (:func:`~jat_policy.precision._bf16_linear_class`).

The loops run on the calling thread only, so over an fp32 buffer the attention serves steps with torch on one thread
(:func:`available`). With more threads torch's matmuls split the heads over them; a numba ``parallel=True`` variant was
1.03-1.07x faster there (2 threads, same box) but its OpenMP pool kept a second core busy even when torch was given one
thread, and splitting rows over a Python thread pool was slower than torch's fp32 matmuls (104 against 93 ms a 16-env
int8 step, 2 threads; in isolation two threads' halves of the rows took as long as one thread's whole, 23.7 against
24.1 ms), so neither was kept; over a bf16 buffer one thread's loops beat torch's two-thread bf16 attention
(:func:`available`). numba is imported on first use (and compiles the loops then, cached on disk); without it
:func:`available` is False and steps keep torch's matmuls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["LINEAR_ROWS", "available", "available_for_linear", "bf16_linear", "key_ranges", "row_attention"]

# Reassociation (vectorised sums) and FMA contraction only: no "finite math" flags.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_LOW = np.float32(np.finfo(np.float32).min)
_BUFFER_DTYPES = (torch.float32, torch.bfloat16)
# bf16_linear serves up to this many rows (a policy step feeds 4 per env). Beyond them torch's fp32 matmul over the
# widened weights is faster: (64, 768) x (768, 3072) took 5.2 ms that way and 7.0 ms here, where 4 rows took 0.27 ms
# against 1.22 ms (1 thread, 2-core AVX2 EPYC, 2026-12-07).
LINEAR_ROWS = 8
_as_float32: Callable | None = None  # a buffer element as fp32 in the loops: a numba intrinsic made by _kernels()


def _logits(q, keys, lo, hi, base, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[i, h, t, j - base[i]] = q[i, h, t] . keys[i, h, j]`` for ``lo[i, t] <= j < hi[i, t]``, else finfo.min."""
    rows, heads, tokens, head_dim = q.shape
    for i in range(rows):
        first, last = lo[i].min(), hi[i].max()
        for h in range(heads):
            out[i, h] = _LOW
            for j in range(first, last):  # each key row is read once, for every query token that sees it
                if tokens == 2 and lo[i, 0] <= j < hi[i, 0] and lo[i, 1] <= j < hi[i, 1]:
                    # A step's two tokens [a_{t-1}, o_t] share almost all their keys: one pass serves both.
                    acc0, acc1 = np.float32(0.0), np.float32(0.0)
                    for d in range(head_dim):
                        key = _as_float32(keys[i, h, j, d])
                        acc0 += q[i, h, 0, d] * key
                        acc1 += q[i, h, 1, d] * key
                    out[i, h, 0, j - base[i]] = acc0
                    out[i, h, 1, j - base[i]] = acc1
                    continue
                for t in range(tokens):
                    if lo[i, t] <= j < hi[i, t]:
                        acc = np.float32(0.0)
                        for d in range(head_dim):
                            acc += q[i, h, t, d] * _as_float32(keys[i, h, j, d])
                        out[i, h, t, j - base[i]] = acc


def _mix(weights, values, lo, hi, base, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[i, h, t] = sum_j weights[i, h, t, j - base[i]] * values[i, h, j]`` over ``lo[i, t] <= j < hi[i, t]``."""
    rows, heads, tokens, head_dim = out.shape
    for i in range(rows):
        first, last = lo[i].min(), hi[i].max()
        for h in range(heads):
            out[i, h] = 0.0  # a query that sees no key (a placeholder token) gets zeros
            for j in range(first, last):
                if tokens == 2 and lo[i, 0] <= j < hi[i, 0] and lo[i, 1] <= j < hi[i, 1]:
                    w0, w1 = weights[i, h, 0, j - base[i]], weights[i, h, 1, j - base[i]]
                    for d in range(head_dim):
                        value = _as_float32(values[i, h, j, d])
                        out[i, h, 0, d] += w0 * value
                        out[i, h, 1, d] += w1 * value
                    continue
                for t in range(tokens):
                    if lo[i, t] <= j < hi[i, t]:
                        w = weights[i, h, t, j - base[i]]
                        for d in range(head_dim):
                            out[i, h, t, d] += w * _as_float32(values[i, h, j, d])


def _linear(x, weight, bias, out):  # pragma: no cover - compiled by numba (:func:`_kernels`)
    """``out[m, n] = x[m] . weight[n] + bias[n]``: each weight row is widened once per four input rows."""
    rows, inner = x.shape
    for n in range(weight.shape[0]):
        m = 0
        while m + 4 <= rows:
            acc0, acc1, acc2, acc3 = np.float32(0.0), np.float32(0.0), np.float32(0.0), np.float32(0.0)
            for k in range(inner):
                w = _as_float32(weight[n, k])
                acc0 += x[m, k] * w
                acc1 += x[m + 1, k] * w
                acc2 += x[m + 2, k] * w
                acc3 += x[m + 3, k] * w
            out[m, n], out[m + 1, n] = acc0 + bias[n], acc1 + bias[n]
            out[m + 2, n], out[m + 3, n] = acc2 + bias[n], acc3 + bias[n]
            m += 4
        while m < rows:
            acc = np.float32(0.0)
            for k in range(inner):
                acc += x[m, k] * _as_float32(weight[n, k])
            out[m, n] = acc + bias[n]
            m += 1


@functools.cache
def _kernels() -> tuple[Callable, Callable, Callable] | None:
    """:func:`_logits`, :func:`_mix` and :func:`_linear` compiled by numba (on their first call), or ``None``."""
    try:
        import numba
        from llvmlite import ir
        from numba.core import types
        from numba.extending import intrinsic
    except ImportError:  # pragma: no cover - numba is a dependency; a broken install falls back to torch
        return None

    # numba has no bf16 type: bf16 buffers reach the loops as their uint16 bit patterns, and a bf16 is the top half
    # of the fp32 with the same value, so it widens by a shift and a bitcast (which LLVM vectorises). fp32 loads pass
    # through unchanged.
    @intrinsic
    def as_float32(typingctx, x):  # pragma: no cover - runs inside numba's compiler
        if x == types.float32:
            return types.float32(x), lambda context, builder, signature, args: args[0]
        if x != types.uint16:
            return None

        def widen(context, builder, signature, args):
            bits = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
            return builder.bitcast(bits, ir.FloatType())

        return types.float32(x), widen

    global _as_float32
    _as_float32 = as_float32  # the loops read it as a global when numba compiles them
    compile_ = numba.njit(fastmath=_FASTMATH, nogil=True, cache=True)
    return compile_(_logits), compile_(_mix), compile_(_linear)


def available(keys: Tensor) -> bool:
    """Whether :func:`row_attention` serves this buffer.

    It does for a contiguous CPU buffer, with numba importable: a bf16 one at any thread count, an fp32 one with torch
    on one thread. With more threads torch's fp32 matmuls split the heads over them and beat one thread's loops, but
    torch has no fast bf16 attention on CPUs without native bf16, and one thread's loops beat its two-thread SDPA
    there (jat-small on the 2-core AVX2 EPYC, 2 threads, interleaved in one process, 2026-12-07, p50 ms: int8 96.9 vs
    99.2 at 16 envs, 15.7 vs 17.2 at 1 env; bf16 156.8 vs 163.8 and 29.1 vs 31.8).
    """
    return (
        keys.device.type == "cpu"
        and (keys.dtype == torch.bfloat16 or (keys.dtype == torch.float32 and torch.get_num_threads() == 1))
        and keys.is_contiguous()
        and _kernels() is not None
    )


def available_for_linear() -> bool:
    """Whether :func:`bf16_linear` can run (numba importable)."""
    return _kernels() is not None


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
        keys: ``(R, heads, C, hd)`` a layer's whole key buffer (C-contiguous fp32 or bf16, :func:`available`).
        values: The same for the values.
        lo: ``(R, T)`` first key column of each token (:func:`key_ranges`).
        hi: ``(R, T)`` one past its last.

    Returns:
        ``(R, heads, T, hd)`` attention outputs.
    """
    logits_kernel, mix_kernel, _ = _kernels()
    rows, heads, tokens, head_dim = q.shape
    # The compiled loops do not check bounds: a range outside the buffer would read stray memory.
    if keys.shape != values.shape or keys.shape[:2] != (rows, heads) or keys.shape[3] != head_dim:
        raise ValueError(
            f"row_attention: queries {tuple(q.shape)}, keys {tuple(keys.shape)} and values {tuple(values.shape)} "
            "do not match ((R, heads, T, hd) and (R, heads, C, hd))."
        )
    if keys.dtype != values.dtype or keys.dtype not in _BUFFER_DTYPES:
        raise ValueError(f"row_attention: keys {keys.dtype} and values {values.dtype} must both be fp32 or bf16.")
    if lo.shape != (rows, tokens) or hi.shape != (rows, tokens) or (lo < 0).any() or (hi > keys.shape[2]).any():
        raise ValueError(
            f"row_attention: key ranges {lo.tolist()}..{hi.tolist()} must be ({rows}, {tokens}) columns within the "
            f"buffer's {keys.shape[2]}."
        )
    base = lo.min(axis=1)  # (R,) first column any token of the row reads: logits are stored from there
    width = max(int((hi.max(axis=1) - base).max()), 1)
    logits = torch.empty(rows, heads, tokens, width, dtype=torch.float32, device="cpu")  # (R, heads, T, S)
    logits_kernel(q.float().contiguous().numpy(), _as_array(keys), lo, hi, base, logits.numpy())
    weights = torch.softmax(logits, dim=-1)
    out = torch.empty(rows, heads, tokens, head_dim, dtype=torch.float32, device="cpu")
    mix_kernel(weights.numpy(), _as_array(values), lo, hi, base, out.numpy())
    return out


def _as_array(buffer: Tensor) -> np.ndarray:
    """The buffer as the loops take it (no copy): fp32 as is, bf16 as its uint16 bit patterns (numpy has no bf16)."""
    if buffer.dtype == torch.bfloat16:
        return buffer.view(torch.int16).numpy().view(np.uint16)
    return buffer.numpy()


def bf16_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias`` over bf16 weights, in fp32 (the weights widened exactly), for a few rows of ``x``.

    For CPUs without native bf16 (:func:`~jat_policy.precision.cpu_supports_bf16`), where torch emulates bf16
    matmuls: a policy step's few rows then read half the bytes of fp32 weights. ``(4, 768) x (768, 3072)``, 1 thread,
    2-core AVX2 EPYC (2026-12-07): 0.27 ms here, 0.84 ms for fp32 weights, 1.88 ms for torch's bf16 matmul, 1.22 ms
    for widening the weights with torch first. Forward only, on the calling thread.

    Args:
        x: ``(..., in)`` fp32 inputs, at most :data:`LINEAR_ROWS` rows in all.
        weight: ``(out, in)`` contiguous bf16 weights.
        bias: ``(out,)`` or ``None``.

    Returns:
        ``(..., out)`` fp32.
    """
    kernels = _kernels()
    rows = x[..., 0].numel()
    if kernels is None or weight.dtype != torch.bfloat16 or not weight.is_contiguous() or rows > LINEAR_ROWS:
        raise ValueError(
            f"bf16_linear: {rows} rows over {weight.dtype} weights of {tuple(weight.shape)}: it takes at most "
            f"{LINEAR_ROWS} rows, contiguous bf16 weights and numba."
        )
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"bf16_linear: inputs {tuple(x.shape)} do not match weights {tuple(weight.shape)}.")
    flat = x.detach().reshape(rows, weight.shape[1]).float().contiguous()  # (M, in)
    shift = torch.zeros(weight.shape[0]) if bias is None else bias.detach().float().contiguous()  # (out,)
    out = torch.empty(rows, weight.shape[0], dtype=torch.float32)  # (M, out)
    kernels[2](flat.numpy(), _as_array(weight.detach()), shift.numpy(), out.numpy())
    return out.view(*x.shape[:-1], weight.shape[0])
