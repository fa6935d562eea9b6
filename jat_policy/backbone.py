"""The GPT-Neo backbone of :class:`~jat_policy.modeling.JatModel`: attention, MLP, block and the transformer.

Written here (not ``transformers.GPTNeoModel``) so attention runs through ``scaled_dot_product_attention`` and
positions / key validity are explicit, which the rolling context of :class:`~jat_policy.policy.JatPolicy` needs.
Module and parameter names are GPT-Neo's, so checkpoints load either way. Numerics kept on purpose for parity with
the reference:

* GPT-Neo does **not** scale attention logits by 1/sqrt(d) and computes them in fp32;
* local layers attend to the last ``window_size`` positions (the query included);
* masked logits follow GPT-Neo's eager arithmetic (``finfo.min`` replacement plus an additive ``finfo.min`` padding
  mask), so even padded positions reproduce the reference outputs.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jat_policy import kernels
from jat_policy.cache import KVCache, KVExtend, KVRows, KVSpans
from jat_policy.configuration import JatConfig

__all__ = [
    "GPTNeoAttention",
    "GPTNeoBlock",
    "GPTNeoMLP",
    "GPTNeoSelfAttentionCore",
    "JatTransformer",
    "build_attention_bias",
    "gelu_new",
]


def build_attention_bias(
    q_pos: Tensor, k_pos: Tensor, k_valid: Tensor, window: int | None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Additive attention bias ``(B, 1, Tq, Tk)`` with GPT-Neo's eager masking arithmetic.

    A key is attended if it is not in the future and (local layers) less than ``window`` positions
    back. Disallowed logits become ``finfo.min``; future or padding keys get another ``finfo.min``
    added, as GPT-Neo adds its padding mask on top. Rows whose window holds only padding (padded
    queries) therefore spread uniformly like the reference's, instead of producing NaNs.

    Args:
        q_pos: ``(B, Tq)`` query positions.
        k_pos: ``(B, Tk)`` key positions.
        k_valid: ``(B, Tk)`` bool, False for padding keys.
        window: Local attention window in positions, or ``None`` for global layers.
        dtype: dtype of the attention logits.

    Returns:
        The bias, to be added to the raw logits ``q @ k^T``.
    """
    diff = q_pos[:, :, None] - k_pos[:, None, :]  # (B, Tq, Tk)
    allowed = diff >= 0
    if window is not None:
        allowed &= diff < window
    blocked = (diff < 0) | ~k_valid[:, None, :]
    low = torch.finfo(dtype).min
    bias = torch.where(allowed, 0.0, low).to(dtype) + torch.where(blocked, low, 0.0).to(dtype)
    return bias[:, None]  # (B, 1, Tq, Tk)


