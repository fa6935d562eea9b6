"""Inference precision of a :class:`~jat_policy.policy.JatPolicy`: ``"fp32"``, ``"bf16"`` or ``"int8"``.

A policy step reads every weight of the transformer once, so on a CPU its latency follows the bytes of the weights
(issue 15). Checkpoints stay fp32 safetensors; the precision is applied when a policy is built (quantised at load).

* ``"fp32"``: exact (every action equals the fp32 full forward); the CPU default.
* ``"bf16"``: bf16 weights for the transformer blocks' linears and a bf16 KV cache; the residual stream, LayerNorms,
  GELU, embeddings, encoders and heads stay fp32, as int8 keeps them. The CUDA default (chosen by issue 15 for GPUs,
  not measured here: no GPU was available). On a CPU with native bf16 (AVX-512 BF16 or AMX) the linears' matmuls run
  in bf16 (accumulating in fp32); elsewhere, where torch emulates bf16 matmuls, they widen the weights to fp32 and
  keep fp32 inputs (:func:`_bf16_linear_class`), and steps read the bf16 cache with :mod:`jat_policy.kernels`.
* ``"int8"``: int8 weights with dynamic (per-step) activation quantisation for the transformer's ``nn.Linear``
  layers, and a 16-bit KV cache: fp16 where the CPU runs fp16 natively, bf16 elsewhere; embeddings, encoders, heads
  and activations stay fp32. CPU only.

bf16's layout, by measurement (issue 15): the first design cast the whole model to bf16, residual stream included,
and on the fidelity checkpoint trained on the AMX Xeon one of its 100 pendulum episodes fell where fp32's never did
(a score outside fp32's zero-width CI). With only the block linears in bf16, on the checkpoint trained on the AVX2
EPYC (fp32 drives; each layout predicts in lockstep on the same inputs, 2026-12-07): reach mean / max |delta| of
the actions 0.00014 / 0.0034 against the whole model's 0.00091 / 0.0074 (10 episodes), pendulum 0.00048 / 0.018
against 0.0012 / 0.041 (20 episodes); GoToRedBall's argmax equal in both. Neither half alone does it: the whole model
in bf16 with only the residual stream and LayerNorms in fp32 gave 0.00075 and 0.0010 (its observations still enter
rounded to bf16's 8 bits of mantissa), and an earlier probe with only the encoder and decoder in fp32 moved the
pendulum's actions as much as the whole-model cast (README). So jat-small's bf16 weights are its blocks' 85M of 193M
parameters (0.60 GB in all against fp32's 0.77). With bf16 matmuls the price is two casts per linear:
jat-small, 1 thread, interleaved in one process on that EPYC (bf16 then emulated), 105.5 against 102.7 ms (p50) at 1
env and 1256 against 1279 ms at 16 envs; not measured on a CPU with native bf16. On CPUs without native bf16 the
linears now widen their weights instead (no casts of the inputs; :func:`_bf16_linear_class`).

int8's KV cache is fp16 where oneDNN runs fp16 natively (:func:`cpu_supports_fp16`: AVX-512 FP16 or AMX-FP16) and bf16
elsewhere, chosen by measurement (issue 15). Elsewhere it was fp32 until :mod:`jat_policy.kernels` read bf16 buffers:
jat-small int8 on the 2-core AVX2 EPYC, interleaved in one process (2026-12-07), p50 ms with the fp32 cache against the
bf16 one: 16 envs 142 vs 132 on 1 thread (the kernels); on 2 threads torch's bf16 SDPA matched its fp32 matmuls (101.6
vs 101.5) and the kernels beat SDPA (96.9 vs 99.2, :func:`jat_policy.kernels.available`); 1 env 18.3 vs 17.5 (1
thread); a bf16 cache also halves a state's memory. The fidelity run on the kernels' path (1 thread, 100 episodes per
task) kept every int8 score inside fp32's CI, as with the fp32 cache (README). The measurements that chose fp16 and
fp32 follow.

At 16 envs reading the cached keys/values is most of an int8 step: on the 2-core Intel Xeon with AMX (1 thread, 10.8
GB/s read), the attention matmuls took 76 of a 122 ms step over a 740 MB fp32 cache (torch profiler, a one-off,
2026-12-07). Halving the bytes halves that only where a 16-bit kernel streams them: torch's CPU flash attention (SDPA)
in fp16 did there, in bf16 it did not. 32 rows x 12 heads x 2 queries over 384 keys, median of 30 calls, 1 thread, the
same Xeon: SDPA fp16 4.7 ms, bf16 8.2, fp32 8.3, the fp32 step's two matmuls 9.0; with torch and oneDNN capped at AVX2
(``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``): 5.3, 7.4, 7.8 and 8.2. That cap did not show what a CPU
without fp16 hardware does: torch hands fp16 matmuls (those inside SDPA included) to oneDNN only where the CPU runs
fp16 (``mkldnn_fp16_gemm``; the check reads the CPU, not the caps), and to a generic kernel elsewhere. On a 2-core AMD
EPYC with AVX2 only (F16C, no AVX-512; 2026-12-07), 16 rows over 384 keys, mean of 50 calls, 1 thread: SDPA fp16 32.9
ms, bf16 7.3, fp32 6.8, the two fp32 matmuls 6.1; one row over 512 keys: 1.72, 0.44, 0.26 and 0.22 ms. Whole steps
there (``benchmarks/predict_latency.py --int8-variants``, jat-small, W = 256, ``predict_latency_avx2.json``), p50 ms
with the fp32 cache against the fp16 one: 16 envs 198 vs 541 (1 thread), 126 vs 305 (2 threads); 1 env 29 vs 55, 33 vs
43. fp16 keeps 11 mantissa bits (bf16: 8), well inside int8 weights' own rounding; keys/values of GPT-Neo stay far
below fp16's 65,504. Whole steps on the Xeon (the same benchmark, 2026-12-07), mean ms with the fp16 cache against the
fp32 one: 16 envs 113 vs 124 (1 thread), 80 vs 87 (2 threads); 1 env 32 vs 32, 24 vs 23; with the kernels capped at
AVX2, 1 thread: 179 vs 191 at 16 envs, 35.7 vs 34.5 at 1 env. One cache dtype serves every batch size on a CPU (the
actions must not depend on how many envs share a step), so 1 env pays those 1-3% on the Xeon.

int8 backend, chosen by measurement (issue 15; jat-small's 72 block ``nn.Linear`` layers, 1 thread, 2-core Intel Xeon
with AVX-512 BF16/VNNI and AMX, shared and loaded, torch 2.13.0+cpu, 2026-12-01):
``torch.ao.quantization.quantize_dynamic`` took 14 ms on 4 rows and 40 ms on 64 rows against fp32's 107 / 248 ms;
torchao 0.18.0's ``Int8DynamicActivationInt8WeightConfig`` in eager mode took 115 / 182 ms (slower than fp32: its CPU
path needs ``torch.compile`` to reach fused int8 kernels, and its C++ extensions did not load against this torch).
Maintenance: torchao is the maintained successor (monthly releases); torch.ao's eager API warns "deprecated and will
be removed in 2.10" yet still ships and works in 2.13. We use torch.ao for its 8x speed-up now, silence its
deprecation warnings where we call it, and fail with a clear error if a later torch drops it. Revisit when torchao's
CPU path is fast without compilation.

int8 weights are packed for oneDNN on a CPU with AMX and for torch's default elsewhere (x86: fbgemm's kernels)
(:func:`int8_engine`), by measurement: jat-small's 48 block linears (q/k/v fused), 1 thread, the Xeon with AMX,
2026-12-07, at 4 / 16 / 64 rows: fbgemm 13.6 / 19.8 / 35.0 ms, oneDNN 13.5 / 15.7 / 23.8 ms. With both capped below
AMX (``ONEDNN_MAX_CPU_ISA``, ``FBGEMM_ENABLE_INSTRUCTIONS``) oneDNN is no faster at 1 env: AVX-512 VNNI
13.3 / 20.3 / 35.3 against fbgemm's 14.0 / 20.0 / 35.7, AVX2 41.3 / 55.1 / 98.2 against 14.0 / 23.0 / 70.5, and AVX2
with AVX-VNNI (client CPUs) 16.8 / 25.6 / 53.7 against 12.7 / 21.9 / 70.4, so those keep the default. The engine is
chosen when the weights are packed; the kernels follow the packing, whatever ``torch.backends.quantized.engine``
says later.
Whole int8 steps on the Xeon (the run above), oneDNN against fbgemm: 16 envs 113 vs 132 ms (1 thread), 80 vs 86
(2 threads); 1 env 32 vs 32, 24 vs 22.

Before quantising, each block's q/k/v projections become one linear (48 int8 calls a step instead of 72): jat-small,
W = 256, 1 thread, the same Xeon, 2026-12-02, p50 39.4 -> 37.6 ms at 1 env and 173 -> 170 ms at 16 envs. Per-channel
weight scales ran at the same speed (37.5 / 174 ms) and are not used. A hidden-64 model of jat-small's 12 layers takes
9.5 ms a step at 1 env: the per-op cost of the step's ~400 small ops, which no weight format removes.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on use, so the CLI can validate --precision without it
    import torch
    from torch import nn

__all__ = [
    "PRECISIONS",
    "apply_precision",
    "cpu_supports_bf16",
    "cpu_supports_fp16",
    "int8_engine",
    "kv_cache_dtype",
    "precision_of",
    "resolve_precision",
]

PRECISIONS = ("fp32", "bf16", "int8")

# oneDNN ISA caps below AVX512_CORE_BF16: under ONEDNN_MAX_CPU_ISA=<one of these>, torch's CPU kernels emulate bf16
_ONEDNN_ISAS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX); emulated bf16 is far slower than fp32.

    ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's own switch) makes a bf16 machine compute as an AVX2-only one, and this
    then answers ``False``: the way to test the no-bf16 path on bf16 hardware.
    """
    import torch

    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_ISAS_WITHOUT_BF16:
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def int8_engine() -> str:
    """The quantised engine int8 weights are packed for: ``"onednn"`` on a CPU with AMX, else torch's default.

    oneDNN's int8 matmuls use AMX tiles and beat fbgemm there (the linears 1.5x faster on 64 rows, a whole 16-env
    step 1.17x on one thread); without AMX, torch's default (on x86 ``"x86"``, which runs fbgemm's kernels for
    these linears) is as fast or faster (module docstring); other CPUs keep their own default (e.g. qnnpack on ARM).
    ``ONEDNN_MAX_CPU_ISA`` below AMX counts as no AMX, as oneDNN then computes without it.
    """
    import torch

    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    capped = isa not in ("", "ALL", "DEFAULT") and "AMX" not in isa
    if amx and not capped and "onednn" in torch.backends.quantized.supported_engines:
        return "onednn"
    return torch.backends.quantized.engine


