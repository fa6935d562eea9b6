"""Property-based tests: ``wrap_env`` over random spaces, the dataset validator over random (corrupted) episodes.

The only acceptable outcomes are a correct result or a ValueError/TypeError that names the problem. The default
run draws a bounded number of examples; ``-m slow`` draws many more.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jat_policy.data import DatasetValidationError, EpisodeSchema, collect, validate_episode  # noqa: F401
from jat_policy.data.collect import env_schema
from jat_policy.data.experts import RandomExpert
from jat_policy.data.rollout import play
from jat_policy.wrappers import wrap_env
from jat_policy.wrappers.common import MAX_DISCRETE_SIZE, MAX_DISCRETE_VALUE, STEP_KEYS

# resolve the lazy collect() before importing its module: importing jat_policy.data.collect first would leave the
# package attribute `collect` pointing at the module, for every later test in this process
from tests.conftest import sampled_env

FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------- spaces
_bound = st.one_of(st.floats(-1e3, 1e3, width=32), st.just(np.inf))


@st.composite
def float_boxes(draw) -> spaces.Box:
    n = draw(st.integers(1, 400))
    low, span = draw(st.floats(-1e3, 1e3, width=32)), draw(_bound)
    high = np.float32(low + abs(span)) if np.isfinite(span) else np.inf
    return spaces.Box(np.float32(low), high, (n,), np.float32)


@st.composite
def int_boxes(draw) -> spaces.Box:
    shape = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8]))
    low = draw(st.integers(0, 5)) if dtype == np.uint8 else draw(st.integers(-5, 5))
    high = low + draw(st.integers(0, 250 if dtype == np.uint8 else 70000))
    return spaces.Box(low, min(high, 255) if dtype == np.uint8 else high, shape, dtype)


discrete = st.builds(spaces.Discrete, st.integers(1, 70000), start=st.integers(-3, 60000))
multi_discrete = st.lists(st.integers(1, 1000), min_size=1, max_size=260).map(spaces.MultiDiscrete)
multi_binary = st.integers(1, 260).map(spaces.MultiBinary)
leaf_spaces = st.one_of(float_boxes(), int_boxes(), discrete, multi_discrete, multi_binary)


@st.composite
def dict_spaces(draw) -> spaces.Dict:
    entries = draw(st.lists(leaf_spaces, min_size=1, max_size=3))
    out = {f"k{i}": space for i, space in enumerate(entries)}
    if draw(st.booleans()):
        out["mission"] = spaces.Text(max_length=draw(st.integers(1, 300)))
    return spaces.Dict(out)


observation_spaces = st.one_of(leaf_spaces, dict_spaces())
action_spaces = st.one_of(
    st.integers(1, 20).map(spaces.Discrete),
    st.integers(1, 8).map(lambda k: spaces.Box(-1.0, 1.0, (k,), np.float32)),
    st.just(spaces.MultiDiscrete([2, 3])),
)


def _check_wrap_env(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    try:
        env = wrap_env(sampled_env(observation_space, action_space, length=2))
    except (ValueError, TypeError) as error:
        message = str(error)
        assert "space" in message.lower() or "values" in message.lower(), message  # names what was wrong
        return
    assert set(env.observation_space.spaces) <= set(STEP_KEYS)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs), (obs, env.observation_space)
    if "discrete_observation" in obs:  # what wrap_env accepts, the model can embed
        values = obs["discrete_observation"]
        assert len(values) <= MAX_DISCRETE_SIZE and 0 <= values.min() and values.max() < MAX_DISCRETE_VALUE
    # ... and what it accepts, the collector records and the validator accepts
    result = play(env, RandomExpert(), 0, 0, 3, quiet=True)
    validate_episode(result.row, env_schema(env), index=0)


@FAST
@given(observation_spaces, action_spaces)
def test_wrap_env_accepts_or_names_the_problem(observation_space, action_space):
    _check_wrap_env(observation_space, action_space)


@pytest.mark.slow
@DEEP
@given(observation_spaces, action_spaces)
def test_wrap_env_accepts_or_names_the_problem_deep(observation_space, action_space):
    _check_wrap_env(observation_space, action_space)


# ----------------------------------------------------------------------------------------------- episodes
@st.composite
def episodes(draw) -> tuple[EpisodeSchema, dict]:
    """A valid episode and its schema: continuous or discrete observations, discrete or bounded actions."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = draw(st.integers(1, 20))
    if draw(st.booleans()):
        size = draw(st.integers(1, 40))
        obs_column, observations, high = "continuous_observations", rng.normal(size=(steps, size)), None
    else:
        size, high = draw(st.integers(1, 212)), draw(st.integers(2, MAX_DISCRETE_VALUE))
        obs_column, observations = "discrete_observations", rng.integers(0, high, (steps, size))
    row = {obs_column: observations.astype(np.float32 if obs_column[0] == "c" else np.int64)}
    row["rewards"] = rng.normal(size=steps).astype(np.float32)
    if draw(st.booleans()):
        n = draw(st.integers(1, 18))
        row["discrete_actions"] = rng.integers(0, n, steps)
        schema = EpisodeSchema((obs_column,), "discrete_actions", size, num_actions=n, observation_high=high)
    else:
        k, bound = draw(st.integers(1, 6)), draw(st.floats(0.1, 10))
        row["continuous_actions"] = rng.uniform(-bound, bound, (steps, k)).astype(np.float32)
        schema = EpisodeSchema(
            (obs_column,), "continuous_actions", size, k, observation_high=high,
            action_low=(-bound,) * k, action_high=(bound,) * k,
        )  # fmt: skip
    return schema, row


