"""The rolling context of :class:`~jat_policy.policy.JatPolicy`: two contexts per env, fed in place, no stalls.

Window rule (:func:`~jat_policy.policy_state.context_start`): at step ``t`` the model sees timesteps ``s(t) .. t``
with positions from 0, and when the window of ``W`` timesteps is full it restarts at its half-way point. Re-encoding
the newest half at that moment (``W + 1`` tokens at once) made that one step 10-15x slower than the others (issue
15). Instead each env keeps two contexts, rows of its state's :class:`~jat_policy.cache.WindowBuffers`:

* the **primary**, the window ``s(t) .. t``, from which the action is read;
* the **secondary**, which starts at the primary's half-way point ``s + W/2`` and receives every timestep from there.

When the window fills (``t = s + W``), the secondary holds exactly the next window ``s + W/2 .. t``: the two rows swap
roles (no copy) and the old primary restarts as the new secondary with ``o_t`` alone. Every step feeds the two new
tokens ``[a_{t-1}, o_t]`` to both rows of every env in one forward pass: 4 tokens per env per step, the same count as
the amortised re-encode, but on every step alike. Both contexts are exact (positions from 0), so every action still
equals the full forward over ``s(t) .. t``.

Reading the cached keys/values is most of a step's attention cost, so each layer reads only what its rows need
(:func:`attention_spans`): the windows and the shorter next windows in separate groups, and local layers only the
last ``window_size`` positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from jat_policy import kernels
from jat_policy.backbone import JatTransformer, build_attention_bias
from jat_policy.cache import RowSpan, WindowBuffers
from jat_policy.policy_state import context_starts

__all__ = ["GraphedStep", "StepPlan", "attention_spans", "plan_step", "step_forward"]

IDLE, START, APPEND = 0, 1, 2  # what a context row does this step

# One more attention call per layer costs about as much as reading this many key columns of one row (jat-small,
# CPU): the price :func:`attention_spans` weighs a new group of rows against the padding it saves.
SPAN_CALL_COLUMNS = 48


@dataclass(frozen=True)
class StepPlan:
    """Where the new tokens of one step go.

    Rows ``[0, N)`` are slot 0 of each env and rows ``[N, 2N)`` slot 1; ``primary`` says which slot is the window.

    Attributes:
        columns: ``(2N, 2)`` column (= position) of ``[a_{t-1}, o_t]`` in each row; placeholder tokens go to the
            never-valid last columns.
        lengths: ``(2N,)`` valid columns of each row after the step.
        primary: ``(N,)`` slot (0 or 1) of each env's window after the step.
        starts: ``(N,)`` ``s(t)``, the first timestep of each env's window after the step.
    """

    columns: np.ndarray
    lengths: np.ndarray
    primary: np.ndarray
    starts: np.ndarray

    def primary_rows(self) -> np.ndarray:
        """``(N,)`` row of each env's window."""
        n = len(self.primary)
        return self.primary * n + np.arange(n)


def plan_step(
    steps: np.ndarray, starts: np.ndarray, primary: np.ndarray, lengths: np.ndarray, window: int
) -> StepPlan:
    """The plan for feeding timestep ``steps[i]`` of every env (0: a new episode).

    Args:
        steps: ``(N,)`` timestep each env is about to see.
        starts: ``(N,)`` first timestep of each env's window before the step.
        primary: ``(N,)`` slot of each env's window before the step.
        lengths: ``(2N,)`` valid columns of each row before the step.
        window: ``W`` in timesteps (even); rows hold ``2 W`` columns.

    Returns:
        The :class:`StepPlan`.
    """
    n, half, capacity = len(steps), window // 2, 2 * window
    fresh = steps == 0
    new_starts = context_starts(steps, window)  # s(t) by the one window rule (0 for a new episode)
    roll = ~fresh & (new_starts != starts)  # the window is full and s(t) moved on: the secondary becomes it
    new_primary = np.where(fresh, 0, np.where(roll, 1 - primary, primary))
    env = np.arange(n)
    action = np.empty(2 * n, dtype=np.int64)
    action[new_primary * n + env] = np.where(fresh, START, APPEND)
    offset = steps - (new_starts + half)  # the secondary starts at the window's half-way point
    action[(1 - new_primary) * n + env] = np.where(fresh | (offset < 0), IDLE, np.where(offset == 0, START, APPEND))
    columns = np.stack((lengths, lengths + 1), axis=1)  # (2N, 2) APPEND
    columns[action == START] = (capacity - 1, 0)  # a placeholder a_{t-1}, then o_t at position 0
    columns[action == IDLE] = (capacity - 2, capacity - 1)  # placeholders only (an idle row holds nothing)
    new_lengths = np.select([action == APPEND, action == START], [lengths + 2, 1], 0)
    return StepPlan(columns, new_lengths, new_primary, new_starts)


