"""The streamed step attention (jat_policy.kernels): torch's numbers, used on one thread only, same actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jat_policy import kernels
from jat_policy.backbone import GPTNeoSelfAttentionCore
from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy
from tests.conftest import tiny_config
from tests.test_rolling import CONT_SPACE, WIDE_BOX


def _torch_attention(q, keys, values, row0, start, bias):
    rows, columns = q.shape[0], bias.shape[-1]
    k = keys[row0 : row0 + rows, :, start : start + columns]
    v = values[row0 : row0 + rows, :, start : start + columns]
    return GPTNeoSelfAttentionCore._attend_step(q, k, v, bias)


@pytest.mark.parametrize(
    ("rows", "tokens", "row0", "start", "columns"), [(1, 2, 0, 0, 37), (3, 2, 2, 5, 59), (2, 1, 1, 60, 1)]
)
def test_stream_attention_equals_torch_attention(rows, tokens, row0, start, columns):
    """Rows and columns anywhere in the buffer, masked keys, and a row with every key masked (finite, uniform)."""
    gen = torch.Generator().manual_seed(rows * 100 + columns)
    keys = torch.randn(6, 4, 64, 16, generator=gen, dtype=torch.float32)  # (R, heads, C, hd)
    values = torch.randn(6, 4, 64, 16, generator=gen, dtype=torch.float32)
    q = torch.randn(rows, tokens, 4, 16, generator=gen, dtype=torch.float32).transpose(1, 2)  # a view, as the step's
    low = torch.finfo(torch.float32).min
    bias = torch.where(torch.rand(rows, 1, tokens, columns, generator=gen) < 0.3, low, 0.0)
    bias[-1, :, -1] = float("-inf")  # the masking arithmetic's finfo.min + finfo.min
    assert kernels.available(keys)
    out = kernels.stream_attention(q, keys, values, row0, start, bias)
    expected = _torch_attention(q, keys, values, row0, start, bias)
    assert out.shape == (rows, 4, tokens, 16) and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_a_span_outside_the_buffer_is_an_error_not_a_stray_read():
    keys = torch.zeros(2, 4, 8, 16, dtype=torch.float32)
    q = torch.zeros(1, 4, 2, 16, dtype=torch.float32)
    with pytest.raises(ValueError, match="columns 4:10 of a buffer of 8"):
        kernels.stream_attention(q, keys, keys, 1, 4, torch.zeros(1, 1, 2, 6))
    with pytest.raises(ValueError, match="rows 1:3 of a buffer of 2"):
        kernels.stream_attention(torch.zeros(2, 4, 2, 16), keys, keys, 1, 0, torch.zeros(2, 1, 2, 6))


def test_the_kernel_serves_only_fp32_cpu_buffers_on_one_thread():
    keys = torch.zeros(2, 4, 8, 16, dtype=torch.float32)
    assert kernels.available(keys)
    assert not kernels.available(keys.to(torch.bfloat16))
    assert not kernels.available(keys.transpose(2, 3))  # not contiguous: the kernels index the buffer's memory
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert not kernels.available(keys)  # torch's matmuls split the heads over the threads
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
    stream = kernels.stream_attention

    def counted(*args):
        calls.append(1)
        return stream(*args)

    def rollout() -> np.ndarray:
        state, actions = None, []
        for obs in observations:
            action, state = policy.predict(obs, state)
            actions.append(action)
        return np.stack(actions)

    monkeypatch.setattr(kernels, "stream_attention", counted)
    streamed = rollout()
    assert calls, "the one-thread CPU step did not use the kernel"
    monkeypatch.setattr(kernels, "available", lambda keys: False)
    np.testing.assert_allclose(streamed, rollout(), atol=1e-5)