class GPTNeoSelfAttentionCore(nn.Module):
    """Multi-head self-attention with GPT-Neo's projections (no q/k/v bias, no logit scaling)."""

    def __init__(self, config: JatConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.dropout = float(config.attention_dropout)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.resid_dropout = nn.Dropout(float(config.resid_dropout))
        self.qkv_proj: nn.Linear | None = None  # set by fuse_qkv (int8 inference)

    def fuse_qkv(self) -> None:
        """Replaces ``q_proj``, ``k_proj`` and ``v_proj`` by one ``qkv_proj`` (H -> 3H) holding their rows.

        One matmul instead of three: under int8 dynamic quantisation each linear call quantises its input and runs its
        own kernel, so this saves two calls per block (about 5% of a one-env int8 step of jat-small, issue 15). The
        three projections' names leave the state dict, so a fused model is for inference, not for saving.
        """
        if self.qkv_proj is not None:
            return
        q, k, v = self.q_proj, self.k_proj, self.v_proj
        fused = nn.Linear(q.in_features, 3 * q.out_features, bias=False, device=q.weight.device, dtype=q.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat((q.weight, k.weight, v.weight)))  # (3H, H): rows of q, then k, then v
        self.qkv_proj = fused
        del self.q_proj, self.k_proj, self.v_proj

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, T, hd)

    def forward(
        self, x: Tensor, bias: Tensor | None, past: KVExtend | None, keep: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Attends ``x`` ``(B, T, H)`` to the past and itself; returns output, keys and values.

        ``bias`` is ignored when ``past`` returns :class:`~jat_policy.cache.KVSpans` (each span has its own) or
        :class:`~jat_policy.cache.KVRows` (key ranges); the keys and values returned are then the new tokens' only.
        ``keep``: ``(K,)`` rows whose last token alone is projected out (output ``(K, 1, H)``); every token's keys and
        values are still computed and cached.
        """
        if self.qkv_proj is not None:
            b, t, _ = x.shape
            qkv = self.qkv_proj(x).view(b, t, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, heads, T, hd)
        else:
            q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))
        kv = past(k, v) if past is not None else (k, v)
        if isinstance(kv, KVRows):  # each row reads its own key columns of the buffers (one-thread CPU step)
            out = kernels.row_attention(q, kv.keys, kv.values, kv.lo, kv.hi)
        elif isinstance(kv, KVSpans):  # rows reading different key columns (JatPolicy's step): one call per span
            cached = kv.keys[0].dtype  # the state's KV dtype (precision.kv_cache_dtype), not the new keys'
            attend = self._attend_step if cached == torch.float32 and not self.training else self._attend
            parts = [
                attend(q[span.rows], keys, values, span.bias)
                for span, keys, values in zip(kv.spans, kv.keys, kv.values, strict=True)
            ]
            out = parts[0] if len(parts) == 1 else torch.cat(parts)
        else:
            k, v = kv  # (B, heads, S + T, hd)
            out = self._attend(q, k, v, bias)
        if keep is not None:
            out = out[keep, :, -1:]  # (K, heads, 1, hd)
        b, _, t, _ = out.shape
        out = out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)  # (B, T, H)
        return self.resid_dropout(self.out_proj(out)), k, v

    @staticmethod
    def _attend_step(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """:meth:`_attend` for a policy step's few queries over an fp32 cache: two matmuls and a softmax.

        With 2 queries per row the attention only streams the keys and values, which torch's CPU flash kernel does
        slowly. ``JatPolicy.predict`` on jat-small, W = 256, this against SDPA in one process, interleaved blocks of
        16 steps (2-core AMD EPYC with AVX-512 BF16/VNNI, 2026-12-02): mean step 1.24x faster for int8 at 16 envs on
        two threads (71.0 -> 57.4 ms), 1.10x for fp32 there, 1.06-1.11x at 1 env, 1.01-1.04x at 16 envs on one
        thread. The numbers are SDPA's within fp32 rounding (|delta| <= 1e-5, tests/test_modeling.py). Logits that
        the masks drive to -inf (a placeholder token's row, every key masked) are clamped to ``finfo.min``, so such
        rows stay finite, as SDPA's do. A forward-only step with torch on one CPU thread uses
        :func:`jat_policy.kernels.row_attention` instead (the same numbers, each row's keys read once).
        """
        logits = torch.matmul(q.float(), k.transpose(-1, -2))  # (B, heads, T, S), unscaled as GPT-Neo's
        logits.add_(bias).clamp_(min=torch.finfo(logits.dtype).min)
        return torch.matmul(torch.softmax(logits, dim=-1), v)  # (B, heads, T, hd)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """GPT-Neo attention of ``q`` ``(B, heads, T, hd)`` over ``k``/``v`` ``(B, heads, S, hd)``."""
        dtype = v.dtype
        if k.dtype in (torch.bfloat16, torch.float16) and not torch.is_autocast_enabled(k.device.type):
            # A 16-bit KV cache (JatPolicy precision "bf16": bf16; "int8": fp16 or bf16): attend in
            # its dtype, whose fused kernels accumulate in fp32 anyway; upcasting copied the whole cache to fp32 on
            # every step, 6x the attention itself (issue 15). In fp16 the bias's finfo.min becomes -inf: a masked key
            # still weighs 0, and SDPA gives a row with every key masked (a placeholder token, output unused) zeros,
            # not NaN.
            q, bias, dtype = q.to(k.dtype), bias.to(k.dtype), q.dtype
        else:  # logits in fp32 and unscaled, as GPT-Neo computes them (it matters under bf16 autocast)
            q, k, v = q.float(), k.float(), v.float()
        # Autocast lists SDPA as a low-precision op and would cast the fp32 inputs back to bf16, so it is off here
        # (on CPUs the bf16 attention backward also ran ~7x slower than the fp32 one for jat-tiny's training shapes).
        with torch.autocast(q.device.type, enabled=False):
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0, scale=1.0
            ).to(dtype)


class GPTNeoAttention(nn.Module):
    """Holds the core under ``.attention`` so parameter names match GPT-Neo's."""

    def __init__(self, config: JatConfig, layer_id: int) -> None:
        super().__init__()
        self.attention_type = config.attention_layers[layer_id]
        self.attention = GPTNeoSelfAttentionCore(config)

    def forward(
        self, x: Tensor, bias: Tensor | None, past: KVExtend | None, keep: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Applies the module (shapes in :meth:`GPTNeoSelfAttentionCore.forward`)."""
        return self.attention(x, bias, past, keep)


class GPTNeoMLP(nn.Module):
    """Feed-forward block: H -> inner -> H with gelu_new."""

    def __init__(self, config: JatConfig) -> None:
        super().__init__()
        inner = config.intermediate_size or 4 * config.hidden_size
        self.c_fc = nn.Linear(config.hidden_size, inner)
        self.c_proj = nn.Linear(inner, config.hidden_size)
        self.dropout = nn.Dropout(float(config.resid_dropout))

    def forward(self, x: Tensor) -> Tensor:
        """Applies the module (shapes in the class docstring)."""
        return self.dropout(self.c_proj(gelu_new(self.c_fc(x))))


_GELU_C = 2 * math.sqrt(2 / math.pi)  # 0.5 (1 + tanh(z)) = sigmoid(2 z), z = sqrt(2 / pi) (x + 0.044715 x^3)


def gelu_new(x: Tensor) -> Tensor:
    """GPT-Neo's ``gelu_new``: GELU's tanh approximation, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Outside autograd on a CPU it is computed as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))``, the same function:
    torch's CPU ``tanh`` is slow, and ``F.gelu(approximate="tanh")`` took 0.70 ms on a ``(64, 3072)`` input against
    0.31 ms for this form, within 5e-7 of it (1 thread, 2-core AVX2 EPYC, 2026-12-07; a 16-env int8 policy step
    makes 12 such calls). Training keeps torch's fused op and its backward.
    """
    if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
        return F.gelu(x, approximate="tanh")
    y = x * x
    y.mul_(0.044715 * _GELU_C).add_(_GELU_C).mul_(x)  # 2 sqrt(2/pi) (x + 0.044715 x^3)
    return y.sigmoid_().mul_(x)


class GPTNeoBlock(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config: JatConfig, layer_id: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.attn = GPTNeoAttention(config, layer_id)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = GPTNeoMLP(config)

    def forward(
        self, x: Tensor, bias: Tensor | None, past: KVExtend | None, keep: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(B, T, H)`` -> ``(B, T, H)``, or ``(K, 1, H)``: only the last token of rows ``keep`` past the attention.

        Every token's keys and values are still computed and cached; a last layer needs no more for the others.
        """
        attn_out, k, v = self.attn(self.ln_1(x), bias, past, keep)
        if keep is not None:
            x = x[keep, -1:]  # (K, 1, H)
        x = x + attn_out
        return x + self.mlp(self.ln_2(x)), k, v


class JatTransformer(nn.Module):
    """GPT-Neo backbone on input embeddings, with explicit positions and a :class:`KVCache`."""

    def __init__(self, config: JatConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.drop = nn.Dropout(float(config.embed_dropout))
        self.h = nn.ModuleList(GPTNeoBlock(config, i) for i in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)

    def _positions(self, batch: int, length: int, past: KVCache | None, device: torch.device) -> Tensor:
        start = past.next_positions()[:, None] if past is not None else torch.zeros(batch, 1, device=device)
        return (start + torch.arange(length, device=device)).long()  # (B, T)

    def forward(
        self,
        inputs_embeds: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: KVCache | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor, KVCache | None]:
        """Runs the blocks.

        Args:
            inputs_embeds: ``(B, T, H)``.
            attention_mask: ``(B, T)`` 1 for real tokens, 0 for padding (of the new tokens).
            position_ids: ``(B, T)``; default: continue after the cache's last valid position (0 without cache).
            cache: Cache of earlier tokens.
            use_cache: Return the cache extended with these tokens.

        Returns:
            Final hidden states ``(B, T, H)`` and the new cache (or ``None``).
        """
        batch, length, _ = inputs_embeds.shape
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = self._positions(batch, length, cache, device)
        max_pos = self.config.max_position_embeddings
        if int(position_ids.max()) >= max_pos:
            raise ValueError(
                f"Position {int(position_ids.max())} exceeds the model's max_position_embeddings={max_pos} "
                f"({max_pos // 2} RL timesteps): shorten the sequence or the context window."
            )
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
        if attention_mask is not None:
            valid = attention_mask.to(device=device, dtype=torch.bool)
        k_pos, k_valid = position_ids, valid
        if cache is not None:
            k_pos = torch.cat((cache.positions, position_ids), dim=1)  # (B, S + T)
            k_valid = torch.cat((cache.valid, valid), dim=1)
        biases = {
            kind: build_attention_bias(
                position_ids, k_pos, k_valid, self.config.window_size if kind == "local" else None
            )
            for kind in set(self.config.attention_layers)
        }
        x = self.drop(inputs_embeds + self.wpe(position_ids))
        keys, values = [], []
        for i, block in enumerate(self.h):
            past = partial(cache.extend, i) if cache is not None else None
            x, k, v = block(x, biases[block.attn.attention_type], past)
            keys.append(k)
            values.append(v)
        return self.ln_f(x), KVCache(keys, values, k_pos, k_valid) if use_cache else None