def attention_spans(lengths: np.ndarray, window: int | None) -> list[tuple[slice, int, int]]:
    """Groups of consecutive rows, and the key columns ``[start, stop)`` each group attends over.

    A step's keys sit in the rows' buffers; reading them is most of an attention layer's cost (issue 15). A row
    needs columns ``[0, length)`` in a global layer, and in a local one only the last ``window`` positions before
    its first new token. Rows of the two halves (each env's two contexts, :class:`StepPlan`) are never grouped: the
    window and the next window differ in length by ``W`` columns. Within a half, a row joins the current group unless
    the columns it would add to every member cost more than a new attention call (:data:`SPAN_CALL_COLUMNS`).
    Idle rows (length 0) read nothing and join any group.

    Args:
        lengths: ``(R,)`` valid columns of each row after the step (``R`` even: rows ``[0, R/2)`` are slot 0).
        window: The layer's local window in positions, or ``None`` for a global layer.

    Returns:
        ``(rows, start, stop)`` per group, covering the rows in order.
    """
    stops = lengths.astype(np.int64)
    # The first new token sits at column length - 2 (length - 1 for a fresh row); a local layer reaches back
    # ``window - 1`` positions from it.
    starts = np.zeros_like(stops) if window is None else np.maximum(stops - 1 - window, 0)
    groups: list[tuple[slice, int, int]] = []
    half = len(stops) // 2
    for first, last in ((0, half), (half, len(stops))):
        begin, lo, hi = first, None, None
        for row in range(first, last):
            if stops[row] == 0:
                continue
            if lo is None:
                lo, hi = int(starts[row]), int(stops[row])
                continue
            new_lo, new_hi = min(lo, int(starts[row])), max(hi, int(stops[row]))
            members = row - begin
            grown = (members + 1) * (new_hi - new_lo) - members * (hi - lo) - (stops[row] - starts[row])
            if grown <= SPAN_CALL_COLUMNS:
                lo, hi = new_lo, new_hi
            else:
                groups.append((slice(begin, row), lo, hi))
                begin, lo, hi = row, int(starts[row]), int(stops[row])
        if last > first:
            groups.append((slice(begin, last), 0 if lo is None else lo, 1 if hi is None else hi))
    return groups