def precision_of(model: nn.Module) -> str:
    """The precision a model is in: ``"int8"`` if its transformer holds quantised linears, else by weight dtype."""
    import torch

    for module in model.modules():  # torch.ao's quantised modules, or ours derived from them (_int8_linear_class)
        if any(cls.__module__.startswith("torch.ao.nn.quantized") for cls in type(module).__mro__):
            return "int8"
    if _has_bf16_linears(model):
        return "bf16"
    # A model cast whole with model.to(torch.bfloat16): apply_precision(model, "bf16") gives it our bf16 layout.
    return "bf16" if next(model.parameters()).dtype == torch.bfloat16 else "fp32"


def resolve_precision(precision: str | None, model: nn.Module, device: torch.device) -> str:
    """The precision to use: the given one (validated), else bf16 on CUDA and the model's own precision elsewhere.

    bf16 on a CPU without native bf16 no longer warns: its linears widen the weights instead of emulating bf16 matmuls
    (:func:`_bf16_linear_class`), which made it faster than fp32 at 1 env and within 10% of fp32 at 16 envs on a
    2-core AVX2 EPYC (README); it used to be 4x slower at 16 envs.

    Raises:
        ValueError: For an unknown precision, or int8 on a non-CPU device.
    """
    if precision is None:
        precision = "bf16" if device.type == "cuda" else precision_of(model)
    elif precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(
            f"precision='int8' runs on the CPU only (dynamic quantisation kernels), but the model is on {device}: use "
            "precision='bf16' on a GPU."
        )
    return precision


