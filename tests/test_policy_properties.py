"""Property-based tests of ``JatPolicy.predict``: any input gives a valid result or a ValueError/TypeError naming it.

Random batch sizes (0 included), observation values (NaN, inf, huge, subnormal, ...), single or batched
observations, ``episode_start`` of any length or shape, and states from the same policy or from other ones (other
action spaces, observation spaces, model configs, context windows, numbers of envs). The default run draws a few
dozen cases; ``-m slow`` draws many more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jat_policy.modeling import JatModel
from jat_policy.policy import MAX_INPUT_MAGNITUDE, JatPolicy, JatPolicyState
from tests.conftest import tiny_config

REWARD = spaces.Box(-np.inf, np.inf, (1,), np.float32)
MISSIONS = ["go to the red ball", "open the door", ""]
POLICY_NAMES = ("box", "discrete", "box_window_6", "box_other_model", "babyai")
INVALID = (np.nan, np.inf, -np.inf, 1e22, -3e38, 2 * MAX_INPUT_MAGNITUDE)


@cache
def policies() -> dict[str, JatPolicy]:
    """A small zoo of tiny policies, built once (hypothesis reruns the test body, not fixtures)."""
    from jat_policy.processing import JatProcessor

    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    other = JatModel(tiny_config(num_layers=1, attention_types=[[["global"], 1]])).eval()
    text_model = JatModel(tiny_config(vocab_size=512)).eval()
    cont = spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (5,), np.float32)})
    babyai = spaces.Dict(
        {
            "discrete_observation": spaces.MultiDiscrete(np.full(148, 11), dtype=np.int64),
            "text_observation": spaces.Text(64, min_length=0, charset="abcdefghijklmnopqrstuvwxyz "),
            "reward": REWARD,
        }
    )
    box = spaces.Box(-1.0, 1.0, (3,), np.float32)
    processor = JatProcessor.from_config(text_model.config)
    return {
        "box": JatPolicy(model, cont, box, context_window=4),
        "discrete": JatPolicy(model, cont, spaces.Discrete(4, start=-1), context_window=4),
        "box_window_6": JatPolicy(model, cont, box, context_window=6),
        "box_other_model": JatPolicy(other, cont, box, context_window=4),
        "babyai": JatPolicy(text_model, babyai, spaces.Discrete(3), processor=processor, context_window=4),
    }


@dataclass
class Case:
    policy: str
    n_envs: int
    vectorized: bool
    observation: dict[str, Any]
    episode_start: Any
    state_from: str | None  # the policy whose predict built the state; None: state=None
    state_envs: int
    state_steps: int
    deterministic: bool


def values(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """float32 arrays: usually ordinary numbers, sometimes any float32 (NaN, inf, huge), sometimes a planted one."""
    ordinary = hnp.arrays(np.float32, shape, elements=st.floats(-10, 10, width=32))
    anything = hnp.arrays(np.float32, shape, elements=st.floats(width=32))

    @st.composite
    def planted(draw: st.DrawFn) -> np.ndarray:
        array = draw(ordinary)
        if array.size:
            array.reshape(-1)[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from(INVALID))
        return array

    return st.one_of(ordinary, ordinary, anything, planted())


@st.composite
def observations(draw: st.DrawFn, name: str, n_envs: int, vectorized: bool) -> dict[str, Any]:
    lead = (n_envs,) if vectorized else ()
    if name != "babyai":
        return {"continuous_observation": draw(values((*lead, 5)))}
    grid = draw(hnp.arrays(np.int64, (*lead, 148), elements=st.integers(0, 10)))
    missions = draw(st.lists(st.sampled_from(MISSIONS), min_size=n_envs, max_size=n_envs))
    return {
        "discrete_observation": grid,
        "text_observation": missions if vectorized else missions[0],
        "reward": draw(values((*lead, 1))),
    }


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(POLICY_NAMES))
    n_envs = draw(st.integers(0, 4))
    vectorized = n_envs != 1 or draw(st.booleans())
    episode_start = draw(
        st.one_of(
            st.none(),
            hnp.arrays(bool, st.integers(0, 5)),
            hnp.arrays(bool, (n_envs,)),
            hnp.arrays(bool, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)),
        )
    )
    state_from = draw(st.one_of(st.none(), st.just(name), st.sampled_from(POLICY_NAMES)))
    state_envs = draw(st.one_of(st.just(n_envs), st.just(n_envs), st.integers(0, 4)))
    return Case(
        policy=name,
        n_envs=n_envs,
        vectorized=vectorized,
        observation=draw(observations(name, n_envs, vectorized)),
        episode_start=episode_start,
        state_from=state_from,
        state_envs=state_envs,
        state_steps=draw(st.integers(0, 5)),  # up to past a rollover of the 4-step window
        deterministic=draw(st.booleans()),
    )


def clean_observation(name: str, n_envs: int) -> dict[str, Any]:
    if name != "babyai":
        return {"continuous_observation": np.ones((n_envs, 5), np.float32)}
    return {
        "discrete_observation": np.ones((n_envs, 148), np.int64),
        "text_observation": ["open the door"] * n_envs,
        "reward": np.zeros((n_envs, 1), np.float32),
    }


def build_state(case: Case) -> JatPolicyState | None:
    if case.state_from is None:
        return None
    source, n_envs = policies()[case.state_from], case.state_envs
    state = JatPolicyState.initial(n_envs, source.context_window, source.fingerprint)
    for _ in range(case.state_steps):
        _, state = source.predict(clean_observation(case.state_from, n_envs), state)
    return state


def expected_problem(case: Case, policy: JatPolicy, state: JatPolicyState | None) -> str | None:
    """A regular expression the error must match, in the order predict checks; ``None``: the call must succeed."""
    for key in ("continuous_observation", "reward"):
        value = case.observation.get(key)
        if value is not None and not (np.abs(value) <= MAX_INPUT_MAGNITUDE).all():
            return rf"observation\['{key}'\] of .*env \d+"
    if case.episode_start is not None and np.asarray(case.episode_start).size != case.n_envs:
        return rf"episode_start has {np.asarray(case.episode_start).size} entries for {case.n_envs} envs"
    if state is None:
        return None
    if state.n_envs != case.n_envs:
        return f"holds {state.n_envs} envs"
    if state.context_window != policy.context_window:
        return "context_window"
    if state.policy_fingerprint != policy.fingerprint:
        return "another policy.*state=None"
    return None


def check_predict(case: Case) -> None:
    policy = policies()[case.policy]
    state = build_state(case)
    problem = expected_problem(case, policy, state)
    outcome = re.sub(r"\d+", "N", (problem or "actions").split(" of")[0])
    event(f"outcome: {outcome}")  # shown by --hypothesis-show-statistics
    try:
        actions, new_state = policy.predict(case.observation, state, case.episode_start, case.deterministic)
    except (ValueError, TypeError) as err:
        assert problem is not None, f"unexpected {type(err).__name__}: {err}"
        assert_matches(problem, str(err))
        clean = replace(case, observation=clean_observation(case.policy, case.n_envs), episode_start=None)
        if state is not None and expected_problem(clean, policy, state) is None:  # the state is still usable
            check_actions(policy, policy.predict(clean.observation, state)[0], case.n_envs)
        return
    assert problem is None, f"predict accepted an input that should fail with {problem!r}"
    check_actions(policy, actions if case.vectorized else actions[None], case.n_envs)
    assert new_state.n_envs == case.n_envs and new_state.policy_fingerprint == policy.fingerprint


def assert_matches(pattern: str, message: str) -> None:
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"


def check_actions(policy: JatPolicy, actions: np.ndarray, n_envs: int) -> None:
    space = policy.action_space
    assert actions.shape == (n_envs, *space.shape) and actions.dtype == space.dtype
    assert all(space.contains(action) for action in actions), actions


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=25, **SETTINGS)
@given(cases())
def test_predict_gives_valid_actions_or_a_named_error(case):
    check_predict(case)


@pytest.mark.slow
@settings(max_examples=400, **SETTINGS)
@given(cases())
def test_predict_gives_valid_actions_or_a_named_error_deeply(case):
    check_predict(case)