def step_forward(
    transformer: JatTransformer,
    buffers: WindowBuffers,
    inputs: Tensor,
    columns: Tensor,
    lengths: np.ndarray | Tensor,
    used: int | None = None,
    keep: Tensor | None = None,
) -> Tensor:
    """The transformer over new tokens whose keys/values are written into ``buffers`` in place.

    Each layer writes the new keys/values at ``columns`` first, then attends over the filled columns, those below
    the row's new length being valid; column = position, so causality and the local window follow from the
    positions as in :meth:`JatTransformer.forward` (same masking arithmetic, hence the same numbers).

    Args:
        transformer: The model's backbone.
        buffers: The state's buffers (updated in place).
        inputs: ``(R, T, H)`` input embeddings.
        columns: ``(R, T)`` int64 column (= position) of each new token.
        lengths: ``(R,)`` int64 valid columns of each row after the step: a host array (the spans are planned from
            it, so a CUDA step never waits to read lengths back), or, with ``used``, a tensor (the CUDA graph's
            static input).
        used: Columns every row attends over (the capacity, for static shapes). By default each row reads only the
            columns it needs: each row its own where :func:`jat_policy.kernels.available` (a CPU buffer: fp32 with
            torch on one thread, bf16 always), else each group of rows (:func:`attention_spans`).
        keep: ``(K,)`` rows whose last token's hidden state is all the caller reads (a policy step's ``o_t`` in each
            env's window): the last layer projects only those past its attention, a quarter of its tokens.

    Returns:
        Final hidden states ``(R, T, H)``, or ``(K, 1, H)`` with ``keep``.
    """
    config = transformer.config
    rows = inputs.shape[0]
    reads: dict[str, list[RowSpan] | tuple[np.ndarray, np.ndarray]] = {}
    streamed = (
        used is None and not transformer.training and not torch.is_grad_enabled()
    )  # the kernels are forward only
    if streamed and kernels.available(buffers.keys[0]):
        host_columns = columns.numpy()  # each row reads exactly its own keys (jat_policy.kernels)
        for kind in set(config.attention_layers):
            reads[kind] = kernels.key_ranges(host_columns, lengths, config.window_size if kind == "local" else None)
    else:
        valid = torch.as_tensor(lengths, device=inputs.device)  # (R,)
        for kind in set(config.attention_layers):
            window = config.window_size if kind == "local" else None
            groups = [(slice(0, rows), 0, used)] if used is not None else attention_spans(lengths, window)
            reads[kind] = [
                RowSpan(r, lo, hi, _span_bias(columns[r], valid[r], lo, hi, window)) for r, lo, hi in groups
            ]
    x = transformer.drop(inputs + transformer.wpe(columns))  # (R, T, H)
    slots = buffers.slots(columns)  # (R * heads * T,)
    last = len(transformer.h) - 1
    for i, block in enumerate(transformer.h):
        write = partial(buffers.write, i, slots, reads[block.attn.attention_type])
        x, _, _ = block(x, None, write, keep if i == last else None)
    return transformer.ln_f(x)


def _span_bias(columns: Tensor, lengths: Tensor, start: int, stop: int, window: int | None) -> Tensor:
    """The bias ``(r, 1, T, stop - start)`` of rows with new tokens at ``columns`` over keys ``[start, stop)``."""
    key_positions = torch.arange(start, stop, device=columns.device)  # (S,)
    valid = key_positions[None, :] < lengths[:, None]  # (r, S)
    return build_attention_bias(columns, key_positions.expand(len(columns), -1), valid, window)


class GraphedStep:
    """:func:`step_forward` over the whole capacity, captured once as a CUDA graph and replayed every step.

    A policy step is a few dozen small kernels per layer; on a GPU their launches, not the arithmetic, dominate,
    and a graph replays them in one call. Static shapes make this possible: the buffers are preallocated and the
    attention always spans their ``C`` columns. Inputs are copied into the graph's static tensors before a replay.
    """

    def __init__(self, transformer: JatTransformer, buffers: WindowBuffers, inputs: Tensor) -> None:
        rows, tokens, _ = inputs.shape
        capacity = buffers.capacity
        self.inputs = torch.zeros_like(inputs)
        # Warm-up and capture write only into the never-valid last column, so the state's contexts stay intact.
        self.columns = torch.full((rows, tokens), capacity - 1, dtype=torch.long, device=inputs.device)
        self.lengths = torch.zeros(rows, dtype=torch.long, device=inputs.device)
        run = partial(step_forward, transformer, buffers, self.inputs, self.columns, self.lengths, capacity)
        side = torch.cuda.Stream(device=inputs.device)
        side.wait_stream(torch.cuda.current_stream(inputs.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # kernels choose their algorithms outside the capture
                run()
        torch.cuda.current_stream(inputs.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = run()

    def __call__(self, inputs: Tensor, columns: Tensor, lengths: Tensor) -> Tensor:
        """Replays the step on new inputs; returns ``(R, T, H)`` (a view of the graph's output: copy to keep it)."""
        self.inputs.copy_(inputs)
        self.columns.copy_(columns)
        self.lengths.copy_(lengths)
        self.graph.replay()
        return self.output
