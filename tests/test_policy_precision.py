"""JatPolicy precisions: bf16 weights + KV cache, int8 dynamic quantisation, fp32 checkpoints, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from jat_policy import precision as precision_module
from jat_policy.evaluation import jat_policy_factory
from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy
from jat_policy.precision import cpu_supports_fp16, int8_engine, kv_cache_dtype, precision_of, resolve_precision
from tests.conftest import tiny_config

CONT_SPACE = spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (6,), np.float32)})
WIDE_BOX = spaces.Box(-100.0, 100.0, (3,), np.float32)


def fresh_model() -> JatModel:
    torch.manual_seed(0)
    return JatModel(tiny_config()).eval()


def rollout(policy: JatPolicy, steps: int = 14, n_envs: int = 2) -> np.ndarray:
    """Deterministic actions ``(steps, N, 3)`` over a few rollovers (W = 4)."""
    rng = np.random.default_rng(0)
    state, actions = None, []
    for _ in range(steps):
        obs = {"continuous_observation": rng.normal(size=(n_envs, 6)).astype(np.float32)}
        action, state = policy.predict(obs, state, deterministic=True)
        actions.append(action)
    return np.stack(actions)


# bf16 rounds only the block linears' matmuls: 0.05% of the action scale here, against 0.7% for the whole model cast
# to bf16 (its first layout), which this tolerance refuses.
@pytest.mark.parametrize(("precision", "tolerance"), [("bf16", 0.003), ("int8", 0.15)])
def test_low_precision_actions_stay_close_to_fp32(precision, tolerance):
    reference = rollout(JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4))
    policy = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision=precision)
    assert policy.precision == precision and precision_of(policy.model) == precision
    actions = rollout(policy)
    assert actions.dtype == np.float32 and np.isfinite(actions).all()
    scale = np.abs(reference).max()
    assert np.abs(actions - reference).max() <= tolerance * scale, (np.abs(actions - reference).max(), scale)
    assert np.abs(actions - reference).max() > 0  # really another precision


@pytest.mark.parametrize("out_features", [24, 600])  # 600: more weight rows than one widened block holds
@pytest.mark.parametrize("rows", [4, 64])
def test_bf16_linears_widen_their_weights_on_a_cpu_without_native_bf16(monkeypatch, rows, out_features):
    """Without native bf16 the inputs stay fp32 and meet the bf16 weights widened exactly (few rows: numba's loop;
    more: torch's matmul over blocks of widened rows)."""
    from jat_policy import kernels
    from jat_policy.precision import _bf16_linear_class

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # no native bf16, whatever this CPU has
    layer = _bf16_linear_class()(40, out_features, True, "cpu", torch.bfloat16)
    assert not layer.native
    calls = []
    loop = kernels.bf16_linear
    monkeypatch.setattr(kernels, "bf16_linear", lambda *args: calls.append(1) or loop(*args))
    x = torch.randn(rows, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    expected = torch.nn.functional.linear(x, layer.weight.float(), layer.bias.float())
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    assert bool(calls) == (rows <= kernels.LINEAR_ROWS)
    grad_input = x.clone().requires_grad_()  # training: torch's ops (differentiable), the same numbers
    out = layer(grad_input)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), expected, atol=1e-5, rtol=1e-5)
    assert grad_input.grad is not None and layer.weight.grad is not None


def _block_linear_names(model: JatModel) -> set[str]:
    return {
        f"{name}.{kind}"
        for name, module in model.named_modules()
        if name.startswith("transformer.h.") and isinstance(module, torch.nn.Linear)
        for kind in ("weight", "bias")
        if getattr(module, kind) is not None
    }


def test_bf16_keeps_block_linears_and_kv_cache_in_bf16_and_int8_quantises_the_blocks():
    bf16 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="bf16")
    _, state = bf16.predict({"continuous_observation": np.zeros(6, np.float32)})
    assert state.buffers.keys[0].dtype == torch.bfloat16
    # bf16 matmuls; the residual stream, norms, embeddings and heads stay fp32
    linears = _block_linear_names(fresh_model())
    dtypes = {name: p.dtype for name, p in bf16.model.named_parameters()}
    assert linears and all(dtypes[name] == torch.bfloat16 for name in linears)
    assert all(dtype == torch.float32 for name, dtype in dtypes.items() if name not in linears)
    int8 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="int8")
    linear = int8.model.transformer.h[0].mlp.c_fc
    assert isinstance(linear, DynamicLinear)
    _, state = int8.predict({"continuous_observation": np.zeros(6, np.float32)})
    assert state.buffers.keys[0].dtype == kv_cache_dtype("int8")
    assert (kv_cache_dtype("fp32"), kv_cache_dtype("bf16")) == (torch.float32, torch.bfloat16)