def apply_precision(model: nn.Module, precision: str) -> nn.Module:
    """Converts ``model`` (a :class:`~jat_policy.modeling.JatModel`) to ``precision`` in place, like ``model.to``.

    Args:
        model: The model (fp32, bf16 or already int8).
        precision: One of :data:`PRECISIONS`.

    Returns:
        The same model.

    Raises:
        ValueError: To turn an int8 model back into a float one (its fp32 weights are gone): reload the checkpoint.
    """
    import torch
    from torch import nn

    current = precision_of(model)
    if current == "int8":
        if precision == "int8":
            return model
        raise ValueError(
            f"The model is already int8-quantised and cannot become {precision!r}: reload the fp32 checkpoint."
        )
    bf16_linear = _bf16_linear_class()
    if precision == "bf16":
        if not _has_bf16_linears(model):
            model.float()  # a model cast whole to bf16 gets its embeddings, norms and heads back in fp32 (exactly)
            _replace_block_linears(model, nn.Linear, bf16_linear, torch.bfloat16)
        return model
    model.float()
    _replace_block_linears(model, bf16_linear, nn.Linear, torch.float32)  # a bf16 model becomes fp32 again
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates the eager API (see above)
            warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)  # same deprecation
            try:
                from torch.ao.quantization import quantize_dynamic
            except ImportError as err:  # pragma: no cover - a torch without the eager API
                raise ImportError(
                    f"precision='int8' uses torch.ao.quantization.quantize_dynamic, which torch {torch.__version__} "
                    "no longer ships: use precision='bf16', or a torch release that still has it."
                ) from err
            # Only the blocks: they hold ~all the weights read per step; heads and encoders are small. q/k/v become
            # one linear first: a third fewer int8 calls per step.
            for block in model.transformer.h:
                block.attn.attention.fuse_qkv()
            engine = torch.backends.quantized.engine
            torch.backends.quantized.engine = int8_engine()  # packing picks the kernels (module docstring)
            try:
                mapping = {nn.Linear: _int8_linear_class()}
                quantize_dynamic(model.transformer.h, {nn.Linear}, torch.qint8, mapping, inplace=True)
            finally:
                torch.backends.quantized.engine = engine
    return model


