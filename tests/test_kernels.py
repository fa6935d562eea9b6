"""The step's numba loops (jat_policy.kernels): GPT-Neo's masks as key ranges, torch's numbers, bf16 read exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jat_policy import kernels
from jat_policy.backbone import GPTNeoSelfAttentionCore, build_attention_bias
from jat_policy.cache import WindowBuffers
from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy
from jat_policy.rolling import step_forward
from tests.conftest import tiny_config
from tests.test_rolling import CONT_SPACE, WIDE_BOX


def _masks_and_inputs(seed: int, window: int | None):
    """Random rows as a step leaves them: appended tokens, fresh rows and idle rows (placeholders only)."""
    rng = np.random.default_rng(seed)
    rows, capacity = 6, 40
    lengths = rng.integers(2, capacity - 2, rows)
    columns = np.stack((lengths - 2, lengths - 1), axis=1)  # APPEND: [a_{t-1}, o_t] at the row's last two columns
    lengths[1], columns[1] = 1, (capacity - 1, 0)  # START: a placeholder a_{t-1}, then o_t at column 0
    lengths[2], columns[2] = 0, (capacity - 2, capacity - 1)  # IDLE: placeholders only
    positions = torch.arange(capacity).expand(rows, -1)
    valid = positions < torch.as_tensor(lengths)[:, None]
    bias = build_attention_bias(torch.as_tensor(columns), positions, valid, window)  # (R, 1, T, C), GPT-Neo's masks
    return rows, capacity, columns, lengths, bias


@pytest.mark.parametrize("window", [None, 5, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_key_ranges_are_gpt_neo_masks(seed, window):
    """A token attends over [lo, hi) exactly where build_attention_bias leaves a zero bias."""
    rows, capacity, columns, lengths, bias = _masks_and_inputs(seed, window)
    lo, hi = kernels.key_ranges(columns, lengths, window)
    j = np.arange(capacity)
    inside = (lo[:, :, None] <= j) & (j < hi[:, :, None])
    np.testing.assert_array_equal(inside, (bias[:, 0] == 0).numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("window", [None, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_row_attention_equals_torch_attention(seed, window, dtype):
    """Real tokens get torch's masked attention over the whole buffer; tokens that see no key get zeros.

    A bf16 buffer (int8's and bf16's KV cache) is read as the fp32 numbers it holds: the same as torch's fp32
    attention over the buffer cast to fp32.
    """
    rows, capacity, columns, lengths, bias = _masks_and_inputs(seed, window)
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(rows, 4, capacity, 16, generator=gen, dtype=torch.float32).to(dtype)  # (R, heads, C, hd)
    values = torch.randn(rows, 4, capacity, 16, generator=gen, dtype=torch.float32).to(dtype)
    q = torch.randn(rows, 2, 4, 16, generator=gen, dtype=torch.float32).transpose(1, 2)  # a view, as the step's
    lo, hi = kernels.key_ranges(columns, lengths, window)
    assert kernels.available(keys)
    out = kernels.row_attention(q, keys, values, lo, hi)
    expected = GPTNeoSelfAttentionCore._attend_step(q, keys.float(), values.float(), bias)  # (R, heads, T, hd)
    sees = torch.as_tensor(hi > lo)[:, None, :, None].expand_as(out)  # (R, heads, T, hd)
    assert out.shape == (rows, 4, 2, 16) and torch.isfinite(out).all()
    torch.testing.assert_close(out[sees], expected[sees], atol=1e-5, rtol=1e-5)
    assert (out[~sees] == 0).all()
    assert not sees[2].any()  # the idle row's placeholders see nothing


def test_a_range_outside_the_buffer_is_an_error_not_a_stray_read():
    keys = torch.zeros(2, 4, 8, 16, dtype=torch.float32)
    q = torch.zeros(2, 4, 2, 16, dtype=torch.float32)
    ok = np.zeros((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="within the buffer's 8"):
        kernels.row_attention(q, keys, keys, ok, np.full((2, 2), 9))
    with pytest.raises(ValueError, match="do not match"):
        kernels.row_attention(q[:1], keys, keys, ok[:1], ok[:1])
    with pytest.raises(ValueError, match="must both be fp32 or bf16"):
        kernels.row_attention(q, keys, keys.to(torch.bfloat16), ok, ok)


def test_the_kernel_serves_bf16_cpu_buffers_and_fp32_ones_on_one_thread():
    keys = torch.zeros(2, 4, 8, 16, dtype=torch.float32)
    assert kernels.available(keys) and kernels.available(keys.to(torch.bfloat16))
    assert not kernels.available(keys.to(torch.float16))
    assert not kernels.available(keys.transpose(2, 3))  # not contiguous: the kernels index the buffer's memory
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert not kernels.available(keys)  # torch's fp32 matmuls split the heads over the threads
        assert kernels.available(keys.to(torch.bfloat16))  # torch's bf16 attention is emulated without native bf16
    finally:
        torch.set_num_threads(threads)


def test_predict_gives_the_same_actions_with_and_without_the_kernel(monkeypatch):
    """Over two window rollovers, the streamed steps act as torch's matmuls do (and the kernel does run)."""
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=4)
    rng = np.random.default_rng(0)
    observations = [{"continuous_observation": rng.normal(size=(3, 6)).astype(np.float32)} for _ in range(10)]
    calls = []
    stream = kernels.row_attention

    def counted(*args):
        calls.append(1)
        return stream(*args)

    def rollout() -> np.ndarray:
        state, actions = None, []
        for obs in observations:
            action, state = policy.predict(obs, state)
            actions.append(action)
        return np.stack(actions)

    monkeypatch.setattr(kernels, "row_attention", counted)
    streamed = rollout()
    assert calls, "the one-thread CPU step did not use the kernel"
    monkeypatch.setattr(kernels, "available", lambda keys: False)
    np.testing.assert_allclose(streamed, rollout(), atol=1e-5)