def _corrupt(row: dict, schema: EpisodeSchema, kind: str, rng: np.random.Generator) -> tuple[dict, str]:
    """One corruption the validator must catch; returns the corrupted row and the column at fault."""
    row = dict(row)
    obs, action = schema.observation_columns[0], schema.action_column
    steps = len(row["rewards"])
    t = int(rng.integers(0, steps))
    if kind == "length":
        row[action] = row[action][:-1] if steps > 1 else np.concatenate([row[action], row[action]])
        return row, action
    if kind == "size":
        row[obs] = np.concatenate([row[obs], row[obs][:, :1]], axis=1)
        return row, obs
    if kind == "non-finite" and obs.startswith("continuous"):
        row[obs] = row[obs].copy()
        row[obs][t, 0] = np.nan
        return row, obs
    if kind == "non-finite" or kind == "reward":
        row["rewards"] = row["rewards"].copy()
        row["rewards"][t] = np.inf
        return row, "rewards"
    if kind == "discrete-value" and obs.startswith("discrete"):
        row[obs] = row[obs].copy()
        row[obs][t, 0] = int(rng.choice([-1, schema.observation_high]))
        return row, obs
    row[action] = row[action].copy()  # "action"
    if action == "discrete_actions":
        row[action][t] = int(rng.choice([-1, schema.num_actions]))
    else:
        row[action][t, 0] = schema.action_high[0] * 1.5 + 0.1
    return row, action


def _check_episode(episode: tuple[EpisodeSchema, dict], kind: str | None, seed: int) -> None:
    schema, row = episode
    if kind is None:
        validate_episode(row, schema, index=4)
        return
    row, column = _corrupt(row, schema, kind, np.random.default_rng(seed))
    with pytest.raises(DatasetValidationError) as info:
        validate_episode(row, schema, index=4)
    assert info.value.episode == 4 and info.value.column == column, str(info.value)


corruptions = st.sampled_from([None, "length", "size", "non-finite", "reward", "discrete-value", "action"])


@FAST
@given(episodes(), corruptions, st.integers(0, 1000))
def test_the_validator_accepts_valid_episodes_and_names_corrupted_ones(episode, kind, seed):
    _check_episode(episode, kind, seed)


@pytest.mark.slow
@DEEP
@given(episodes(), corruptions, st.integers(0, 1000))
def test_the_validator_accepts_valid_episodes_and_names_corrupted_ones_deep(episode, kind, seed):
    _check_episode(episode, kind, seed)


# ----------------------------------------------------------------------------------------------- files on disk
@st.composite
def file_damage(draw) -> tuple[int, str, float, int]:
    """(which data file, how, where in it as a fraction, a byte value / size)."""
    return (
        draw(st.integers(0, 1000)),
        draw(st.sampled_from(["zero-4k", "bit-flip", "truncate", "garbage", "empty"])),
        draw(st.floats(0, 1)),
        draw(st.integers(1, 255)),
    )


def _damage(path, how: str, where: float, value: int) -> None:
    data = bytearray(path.read_bytes())
    at = min(int(where * len(data)), max(len(data) - 1, 0))
    if how == "zero-4k":
        data[at : at + 4096] = bytes(len(data[at : at + 4096]))
    elif how == "bit-flip" and data:
        data[at] ^= 1 << (value % 8)
    elif how == "truncate":
        data = data[:at]
    elif how == "garbage":
        data[at : at + 64] = bytes([value]) * len(data[at : at + 64])
    else:
        data = bytearray()
    path.write_bytes(bytes(data))


def _check_damaged_dataset(tmp_path_factory, damage, fmt: str, checksums: bool) -> None:
    import json

    from datasets import Dataset

    from jat_policy.data import METADATA_FILE, METAWORLD_FEATURES, load_jat_dataset, save_dataset

    root = tmp_path_factory.mktemp("damaged")
    rng = np.random.default_rng(0)
    rows = [
        {
            "continuous_observations": rng.normal(size=(20, 39)).astype(np.float32),
            "continuous_actions": rng.uniform(-1, 1, (20, 4)).astype(np.float32),
            "rewards": rng.normal(size=20).astype(np.float32),
        }
        for _ in range(3)
    ]
    folder = save_dataset(Dataset.from_list(rows, features=METAWORLD_FEATURES), root, "metaworld-reach", format=fmt)
    meta = json.loads((folder / METADATA_FILE).read_text())
    if not checksums:
        (folder / METADATA_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "checksums"}))
    files = sorted(meta["checksums"]["files"])
    index, how, where, value = damage
    target = folder / files[index % len(files)]
    before = target.read_bytes()
    _damage(target, how, where, value)
    changed = target.read_bytes() != before
    try:
        load_jat_dataset("metaworld-reach", path=root, cache_dir=str(root / "cache"))
    except DatasetValidationError as error:
        assert str(folder) in str(error), str(error)  # names the folder or the file
        return
    # only an unchanged file, or a change the Arrow format cannot see without checksums, loads
    assert not changed or not checksums, f"{how} of {target.name} loaded despite its checksum"


@FAST
@given(file_damage(), st.sampled_from(["disk", "parquet"]), st.booleans())
def test_damaged_files_fail_loudly_and_name_the_path(tmp_path_factory, damage, fmt, checksums):
    _check_damaged_dataset(tmp_path_factory, damage, fmt, checksums)


@pytest.mark.slow
@DEEP
@given(file_damage(), st.sampled_from(["disk", "parquet"]), st.booleans())
def test_damaged_files_fail_loudly_and_name_the_path_deep(tmp_path_factory, damage, fmt, checksums):
    _check_damaged_dataset(tmp_path_factory, damage, fmt, checksums)