@pytest.mark.parametrize("fp16", [True, False])
def test_int8_keeps_an_fp16_kv_cache_where_the_cpu_runs_fp16_natively_and_bf16_elsewhere(monkeypatch, fp16):
    # A 16-bit cache halves the bytes a step reads: fp16 where oneDNN runs fp16 (torch's attention streams it), bf16
    # elsewhere (jat_policy.kernels streams it; torch's fp16 attention is far slower than fp32's there)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: fp16, raising=False)
    assert cpu_supports_fp16() is fp16
    expected = torch.float16 if fp16 else torch.bfloat16
    assert kv_cache_dtype("int8") == expected
    int8 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="int8")
    obs = {"continuous_observation": np.zeros(6, np.float32)}
    actions, state = int8.predict(obs)
    assert state.buffers.keys[0].dtype == expected and state.buffers.values[-1].dtype == expected
    for _ in range(10):  # past a window rollover (W = 4)
        actions, state = int8.predict(obs, state)
    assert np.isfinite(actions).all()


@pytest.mark.parametrize("amx", [True, False])
def test_int8_packs_for_onednn_on_amx_cpus_and_the_default_engine_elsewhere(monkeypatch, amx):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    default = torch.backends.quantized.engine  # x86 here: fbgemm's kernels
    assert int8_engine() == ("onednn" if amx else default)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert int8_engine() == ("onednn" if amx else default)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")  # oneDNN capped below AMX: fbgemm is faster
    assert int8_engine() == default


@pytest.mark.parametrize("engine", ["fbgemm", "onednn"])
def test_int8_acts_like_fp32_on_either_engine_and_leaves_the_global_engine_alone(monkeypatch, engine):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"this torch has no {engine} engine")
    monkeypatch.setattr(precision_module, "int8_engine", lambda: engine)
    before = torch.backends.quantized.engine
    reference = rollout(JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4))
    actions = rollout(JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="int8"))
    assert torch.backends.quantized.engine == before
    assert np.abs(actions - reference).max() <= 0.15 * np.abs(reference).max()


def test_int8_fuses_q_k_v_into_one_quantised_linear_that_attends_the_same():
    model = fresh_model()
    core = model.transformer.h[0].attn.attention
    tokens = torch.randn(2, 5, model.config.hidden_size)  # (B, T, H)
    with torch.no_grad():
        before = core(tokens, None, None)  # output, keys, values
        core.fuse_qkv()
        after = core(tokens, None, None)
    for unfused, fused in zip(before, after, strict=True):
        torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-6)
    assert not hasattr(core, "q_proj") and core.qkv_proj.out_features == 3 * model.config.hidden_size
    int8 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="int8")
    fused = int8.model.transformer.h[0].attn.attention.qkv_proj
    assert isinstance(fused, DynamicLinear) and fused.out_features == 3 * int8.model.config.hidden_size


def test_int8_linears_compute_exactly_what_torch_ao_dynamic_linears_compute():
    # ours call the kernel directly (precision._int8_linear_class); torch.ao's go through the op's overload packet
    int8 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="int8")
    block = int8.model.transformer.h[1]
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = int8_engine()  # pack the reference for the same kernels
    try:
        for linear in (block.attn.attention.qkv_proj, block.mlp.c_fc, block.mlp.c_proj):
            reference = DynamicLinear(linear.in_features, linear.out_features)
            reference.set_weight_bias(*linear._weight_bias())
            x = torch.randn(3, 2, linear.in_features) * 4  # (B, T, in)
            out = linear(x)
            assert out.shape == (3, 2, linear.out_features) and out.dtype == torch.float32
            assert torch.equal(out, reference(x))
            assert out.abs().max() > 0
    finally:
        torch.backends.quantized.engine = engine
    assert precision_of(int8.model) == "int8"