def test_a_step_that_needs_gradients_keeps_torch_attention(monkeypatch):
    """The kernels are forward only: with autograd on, the step runs torch's matmuls and its output has a graph."""
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    buffers = WindowBuffers.allocate(2, model.config.num_layers, model.config.num_heads, 8, 8, torch.float32, "cpu")
    monkeypatch.setattr(kernels, "row_attention", None)  # would fail if called
    inputs = torch.randn(2, 2, model.config.hidden_size, requires_grad=True)
    hidden = step_forward(model.transformer, buffers, inputs, torch.tensor([[0, 1], [0, 1]]), np.array([2, 2]))
    hidden.sum().backward()
    assert inputs.grad is not None and torch.isfinite(inputs.grad).all()


@pytest.mark.parametrize("rows", [0, 1, 3, 4, 7, 8])
@pytest.mark.parametrize("bias", [True, False])
def test_bf16_linear_is_the_fp32_matmul_over_the_widened_weights(rows, bias):
    """Any row count up to LINEAR_ROWS (four rows at a time, then one by one), leading dims kept, bias optional."""
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(24, 40, generator=gen, dtype=torch.float32).to(torch.bfloat16)  # (out, in)
    shift = torch.randn(24, generator=gen, dtype=torch.float32).to(torch.bfloat16) if bias else None
    x = torch.randn(1, rows, 40, generator=gen, dtype=torch.float32)
    expected = torch.nn.functional.linear(x, weight.float(), None if shift is None else shift.float())
    out = kernels.bf16_linear(x, weight, shift)
    assert out.shape == (1, rows, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_bf16_linear_refuses_what_its_loop_does_not_serve():
    weight = torch.zeros(8, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=f"at most {kernels.LINEAR_ROWS} rows"):
        kernels.bf16_linear(torch.zeros(kernels.LINEAR_ROWS + 1, 16), weight, None)
    with pytest.raises(ValueError, match="contiguous bf16 weights"):
        kernels.bf16_linear(torch.zeros(2, 16), weight.float(), None)
    with pytest.raises(ValueError, match="do not match"):
        kernels.bf16_linear(torch.zeros(2, 15), weight, None)