@functools.cache
def _bf16_linear_class() -> type:
    """The block linears of precision ``"bf16"``: bf16 weights, input and output in the caller's dtype (fp32).

    Only the weights are bf16; the observations, embeddings, heads, residual stream, LayerNorms and GELU stay fp32.
    Casting the whole model to bf16 (the first design) moved a trained jat-tiny's actions 2-6x further from fp32's
    (module docstring). Built on first use: torch loads lazily.

    On a CPU with native bf16 the matmuls run in bf16 (accumulating in fp32). Elsewhere torch emulates bf16 matmuls,
    7x slower than fp32's on 64 rows, so the weights are widened to fp32 instead (exactly) and the inputs stay fp32:
    up to :data:`~jat_policy.kernels.LINEAR_ROWS` rows by :func:`~jat_policy.kernels.bf16_linear` (a policy step at
    1 or 2 envs, which then reads half fp32's bytes), and more rows by torch's fp32 matmul over the weights widened a
    block of rows at a time (:func:`_widened_linear`). ``(R, 768) x (768, 3072)``, 1 thread, 2-core AVX2 EPYC,
    2026-12-07, ms for R = 4 / 64: emulated bf16 1.88 / 31.1, the whole weight widened per call 1.22 / 5.23,
    bf16_linear 0.27 / 6.97, fp32 weights 0.84 / 3.94 (widened in blocks, R = 64: 4.62; its docstring).
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from jat_policy import kernels

    class Bf16Linear(nn.Linear):
        """``nn.Linear`` with bf16 weights: ``(..., in)`` -> ``(..., out)`` in the input's dtype."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.native = cpu_supports_bf16()  # read once: forward runs 48 times a jat-small step

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Applies the layer (shapes in the class docstring)."""
            if x.device.type != "cpu" or self.native:
                return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)
            forward_only = not torch.is_grad_enabled() or not (x.requires_grad or self.weight.requires_grad)
            if forward_only and x[..., 0].numel() <= kernels.LINEAR_ROWS and kernels.available_for_linear():
                return kernels.bf16_linear(x, self.weight, self.bias).to(x.dtype)
            bias = None if self.bias is None else self.bias.float()
            if not forward_only:
                return F.linear(x.float(), self.weight.float(), bias).to(x.dtype)
            return _widened_linear(x.float(), self.weight, bias).to(x.dtype)

    return Bf16Linear


# _widened_linear widens this many weight rows at a time (its docstring has the measurements).
_WIDEN_ROWS = 256


class _Widened(threading.local):
    buffer: torch.Tensor | None = None  # this thread's fp32 copy of the bf16 weight rows being applied


_WIDENED = _Widened()


def _widened_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias``, fp32 ``x`` ``(..., in)`` over bf16 weights widened to fp32 a block of rows at a time.

    One reused buffer of :data:`_WIDEN_ROWS` rows: widening a whole weight into a fresh tensor faulted its pages in
    on every call (22 ms of a jat-small 16-env step in ``.float()``, 2 threads), and a block small enough to stay in
    the caches is read back by the matmul at their speed. ``(64, 768) x (768, 3072)`` and ``(64, 3072) x (3072,
    768)``, 1 thread, 2-core AVX2 EPYC, 2026-12-07: 4.62 and 4.15 ms this way, 5.63 and 5.08 widening the whole weight
    into a reused buffer, 5.56 and 4.24 for fp32 weights (2 threads: 2.49 / 2.19, 2.71 / 2.62, 2.74 / 2.40).
    """
    import torch

    out_features, in_features = weight.shape
    weight, rows = weight.detach(), x.detach().reshape(-1, in_features)  # (M, in); forward only
    numel = min(_WIDEN_ROWS, out_features) * in_features
    if _WIDENED.buffer is None or _WIDENED.buffer.numel() < numel:
        _WIDENED.buffer = torch.empty(numel, dtype=torch.float32)
    out_t = torch.empty(out_features, rows.shape[0], dtype=torch.float32)  # (out, M): each block fills whole rows
    for start in range(0, out_features, _WIDEN_ROWS):
        block = weight[start : start + _WIDEN_ROWS]
        widened = _WIDENED.buffer[: block.numel()].view(block.shape).copy_(block)
        torch.mm(widened, rows.t(), out=out_t[start : start + _WIDEN_ROWS])
    out = out_t.t().contiguous()  # (M, out)
    if bias is not None:
        out += bias.detach()
    return out.view(*x.shape[:-1], out_features)


