"""The slot encoder's pair-table arithmetic equals the encoder applied as written, values and gradients."""

from __future__ import annotations

import pytest
import torch

from jat_policy import discrete_slots
from jat_policy.discrete_slots import encode_discrete_slots
from jat_policy.modeling import JatModel
from tests.conftest import tiny_config


def _babyai_like_ids(windows: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """(windows, steps, 212): 148 grid ints with few values per cell, then a mission of few words, fixed per window."""
    grid = torch.randint(0, 6, (windows, steps, 148), generator=generator)
    mission = torch.randint(20, 28, (windows, 1, 64), generator=generator).expand(-1, steps, -1)
    return torch.cat((grid, mission), dim=-1)


@pytest.mark.parametrize("diverse", [False, True], ids=["few-pairs", "many-pairs"])
def test_encoder_equals_the_modules_as_written(monkeypatch, diverse) -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config(discrete_slot_size=16)).to(torch.float64)  # float64: only summation order differs
    generator = torch.Generator().manual_seed(1)
    if diverse:  # every slot takes most of the vocabulary: the 0/1 matrix would cost more, the direct path runs
        ids = torch.randint(0, 64, (16, 8, 212), generator=generator)
    else:
        ids = _babyai_like_ids(16, 8, generator)
    calls = []
    pair_path = discrete_slots._sum_pair_products
    monkeypatch.setattr(discrete_slots, "_sum_pair_products", lambda *a: calls.append(1) or pair_path(*a))
    got = model._encode_discrete_slots(ids)  # (16, 8, H - 1)
    assert calls == ([] if diverse else [1])
    want = model.multi_discrete_encoder(ids)  # embedding, per-slot linear, ReLU, flatten, linear
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    params = list(model.multi_discrete_encoder.parameters())
    weights = torch.randn_like(want)
    grads = torch.autograd.grad((got * weights).sum(), params)
    for got_grad, want_grad in zip(grads, torch.autograd.grad((want * weights).sum(), params), strict=True):
        torch.testing.assert_close(got_grad, want_grad, atol=1e-10, rtol=1e-10)


def test_pair_table_keeps_bias_and_shape(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(2)
    ids = _babyai_like_ids(4, 3, generator)
    table = torch.randn(64, 16, dtype=torch.float64, generator=generator)
    weight = torch.randn(31, 212 * 16, dtype=torch.float64, generator=generator)
    bias = torch.randn(31, dtype=torch.float64, generator=generator)
    calls = []
    pair_path = discrete_slots._sum_pair_products
    monkeypatch.setattr(discrete_slots, "_sum_pair_products", lambda *a: calls.append(1) or pair_path(*a))
    out = encode_discrete_slots(ids, table, weight, bias)
    assert out.shape == (4, 3, 31) and calls == [1]
    want = torch.relu(table[ids]).flatten(2) @ weight.t() + bias
    torch.testing.assert_close(out, want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(encode_discrete_slots(ids, table, weight, None), want - bias, atol=1e-12, rtol=1e-12)
