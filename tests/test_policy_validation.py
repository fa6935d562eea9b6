"""JatPolicy.predict's input contract: invalid values, empty batches, states of other policies, episode_start."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces

from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel
from jat_policy.policy import MAX_INPUT_MAGNITUDE, JatPolicy, JatPolicyState
from tests.conftest import tiny_config

CONT_SPACE = spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (6,), np.float32)})
BOX = spaces.Box(-100.0, 100.0, (3,), np.float32)
REWARD = spaces.Box(-np.inf, np.inf, (1,), np.float32)
DISCRETE_SPACE = spaces.Dict({"discrete_observation": spaces.MultiDiscrete(np.full(212, 3)), "reward": REWARD})
IMAGE_SPACE = spaces.Dict({"image_observation": spaces.Box(0, 255, (84, 84, 4), np.uint8), "reward": REWARD})
INVALID = [np.nan, np.inf, -np.inf, 1e22, -2 * MAX_INPUT_MAGNITUDE]


@pytest.fixture(scope="module")
def model() -> JatModel:
    torch.manual_seed(0)
    return JatModel(tiny_config()).eval()


def cont(values) -> dict[str, np.ndarray]:
    return {"continuous_observation": np.asarray(values, dtype=np.float32)}


def discrete(rewards) -> dict[str, np.ndarray]:
    rewards = np.asarray(rewards, dtype=np.float32).reshape(-1, 1)
    return {"discrete_observation": np.ones((len(rewards), 212), np.int64), "reward": rewards}


# --------------------------------------------------------------------------------------------------
# NaN, inf and values that overflow the model
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", INVALID)
def test_invalid_continuous_value_names_the_key_and_the_env(model, bad):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    obs = np.zeros((3, 6), np.float32)
    obs[1, 0] = bad
    with pytest.raises(ValueError, match=r"'continuous_observation'\] of env 1 \(row 1 of the batch\).*index 0"):
        policy.predict(cont(obs))
    with pytest.raises(ValueError, match=r"of the observation \(env 0\)"):
        policy.predict(cont(obs[1]))


def test_invalid_previous_reward_inside_the_continuous_vector_is_called_the_reward(model):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    obs = np.zeros(6, np.float32)
    obs[-1] = np.inf
    with pytest.raises(ValueError, match="index 5 \\(its last entry, the previous reward\\)"):
        policy.predict(cont(obs))


@pytest.mark.parametrize("deterministic", [True, False])  # False raised torch's "probability tensor contains nan"
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_invalid_reward_with_discrete_actions(model, bad, deterministic):
    policy = JatPolicy(model, DISCRETE_SPACE, spaces.Discrete(3), context_window=4)
    with pytest.raises(ValueError, match=r"observation\['reward'\] of env 2"):
        policy.predict(discrete([0.0, 1.0, bad]), deterministic=deterministic)


@pytest.mark.parametrize("deterministic", [True, False])
def test_invalid_observation_with_discrete_actions(model, deterministic):
    policy = JatPolicy(model, CONT_SPACE, spaces.Discrete(3), context_window=4)
    with pytest.raises(ValueError, match="continuous_observation"):
        policy.predict(cont([0, np.nan, 0, 0, 0, 0]), deterministic=deterministic)


def test_invalid_float_frames(model):
    policy = JatPolicy(model, IMAGE_SPACE, spaces.Discrete(3), context_window=4)
    frames = np.zeros((2, 84, 84, 4))
    frames[0, 3, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"'image_observation'\] of env 0"):
        policy.predict({"image_observation": frames, "reward": np.zeros((2, 1))})


def test_non_numeric_entries_are_a_type_error(model):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    with pytest.raises(TypeError, match="continuous_observation.*real numbers, got dtype object"):
        policy.predict({"continuous_observation": np.array([None] * 6)})


def test_the_state_survives_an_invalid_step_untouched(model):
    """The error comes before anything enters the cache: the next finite step acts as if the bad one never came."""
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=8)
    clean = JatPolicy(model, CONT_SPACE, BOX, context_window=8)
    rng = np.random.default_rng(0)
    history = rng.normal(size=(4, 2, 6)).astype(np.float32)
    state = clean_state = None
    for obs in history:
        _, state = policy.predict(cont(obs), state)
        _, clean_state = clean.predict(cont(obs), clean_state)
    steps, lengths = state.steps.copy(), state.buffers.lengths.copy()
    poisoned = history[-1].copy()
    poisoned[0, 2] = np.nan
    with pytest.raises(ValueError, match="state you passed is unchanged"):
        policy.predict(cont(poisoned), state)
    np.testing.assert_array_equal(state.steps, steps)
    assert not state.consumed and np.array_equal(state.buffers.lengths, lengths)
    assert torch.isfinite(state.buffers.keys[0]).all()
    state_actions = clean_actions = None
    for obs in rng.normal(size=(3, 2, 6)).astype(np.float32):
        state_actions, state = policy.predict(cont(obs), state)
        clean_actions, clean_state = clean.predict(cont(obs), clean_state)
        np.testing.assert_array_equal(state_actions, clean_actions)
    assert np.isfinite(state_actions).all()


def test_the_documented_bound_is_finite_and_just_above_it_is_not_accepted():
    torch.manual_seed(0)
    model = JatModel(JatConfig.from_preset("jat-tiny")).eval()
    policy = JatPolicy(model, CONT_SPACE, spaces.Box(-np.inf, np.inf, (3,), np.float32), context_window=4)
    at_bound = np.full(6, MAX_INPUT_MAGNITUDE, np.float32)  # float32(1e15) rounds down, still within the bound
    actions, state = policy.predict(cont(at_bound))
    assert np.isfinite(actions).all()
    actions, _ = policy.predict(cont(np.zeros(6)), state)
    assert np.isfinite(actions).all()
    with pytest.raises(ValueError, match=r"\|x\| <= 1e\+15"):
        policy.predict(cont(np.full(6, 1.01 * MAX_INPUT_MAGNITUDE)))


def test_zero_mode_replaces_invalid_values_by_zero_and_warns(model):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4, invalid_values="zero")
    obs = np.ones((2, 6), np.float32)
    bad = obs.copy()
    bad[0, 1], bad[1, 4] = np.nan, 1e30
    expected = obs.copy()
    expected[0, 1] = expected[1, 4] = 0.0
    with pytest.warns(UserWarning, match="replaced by 0"):
        actions, state = policy.predict(cont(bad), deterministic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference, _ = policy.predict(cont(expected), deterministic=True)
    np.testing.assert_array_equal(actions, reference)
    assert np.isnan(bad[0, 1])  # the caller's array is not modified
    with pytest.raises(ValueError, match=r"invalid_values must be one of \('raise', 'zero'\), got 'clip'"):
        JatPolicy(model, CONT_SPACE, BOX, invalid_values="clip")
    with pytest.raises(ValueError, match="got 'clip'"):
        policy.invalid_values = "clip"  # e.g. set after from_pretrained
    policy.invalid_values = "raise"
    with pytest.raises(ValueError, match="continuous_observation"):
        policy.predict(cont(bad))


def test_integer_inputs_beyond_the_bound_including_int64_min(model):
    policy = JatPolicy(model, DISCRETE_SPACE, spaces.Discrete(3), context_window=4)
    obs = {"discrete_observation": np.ones((2, 212), np.int64), "reward": np.array([[0], [np.iinfo(np.int64).min]])}
    with pytest.raises(ValueError, match=r"'reward'\] of env 1 .* holds -9223372036854775808"):
        policy.predict(obs)


# --------------------------------------------------------------------------------------------------
# Empty batches
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action_space, shape, dtype",
    [
        (BOX, (0, 3), np.float32),
        (spaces.Discrete(4), (0,), np.int64),
        (spaces.Box(-1, 1, (2,), np.float64), (0, 2), np.float64),
    ],
)
def test_an_empty_batch_returns_empty_actions_and_a_zero_env_state(model, action_space, shape, dtype):
    policy = JatPolicy(model, CONT_SPACE, action_space, context_window=4)
    empty = cont(np.zeros((0, 6)))
    actions, state = policy.predict(empty, episode_start=np.zeros(0, bool))
    assert actions.shape == shape and actions.dtype == dtype
    assert state.n_envs == 0 and state.buffers is None
    again, state = policy.predict(empty, state)
    assert again.shape == shape
    with pytest.raises(ValueError, match="holds 0 envs"):
        policy.predict(cont(np.zeros((2, 6))), state)


def test_an_empty_batch_with_text_missions(model):
    torch.manual_seed(0)
    text_model = JatModel(tiny_config(vocab_size=512)).eval()
    from jat_policy.processing import JatProcessor

    space = spaces.Dict(
        {
            "discrete_observation": spaces.MultiDiscrete(np.full(148, 11), dtype=np.int64),
            "text_observation": spaces.Text(64, min_length=0, charset="abcdefghijklmnopqrstuvwxyz "),
            "reward": REWARD,
        }
    )
    processor = JatProcessor.from_config(text_model.config)
    policy = JatPolicy(text_model, space, spaces.Discrete(7), processor=processor, context_window=4)
    obs = {"discrete_observation": np.zeros((0, 148), np.int64), "text_observation": [], "reward": np.zeros((0, 1))}
    actions, state = policy.predict(obs)
    assert actions.shape == (0,) and actions.dtype == np.int64 and state.n_envs == 0


# --------------------------------------------------------------------------------------------------
# States of other policies
# --------------------------------------------------------------------------------------------------


def state_of(policy: JatPolicy, obs: dict, steps: int = 3) -> JatPolicyState:
    state = None
    for _ in range(steps):
        _, state = policy.predict(obs, state)
    return state


@pytest.mark.parametrize(
    "source_actions, target_actions",
    [(BOX, spaces.Discrete(4)), (spaces.Discrete(4), BOX)],
    ids=["box-to-discrete", "discrete-to-box"],
)
def test_a_state_of_another_action_space_is_refused(model, source_actions, target_actions):
    source = JatPolicy(model, CONT_SPACE, source_actions, context_window=4)
    target = JatPolicy(model, CONT_SPACE, target_actions, context_window=4)
    obs = cont(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="state comes from another policy.*Pass state=None to start fresh"):
        target.predict(obs, state_of(source, obs))


def test_a_state_of_another_model_config_is_refused():
    import gymnasium as gym

    from jat_policy.wrappers import wrap_env

    env = wrap_env(gym.make("CartPole-v1"))
    torch.manual_seed(0)
    mini = JatPolicy(
        JatModel(JatConfig.from_preset("jat-mini")), env.observation_space, env.action_space, context_window=8
    )
    tiny = JatPolicy(
        JatModel(JatConfig.from_preset("jat-tiny")), env.observation_space, env.action_space, context_window=8
    )
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="another policy"):
        tiny.predict(obs, state_of(mini, obs))


def test_a_cartpole_state_is_refused_by_a_babyai_policy(model):
    import gymnasium as gym

    from jat_policy.wrappers import wrap_env

    env = wrap_env(gym.make("CartPole-v1"))
    cartpole = JatPolicy(model, env.observation_space, env.action_space, context_window=4)
    babyai = JatPolicy(model, DISCRETE_SPACE, spaces.Discrete(3), context_window=4)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="another policy"):
        babyai.predict(discrete([0.0]), state_of(cartpole, obs))


def test_the_same_policy_reloaded_accepts_the_state(model, tmp_path):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    twin = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    policy.save(tmp_path)
    loaded = JatPolicy.load(tmp_path, device="cpu")
    assert loaded.fingerprint == twin.fingerprint == policy.fingerprint
    obs = cont(np.random.default_rng(0).normal(size=(2, 6)))
    state = state_of(policy, obs, steps=5)
    branch = state.copy()
    np.testing.assert_array_equal(policy.predict(obs, state)[0], loaded.predict(obs, branch)[0])


def test_a_hand_assembled_state_has_no_fingerprint_and_is_accepted(model):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    actions, state = policy.predict(cont(np.zeros((2, 6))), JatPolicyState.initial(2, 4))
    assert actions.shape == (2, 3) and state.policy_fingerprint == policy.fingerprint


# --------------------------------------------------------------------------------------------------
# episode_start
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("episode_start", [np.ones(3, bool), [True], np.zeros((2, 2), bool)])
def test_a_wrong_length_episode_start_is_refused_even_without_a_state(model, episode_start):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    size = np.asarray(episode_start).size
    with pytest.raises(ValueError, match=f"episode_start has {size} entries for 2 envs"):
        policy.predict(cont(np.zeros((2, 6))), None, episode_start)


def test_an_unreadable_episode_start_is_a_value_error(model):
    policy = JatPolicy(model, CONT_SPACE, BOX, context_window=4)
    with pytest.raises(ValueError, match="episode_start must be 2 bools"):
        policy.predict(cont(np.zeros((2, 6))), None, [[True], [True, False]])