def test_a_model_cast_whole_to_bf16_gets_the_bf16_layout_and_converts_back_to_fp32():
    from jat_policy.precision import apply_precision

    reference = fresh_model()
    rounded = fresh_model().to(torch.bfloat16)  # what from_pretrained(dtype=torch.bfloat16) loads
    assert precision_of(rounded) == "bf16"
    policy = JatPolicy(rounded, CONT_SPACE, WIDE_BOX, context_window=4)
    assert policy.precision == "bf16"
    laid_out = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="bf16")
    for (name, p), (_, q) in zip(policy.model.named_parameters(), laid_out.model.named_parameters(), strict=True):
        assert p.dtype == q.dtype, name  # the same layout, whichever way the model came in
    back = apply_precision(laid_out.model, "fp32")
    assert precision_of(back) == "fp32"
    assert all(type(m) is torch.nn.Linear for n, m in back.named_modules() if n.endswith(("c_fc", "c_proj")))
    assert all(p.dtype == torch.float32 for p in back.parameters())
    assert back.state_dict().keys() == reference.state_dict().keys()  # parameter names never change
    for name, p in back.state_dict().items():  # bf16-rounded block linears, everything else untouched
        expected = reference.state_dict()[name]
        if name in _block_linear_names(reference):
            expected = expected.to(torch.bfloat16).float()
        torch.testing.assert_close(p, expected, rtol=0, atol=0, msg=name)


def test_fp32_is_the_cpu_default_and_bf16_the_cuda_default():
    model = fresh_model()
    assert JatPolicy(model, CONT_SPACE, WIDE_BOX).precision == "fp32"
    assert resolve_precision(None, model, torch.device("cuda")) == "bf16"  # chosen by issue 15 (not measured)
    assert resolve_precision(None, model.to(torch.bfloat16), torch.device("cpu")) == "bf16"


def test_a_state_of_another_precision_is_refused():
    fp32 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4)
    bf16 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="bf16")
    assert fp32.fingerprint != bf16.fingerprint
    _, state = fp32.predict({"continuous_observation": np.zeros(6, np.float32)})
    with pytest.raises(ValueError, match="another policy"):
        bf16.predict({"continuous_observation": np.zeros(6, np.float32)}, state)


def test_no_precision_warns_on_any_cpu(monkeypatch):
    """bf16 without native bf16 widens its weights (no emulated matmuls), no longer slower than fp32: no warning."""
    import warnings

    import jat_policy.precision as precision_module

    models = [fresh_model() for _ in range(4)]  # built first: tiny models warn of their empty discrete bottleneck
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        JatPolicy(models[0], CONT_SPACE, WIDE_BOX, precision="fp32")
        JatPolicy(models[1], CONT_SPACE, WIDE_BOX, precision="int8")
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN's switch: bf16 hardware computes as AVX2-only
        assert not precision_module.cpu_supports_bf16()
        JatPolicy(models[2], CONT_SPACE, WIDE_BOX, precision="bf16")
        monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: True)
        JatPolicy(models[3], CONT_SPACE, WIDE_BOX, precision="bf16")


@pytest.mark.parametrize(
    ("precision", "device", "match"),
    [("fp16", "cpu", "precision must be one of"), ("int8", "cuda", "CPU only"), ("INT8", "cpu", "'INT8'")],
)
def test_bad_precisions_are_named(precision, device, match):
    with pytest.raises(ValueError, match=match):
        resolve_precision(precision, fresh_model(), torch.device(device))


def test_checkpoints_stay_fp32_and_quantise_at_load(tmp_path):
    policy = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="bf16")
    policy.save(tmp_path / "bf16")
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(tmp_path / "bf16" / "model.safetensors")).values()} <= {
        torch.float32,
        torch.int64,
    }
    fp32 = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4)
    fp32.save(tmp_path / "fp32")
    for loader in (JatPolicy.load, JatPolicy.from_pretrained):
        assert loader(tmp_path / "fp32", precision="int8").precision == "int8"
    loaded = JatPolicy.load(tmp_path / "fp32", precision="int8")
    quantised_here = JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4, precision="int8")
    np.testing.assert_allclose(rollout(loaded), rollout(quantised_here))
    with pytest.raises(ValueError, match="int8 policy cannot be saved"):
        loaded.save(tmp_path / "int8")
    with pytest.raises(ValueError, match="already int8"):
        JatPolicy(loaded.model, CONT_SPACE, WIDE_BOX, precision="fp32")


def test_the_evaluation_factory_and_cli_take_the_precision(tmp_path, capsys):
    from types import SimpleNamespace

    from jat_policy.evaluation.cli import cli_main

    JatPolicy(fresh_model(), CONT_SPACE, WIDE_BOX, context_window=4).save(tmp_path)
    env = SimpleNamespace(observation_space=CONT_SPACE, action_space=WIDE_BOX)
    assert jat_policy_factory(tmp_path, precision="bf16")("task", env).precision == "bf16"
    assert cli_main(["--model", str(tmp_path), "--tasks", "mujoco-pendulum", "--precision", "fp16"]) == 2
    assert "--precision must be one of fp32, bf16, int8, got 'fp16'" in capsys.readouterr().err