def _has_bf16_linears(model: nn.Module) -> bool:
    bf16_linear = _bf16_linear_class()
    return any(type(module) is bf16_linear for module in model.modules())


def _replace_block_linears(model: nn.Module, old: type, new: type, dtype: torch.dtype) -> None:
    """Replaces every ``old`` linear of the transformer blocks by a ``new`` one holding its weights in ``dtype``.

    The parameter names stay (``weight``, ``bias``), so ``checkpoint_weights`` and saving are unchanged.
    """
    import torch

    for block in model.transformer.h:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is not old:
                    continue
                # Built on the meta device and then allocated: no random initialisation of weights overwritten next
                # (it doubled the time of a jat-small bf16 conversion).
                layer = new(child.in_features, child.out_features, child.bias is not None, "meta", dtype)
                layer = layer.to_empty(device=child.weight.device)
                with torch.no_grad():
                    layer.weight.copy_(child.weight)
                    if child.bias is not None:
                        layer.bias.copy_(child.bias)
                setattr(parent, name, layer.train(child.training))


@functools.cache
def _int8_linear_class() -> type:
    """torch.ao's dynamic int8 ``Linear`` calling its kernel directly: the same op, arguments and outputs.

    Written here because torch.ao's ``forward`` calls ``torch.ops.quantized.linear_dynamic`` through its overload
    packet, whose Python-side checks of the packed weights (a ``ScriptObject``) cost about 25 us a call (one linear
    768 -> 768 on 4 rows: 111 us against 87 us for the resolved overload, which skips them; 2-core AVX2 EPYC,
    1 thread, 2026-12-07). A whole one-env jat-small int8 step (48 such calls) gained 1.5% in an interleaved A/B on
    that box, within its noise. Built on first use: torch loads lazily here.
    """
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    kernel = torch.ops.quantized.linear_dynamic.default

    class Int8Linear(DynamicLinear):
        """A dynamically quantised linear (int8 weights, activations quantised per call; fp32 in and out)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """``(..., in)`` -> ``(..., out)``, as ``torch.ao.nn.quantized.dynamic.Linear`` computes it.

            ``reduce_range=True`` as there: 7-bit activations, which keep fbgemm's AVX2 int8 products from saturating.
            """
            return kernel(x, self._packed_params._packed_params, True)

    return Int8Linear


def cpu_supports_fp16() -> bool:
    """Whether torch's CPU matmuls run fp16 natively here: oneDNN's fp16 kernels (AVX-512 FP16 or AMX-FP16).

    torch's fp16 attention (SDPA) goes through them; without them it falls back to kernels that were 5-10x slower
    than fp32's on a 2-core AVX2 EPYC (module docstring), so int8's KV cache is fp16 only where this is true.
    """
    import torch

    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # pragma: no cover - a torch built without oneDNN
        return False


def kv_cache_dtype(precision: str) -> torch.dtype:
    """The keys/values dtype of a policy: fp32 for ``"fp32"``, bf16 for ``"bf16"``, fp16 or bf16 for ``"int8"``.

    int8's cache is fp16 on a CPU with native fp16 matmuls (:func:`cpu_supports_fp16`), else bf16 (module docstring).
    """
    import torch

    if precision == "int8":
        return torch.float16 if cpu_supports_fp16() else torch.bfloat16
    return torch.bfloat16 if precision == "bf16" else torch.float32
