"""The double-window schedule (jat_policy.rolling): contexts match the window rule, static shapes change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy
from jat_policy.policy_state import context_start
from jat_policy.rolling import SPAN_CALL_COLUMNS, attention_spans, plan_step, step_forward
from tests.conftest import tiny_config

CONT_SPACE = spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (6,), np.float32)})
WIDE_BOX = spaces.Box(-100.0, 100.0, (3,), np.float32)


@pytest.mark.parametrize("window", [2, 4, 10])
def test_the_window_row_always_holds_exactly_s_t_to_t(window):
    """Simulated over many windows, with resets: the primary row holds 2 (t - s(t)) + 1 tokens, the other row
    the timesteps from the window's half-way point, and a roll hands that row over as the next window."""
    n, half, capacity = 3, window // 2, 2 * window
    rng = np.random.default_rng(0)
    steps, starts, primary = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    lengths = np.zeros(2 * n, np.int64)
    for _ in range(12 * window):
        steps = np.where(rng.random(n) < 0.02, 0, steps)  # episode starts
        plan = plan_step(steps, starts, primary, lengths, window)
        for i, t in enumerate(steps):
            s = context_start(int(t), window)
            assert plan.starts[i] == s
            assert plan.lengths[plan.primary_rows()[i]] == 2 * (t - s) + 1
            other = plan.lengths[(1 - plan.primary[i]) * n + i]
            assert other == (2 * (t - s - half) + 1 if t >= s + half else 0)
            rolled = t > 0 and plan.primary[i] != primary[i]
            if rolled:  # the new window is the old secondary, extended by [a_{t-1}, o_t]
                assert plan.lengths[plan.primary_rows()[i]] == lengths[plan.primary_rows()[i]] + 2
        assert plan.lengths.max() <= capacity - 1  # the last column stays a placeholder slot
        assert (plan.columns < capacity).all() and (plan.columns >= 0).all()
        steps, starts, primary, lengths = steps + 1, plan.starts, plan.primary, plan.lengths


def _spanned_matches_static(model: JatModel, state, window: int) -> None:
    """The next step's default (spanned) forward equals attending over the whole capacity, on its real tokens."""
    plan = plan_step(state.steps, state.context_starts, state.primary, state.buffers.lengths, window)
    inputs = torch.randn(len(plan.lengths), 2, model.config.hidden_size)
    columns, lengths = torch.as_tensor(plan.columns), plan.lengths
    copy = state.copy().buffers
    with torch.no_grad():
        spanned = step_forward(model.transformer, state.copy().buffers, inputs, columns, lengths)
        static = step_forward(model.transformer, copy, inputs, columns, lengths, copy.capacity)
    real = torch.as_tensor(plan.columns < 2 * window - 2)  # placeholder tokens (last columns) are discarded
    torch.testing.assert_close(static[real], spanned[real], atol=1e-5, rtol=1e-5)


def _rolled(n_envs: int) -> tuple[JatModel, object]:
    """A tiny model and its policy's state after 7 steps of ``n_envs`` envs (W = 4: past a rollover)."""
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=4)
    rng = np.random.default_rng(0)
    state = None
    for _ in range(7):
        obs = {"continuous_observation": rng.normal(size=(n_envs, 6)).astype(np.float32)}
        _, state = policy.predict(obs, state)
    return model, state


def test_attending_over_the_whole_capacity_changes_nothing():
    """The static-shape step (the CUDA graph path attends over all C columns) gives the trimmed step's numbers."""
    model, state = _rolled(2)
    _spanned_matches_static(model, state, 4)


@pytest.mark.parametrize("kernel", [True, False])
def test_keeping_only_the_windows_last_token_gives_its_hidden_state_and_the_same_cache(monkeypatch, kernel):
    """keep= projects only each window's o_t past the last attention: the same numbers, the same keys/values."""
    from jat_policy import kernels

    if not kernel:  # torch's attention (more threads, or no numba)
        monkeypatch.setattr(kernels, "available", lambda keys: False)
    model, state = _rolled(3)
    plan = plan_step(state.steps, state.context_starts, state.primary, state.buffers.lengths, 4)
    inputs = torch.randn(len(plan.lengths), 2, model.config.hidden_size)
    columns, windows = torch.as_tensor(plan.columns), torch.as_tensor(plan.primary_rows())
    every, kept = state.copy().buffers, state.copy().buffers
    with torch.no_grad():
        full = step_forward(model.transformer, every, inputs, columns, plan.lengths)  # (2N, 2, H)
        last = step_forward(model.transformer, kept, inputs, columns, plan.lengths, keep=windows)
    assert last.shape == (3, 1, model.config.hidden_size)
    torch.testing.assert_close(last, full[windows, 1:], atol=1e-6, rtol=1e-6)
    for a, b in zip(every.keys + every.values, kept.keys + kept.values, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("window", [None, 6])
def test_attention_spans_cover_every_column_a_row_needs(window):
    """Groups are consecutive rows within one half (an env's two contexts never share one); each row's group spans
    its filled columns (a local layer's: from its window's start); rows of equal length share one group."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        lengths = rng.integers(0, 40, size=2 * n) * (rng.random(2 * n) < 0.9)  # some idle rows
        groups = attention_spans(lengths, window)
        assert groups[0][0].start == 0 and groups[-1][0].stop == 2 * n
        for (a, _, _), (b, _, _) in zip(groups, groups[1:], strict=False):
            assert a.stop == b.start
        for rows, start, stop in groups:
            assert rows.stop <= n or rows.start >= n
            assert 0 <= start < stop
            for length in lengths[rows]:
                if length:
                    needed = 0 if window is None else max(length - 1 - window, 0)
                    assert start <= needed and stop >= length
    same = attention_spans(np.array([30, 30, 30, 9, 9, 9]), window)
    assert [(r.start, r.stop) for r, _, _ in same] == [(0, 3), (3, 6)]
    apart = attention_spans(np.array([300, 2, 1, 1]), None)  # joining would add ~300 columns to a row
    assert len(apart) == 3 and 300 > SPAN_CALL_COLUMNS


def test_reading_only_the_needed_columns_changes_nothing_out_of_sync():
    """Envs reset at different times (rows of every length, local layers past their window): the spanned step
    gives the numbers of attending over the whole capacity, step after step."""
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    window = 10
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=window)
    rng = np.random.default_rng(0)
    state = None
    for t in range(40):
        obs = {"continuous_observation": rng.normal(size=(5, 6)).astype(np.float32)}
        _, state = policy.predict(obs, state, rng.random(5) < 0.08)
        if t >= 12:
            _spanned_matches_static(model, state, window)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_steps_match_the_eager_steps_on_gpu():
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    graphed = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=4, device="cuda", precision="fp32")
    eager = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=4, precision="fp32", cuda_graph=False)
    assert graphed.cuda_graph and not eager.cuda_graph
    rng = np.random.default_rng(0)
    states = [None, None]
    for t in range(14):  # several rollovers and a reset
        obs = {"continuous_observation": rng.normal(size=(3, 6)).astype(np.float32)}
        start = np.array([t == 9, False, False])
        a, states[0] = graphed.predict(obs, states[0], start, deterministic=True)
        b, states[1] = eager.predict(obs, states[1], start, deterministic=True)
        np.testing.assert_allclose(a, b, atol=1e-4)
