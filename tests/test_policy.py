"""JatPolicy: rolling-context exactness, batching, resets, state handling, validation, save/load."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from gymnasium import spaces

from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy, JatPolicyState, context_start, space_from_json, space_to_json
from tests.conftest import FIXTURES, tiny_config

TOL = 1e-4
CONT_SPACE = spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (6,), np.float32)})
WIDE_BOX = spaces.Box(-100.0, 100.0, (3,), np.float32)  # wide enough that nothing is clipped
IMAGE_SPACE = spaces.Dict(
    {
        "image_observation": spaces.Box(0, 255, (84, 84, 4), np.uint8),
        "reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
    }
)


@pytest.fixture(scope="module")
def model() -> JatModel:
    torch.manual_seed(0)
    return JatModel(tiny_config()).eval()


def full_forward(model: JatModel, **inputs) -> torch.Tensor:
    """The model's plain forward over one episode slice; hidden state at the last observation token (H,)."""
    with torch.no_grad():
        out = model(**{k: v[None] for k, v in inputs.items()}, return_loss=False)
    return out.last_hidden_state[0, -2]


def capture_hidden(policy: JatPolicy) -> list[torch.Tensor]:
    """Records the hidden states ``predict`` decodes actions from."""
    seen: list[torch.Tensor] = []
    select = policy._select_actions

    def wrapped(hidden, deterministic):
        seen.append(hidden.clone())
        return select(hidden, deterministic)

    policy._select_actions = wrapped
    return seen


# --------------------------------------------------------------------------------------------------
# Window arithmetic
# --------------------------------------------------------------------------------------------------


def test_context_start_drops_the_oldest_half():
    assert [context_start(t, 8) for t in range(20)] == [0] * 8 + [4] * 4 + [8] * 4 + [12] * 4
    for t in range(200):
        s = context_start(t, 16)
        assert 0 <= s <= t and t - s + 1 <= 16
        assert t < 16 or t - s + 1 >= 9  # between W/2 + 1 and W steps once the window is full


# --------------------------------------------------------------------------------------------------
# Exactness: each action equals the model's full forward over timesteps s(t)..t
# --------------------------------------------------------------------------------------------------


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(
    ("window", "steps", "device"),
    [(8, 45, "cpu"), (2, 12, "cpu"), pytest.param(8, 45, "cuda", marks=CUDA)],  # cuda: a CUDA graph per step
)
def test_continuous_rollout_matches_full_forward_over_several_windows(window, steps, device):
    """fp32 stays exact over many rollovers (W = 8: at t = 8, 12, ..., 44; W = 2: every step from t = 2)."""
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=window, device=device, precision="fp32")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(steps, 6)).astype(np.float32)
    state, actions, worst = None, [], 0.0
    for t in range(steps):
        action, state = policy.predict({"continuous_observation": obs[t]}, state, deterministic=True)
        actions.append(action)
        s = context_start(t, window)
        assert state.context_lengths[0] == t - s + 1
        assert state.buffers.capacity == 2 * window and state.buffers.lengths.max() < 2 * window
        with torch.no_grad():
            ref = model(
                continuous_observations=torch.from_numpy(obs[None, s : t + 1, :-1]).to(device),
                continuous_actions=torch.from_numpy(np.stack(actions[s:])[None]).to(device),  # a_t: after o_t
                rewards=torch.from_numpy(obs[None, s : t + 1, -1]).to(device),
                return_loss=False,
            ).pred_actions[0, -1]
        worst = max(worst, float(np.abs(ref.cpu().numpy() - action).max()))
    assert worst <= TOL, worst


def test_image_discrete_rollout_matches_full_forward(model):
    window, steps, n = 4, 13, 6
    policy = JatPolicy(model, IMAGE_SPACE, spaces.Discrete(n), context_window=window, precision="fp32")
    hidden = capture_hidden(policy)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(steps, 84, 84, 4), dtype=np.uint8)
    rewards = rng.normal(size=(steps, 1)).astype(np.float32)
    state, actions, worst = None, [], 0.0
    head = model.single_discrete_decoder.weight[:n].detach()
    for t in range(steps):
        action, state = policy.predict(
            {"image_observation": frames[t], "reward": rewards[t]}, state, deterministic=True
        )
        assert action.shape == () and action.dtype == np.int64
        actions.append(int(action))
        s = context_start(t, window)
        images = torch.from_numpy(frames[s : t + 1]).permute(0, 3, 1, 2).float() * (2 / 255) - 1
        ref = full_forward(
            model,
            image_observations=images,
            discrete_actions=torch.tensor(actions[s:]),
            rewards=torch.from_numpy(rewards[s : t + 1, 0]),
        )
        diff = hidden[-1][0] - ref
        worst = max(worst, float(diff.abs().max()), float((diff @ head.T).abs().max()))
        assert int(action) == int((ref @ head.T).argmax())
    assert worst <= TOL, worst


def test_babyai_like_rollout_matches_full_forward_with_processor():
    from jat_policy.processing import JatProcessor

    torch.manual_seed(2)
    model = JatModel(tiny_config(vocab_size=512)).eval()
    processor = JatProcessor.from_config(model.config)
    space = spaces.Dict(
        {
            "discrete_observation": spaces.MultiDiscrete(np.full(148, 11), dtype=np.int64),
            "text_observation": spaces.Text(64, min_length=0, charset="abcdefghijklmnopqrstuvwxyz "),
            "reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )
    window, steps, n = 6, 14, 7
    policy = JatPolicy(model, space, spaces.Discrete(n), processor=processor, context_window=window)
    hidden = capture_hidden(policy)
    rng = np.random.default_rng(3)
    grids = rng.integers(0, 11, size=(steps, 148))
    mission = "go to the red ball"
    state, actions, worst = None, [], 0.0
    for t in range(steps):
        obs = {"discrete_observation": grids[t], "text_observation": mission, "reward": np.zeros(1, np.float32)}
        action, state = policy.predict(obs, state, deterministic=True)
        actions.append(int(action))
        s = context_start(t, window)
        inputs = processor(
            discrete_observations=[grids[s : t + 1]],
            text_observations=[[mission] * (t + 1 - s)],
            discrete_actions=[np.array(actions[s:])],
            rewards=[np.zeros(t + 1 - s, np.float32)],
            shift_rewards=False,
            return_tensors="pt",
        )
        inputs.pop("attention_mask")
        ref = full_forward(model, **{k: v[0] for k, v in inputs.items()})
        worst = max(worst, float((hidden[-1][0] - ref).abs().max()))
    assert worst <= TOL, worst


# --------------------------------------------------------------------------------------------------
# Batching and episode starts
# --------------------------------------------------------------------------------------------------


def test_batched_predict_equals_single_env_predicts_with_resets(model):
    n_envs, steps, window = 3, 40, 6
    rng = np.random.default_rng(4)
    obs = rng.normal(size=(steps, n_envs, 6)).astype(np.float32)
    starts = rng.random((steps, n_envs)) < 0.08  # envs reset at different times: their windows desynchronise
    starts[0] = True
    batched = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=window)
    singles = [JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=window) for _ in range(n_envs)]
    state, single_states, worst = None, [None] * n_envs, 0.0
    for t in range(steps):
        actions, state = batched.predict({"continuous_observation": obs[t]}, state, starts[t], deterministic=True)
        assert actions.shape == (n_envs, 3) and actions.dtype == np.float32
        for i in range(n_envs):
            single, single_states[i] = singles[i].predict(
                {"continuous_observation": obs[t, i]}, single_states[i], np.array([starts[t, i]]), deterministic=True
            )
            worst = max(worst, float(np.abs(single - actions[i]).max()))
        assert state.buffers.lengths.max() < 2 * window
    assert worst <= 1e-5, worst
    assert len(set(state.context_starts.tolist())) > 1  # the envs really were at different points


def _rolled_state(policy: JatPolicy, rng: np.random.Generator, n_envs: int, steps: int):
    """The state after ``steps`` predicts on random continuous observations of ``n_envs`` envs."""
    state = None
    for _ in range(steps):
        _, state = policy.predict({"continuous_observation": rng.normal(size=(n_envs, 6)).astype(np.float32)}, state)
    return state


def test_episode_start_resets_exactly_one_env(model):
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=8)
    rng = np.random.default_rng(5)
    state = _rolled_state(policy, rng, n_envs=3, steps=5)
    obs = rng.normal(size=(3, 6)).astype(np.float32)
    kept = state.copy()
    actions, after = policy.predict({"continuous_observation": obs}, state, np.array([False, True, False]))
    assert after.steps.tolist() == [6, 1, 6]
    assert after.context_lengths.tolist() == [6, 1, 6]
    fresh, _ = policy.predict({"continuous_observation": obs[1]})
    continued, _ = policy.predict({"continuous_observation": obs}, kept)
    np.testing.assert_allclose(actions[1], fresh, atol=1e-5)
    np.testing.assert_allclose(actions[[0, 2]], continued[[0, 2]], atol=1e-5)
    assert np.abs(actions[1] - continued[1]).max() > 1e-6  # the reset env really forgot its context


def test_a_consumed_state_is_refused_and_a_copy_replays_the_same_step(model):
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=4)
    rng = np.random.default_rng(6)
    state = _rolled_state(policy, rng, n_envs=2, steps=7)
    obs = {"continuous_observation": rng.normal(size=(2, 6)).astype(np.float32)}
    branch = state.copy()
    first, new_state = policy.predict(obs, state, np.array([True, False]))  # rolls env 1 over (t = 8) and resets 0
    assert new_state is not state and state.consumed and not new_state.consumed
    assert new_state.buffers is state.buffers  # updated in place, not copied
    with pytest.raises(ValueError, match="consumed by an earlier predict"):
        policy.predict(obs, state)
    with pytest.raises(ValueError, match="consumed"):
        state.copy()
    second, _ = policy.predict(obs, branch, np.array([True, False]))
    np.testing.assert_array_equal(first, second)
    assert "consumed" in repr(state)


def test_branching_with_copy_gives_independent_futures(model):
    """Two copies of one state continue independently; the same inputs give the same actions."""
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=8)
    rng = np.random.default_rng(7)
    inputs = [{"continuous_observation": rng.normal(size=(2, 6)).astype(np.float32)} for _ in range(12)]
    state = None
    for obs in inputs[:3]:
        _, state = policy.predict(obs, state)
    second_past, third_past = state.copy(), state.copy()
    _, first = policy.predict(inputs[3], state)
    _, second = policy.predict(inputs[4], second_past)  # another future from the same past
    _, first_again = policy.predict(inputs[3], third_past)
    for obs in inputs[5:]:  # crosses a rollover (t = 8)
        a1, first = policy.predict(obs, first)
        a2, second = policy.predict(obs, second)
        a3, first_again = policy.predict(obs, first_again)
        np.testing.assert_array_equal(a1, a3)
        assert np.abs(a1 - a2).max() > 1e-7


def test_memory_stays_flat_over_long_episodes(model):
    window = 8
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=window)
    obs = {"continuous_observation": np.zeros((2, 6), np.float32)}
    state = policy.predict(obs)[1]
    state = policy.predict(obs, state, np.array([True, False]))[1]  # desynchronise the two envs
    buffers, nbytes = state.buffers, state.buffers.nbytes
    for _ in range(300):
        _, state = policy.predict(obs, state)
        assert state.buffers is buffers and buffers.nbytes == nbytes  # allocated once, updated in place
        assert buffers.lengths.max() <= 2 * window - 1
    assert state.steps.tolist() == [301, 302]


# --------------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------------


def test_continuous_actions_are_clipped_to_the_box(model):
    box = spaces.Box(np.array([-1e-3, 0.0, -5.0], np.float32), np.array([1e-3, 0.0, 5.0], np.float32))
    policy = JatPolicy(model, CONT_SPACE, box, context_window=4)
    actions, _ = policy.predict({"continuous_observation": np.random.default_rng(0).normal(size=(4, 6)) * 100})
    assert actions.dtype == np.float32 and actions.shape == (4, 3)
    assert all(box.contains(a) for a in actions)


def test_discrete_sampling_stays_in_the_space_and_follows_the_torch_seed(model):
    space = spaces.Discrete(5, start=-2)
    policy = JatPolicy(model, CONT_SPACE, space, context_window=4)
    obs = {"continuous_observation": np.zeros((64, 6), np.float32)}
    torch.manual_seed(0)
    first, _ = policy.predict(obs)
    torch.manual_seed(0)
    second, _ = policy.predict(obs)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.int64 and set(first.tolist()) <= set(range(-2, 3)) and len(set(first.tolist())) > 1
    greedy, _ = policy.predict(obs, deterministic=True)
    assert len(set(greedy.tolist())) == 1  # identical observations, identical argmax


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action_space, match",
    [
        (spaces.Discrete(65), "vocabulary"),
        (spaces.Box(-1, 1, (378,), np.float32), "at most 377"),
        (spaces.Box(-1, 1, (2, 2), np.float32), "1-D Box"),
        (spaces.MultiDiscrete([2, 3]), "Unsupported action space"),
    ],
)
def test_action_spaces_the_checkpoint_cannot_represent(model, action_space, match):
    with pytest.raises(ValueError, match=match):
        JatPolicy(model, CONT_SPACE, action_space)


@pytest.mark.parametrize(
    "observation_space, match",
    [
        (spaces.Box(-1, 1, (4,), np.float32), "wrap_env"),
        (spaces.Dict({"continuous_observation": spaces.Box(-1, 1, (400,), np.float32)}), "at most 377"),
        (
            spaces.Dict(
                {
                    "continuous_observation": spaces.Box(-1, 1, (4,), np.float32),
                    "image_observation": IMAGE_SPACE["image_observation"],
                }
            ),
            "exactly one",
        ),
        (spaces.Dict({"discrete_observation": spaces.MultiDiscrete(np.full(213, 3))}), "at most 212"),
        (spaces.Dict({"image_observation": spaces.Box(0, 255, (4, 84, 84), np.uint8)}), "channel-last"),
    ],
)
def test_observation_spaces_the_checkpoint_cannot_represent(model, observation_space, match):
    with pytest.raises(ValueError, match=match):
        JatPolicy(model, observation_space, spaces.Discrete(2))


@pytest.mark.parametrize("window, match", [(7, "even"), (0, "even"), (40, "at most 32")])
def test_bad_context_windows(model, window, match):
    with pytest.raises(ValueError, match=match):
        JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=window)


def test_default_context_window_per_domain():
    torch.manual_seed(0)
    big = JatModel(tiny_config(max_position_embeddings=512)).eval()
    assert JatPolicy(big, CONT_SPACE, WIDE_BOX).context_window == 256
    assert JatPolicy(big, IMAGE_SPACE, spaces.Discrete(4)).context_window == 32
    small = JatModel(tiny_config(max_position_embeddings=40)).eval()
    assert JatPolicy(small, CONT_SPACE, WIDE_BOX).context_window == 20  # capped by the model's positions


def test_predict_rejects_mistakes_with_helpful_messages(model):
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, context_window=4)
    obs = {"continuous_observation": np.zeros(6, np.float32)}
    with pytest.raises(ValueError, match="mixing the Gymnasium API"):
        policy.predict((obs, {}))
    with pytest.raises(ValueError, match=r"mixing Gym API"):  # SB3's own tests match this phrase
        policy.predict((obs, {}))
    with pytest.raises(ValueError, match="step dict"):
        policy.predict(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="lacks"):
        policy.predict({"obs": np.zeros(6)})
    with pytest.raises(ValueError, match=r"expects \(6,\)"):
        policy.predict({"continuous_observation": np.zeros(5)})
    _, state = policy.predict({"continuous_observation": np.zeros((2, 6))})
    with pytest.raises(ValueError, match="holds 2 envs"):
        policy.predict({"continuous_observation": np.zeros((3, 6))}, state)
    with pytest.raises(ValueError, match="3 entries for 2 envs"):
        policy.predict({"continuous_observation": np.zeros((2, 6))}, state, np.ones(3, bool))
    with pytest.raises(TypeError, match="JatPolicyState"):
        policy.predict(obs, state=(np.zeros(1),))
    image_policy = JatPolicy(model, IMAGE_SPACE, spaces.Discrete(3), context_window=4)
    with pytest.raises(ValueError, match="channel-last"):
        image_policy.predict({"image_observation": np.zeros((4, 84, 84), np.uint8), "reward": np.zeros(1)})


# --------------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-np.inf, np.inf, (5,), np.float32),
        spaces.Box(np.array([-1.0, 0.0]), np.array([2.0, np.inf]), dtype=np.float64),
        spaces.Box(0, 255, (84, 84, 4), np.uint8),
        spaces.Discrete(7, start=-3),
        spaces.MultiDiscrete(np.array([4, 255, 255]), dtype=np.int64),
        spaces.Text(64, min_length=0, charset="ab c"),
        spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-1, 1, (2,), np.float32)}),
    ],
)
def test_spaces_round_trip_through_strict_json(space):
    text = json.dumps(space_to_json(space), allow_nan=False)
    assert space_from_json(json.loads(text)) == space


def test_save_load_round_trip(model, tmp_path):
    policy = JatPolicy(model, CONT_SPACE, spaces.Box(-1, 1, (3,), np.float32), context_window=6)
    policy.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "policy.json"]
    loaded = JatPolicy.load(tmp_path, device="cpu")
    assert loaded.context_window == 6
    assert loaded.observation_space == policy.observation_space and loaded.action_space == policy.action_space
    obs = {"continuous_observation": np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)}
    s1 = s2 = None
    for _ in range(9):
        a1, s1 = policy.predict(obs, s1)
        a2, s2 = loaded.predict(obs, s2)
        np.testing.assert_array_equal(a1, a2)


def test_checkpoint_saved_by_an_earlier_release_loads_and_acts_the_same():
    # tests/fixtures/checkpoint-0.1.0: a tiny policy written by jat-policy 0.1.0 (the landed code before the
    # transformers 5.24 `cache` rename), with the deterministic actions it took on a fixed 9-step, 2-env rollout.
    from safetensors.numpy import load_file

    directory = FIXTURES / "checkpoint-0.1.0"
    rollout = load_file(str(directory / "rollout.safetensors"))
    policy = JatPolicy.load(directory, device="cpu")
    assert policy.context_window == 6 and policy.model.dtype == torch.float32
    state = None
    for obs, expected in zip(rollout["observations"], rollout["actions"], strict=True):
        action, state = policy.predict({"continuous_observation": obs}, state, deterministic=True)
        np.testing.assert_allclose(action, expected, atol=1e-6, rtol=0)


def test_saved_files_follow_the_umask(model, tmp_path):
    old = os.umask(0o022)
    try:
        JatPolicy(model, CONT_SPACE, WIDE_BOX).save(tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644, "policy.json": 0o644}


def test_device_auto_as_in_sb3(model, tmp_path):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    policy = JatPolicy(model, CONT_SPACE, WIDE_BOX, device="auto")
    assert policy.device.type == expected
    policy.save(tmp_path)
    assert JatPolicy.load(tmp_path, device="auto").device.type == expected
    assert JatPolicy.from_pretrained(tmp_path, device="auto").device.type == expected
    with pytest.raises(ValueError, match="Unknown device 'gpu': use 'auto'"):
        JatPolicy(model, CONT_SPACE, WIDE_BOX, device="gpu")


def test_from_pretrained_on_a_model_directory_needs_the_spaces(model, tmp_path):
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="observation_space and action_space"):
        JatPolicy.from_pretrained(tmp_path)
    policy = JatPolicy.from_pretrained(tmp_path, IMAGE_SPACE, spaces.Discrete(4))
    assert policy.context_window == 32 and policy.processor is None


def test_from_pretrained_saves_and_loads_the_processor(tmp_path):
    from jat_policy.processing import JatProcessor

    torch.manual_seed(0)
    model = JatModel(tiny_config(vocab_size=512)).eval()
    space = spaces.Dict(
        {
            "discrete_observation": spaces.MultiDiscrete(np.full(148, 11), dtype=np.int64),
            "text_observation": spaces.Box(0, 255, (256,), np.uint8),  # make_env(..., text_as_bytes=True)
            "reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )
    JatPolicy(model, space, spaces.Discrete(7), processor=JatProcessor.from_config(model.config)).save(tmp_path)
    loaded = JatPolicy.load(tmp_path)
    assert loaded.processor is not None
    mission = np.zeros((2, 256), np.uint8)
    mission[:, :4] = np.frombuffer(b"go n", np.uint8)
    obs = {
        "discrete_observation": np.ones((2, 148), np.int64),
        "text_observation": mission,
        "reward": np.zeros((2, 1)),
    }
    actions, _ = loaded.predict(obs, deterministic=True)
    assert actions.shape == (2,) and actions.dtype == np.int64


def test_from_pretrained_hub_id_offline_fails_clearly():
    with pytest.raises(OSError, match="Hub"):
        JatPolicy.from_pretrained("jat-project/jat", CONT_SPACE, WIDE_BOX)


def test_state_repr_and_initial():
    state = JatPolicyState.initial(2, 8)
    assert state.n_envs == 2 and "n_envs=2" in repr(state)


def test_default_context_window_is_the_training_window() -> None:
    import gymnasium as gym

    from jat_policy.wrappers import wrap_env

    env = wrap_env(gym.make("CartPole-v1"))
    trained = JatConfig.from_preset("jat-tiny", training_windows={"default": 64, "image": 32})
    assert JatPolicy(JatModel(trained), env.observation_space, env.action_space).context_window == 64
    released = JatConfig.from_preset("jat-tiny")  # no record: the reference's 256 (capped by positions)
    assert JatPolicy(JatModel(released), env.observation_space, env.action_space).context_window == 256
    assert JatPolicy(JatModel(trained), env.observation_space, env.action_space, context_window=8).context_window == 8


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: [], "holds a JSON list"),
        (lambda meta: None, "holds a JSON NoneType"),
        (lambda meta: {k: v for k, v in meta.items() if k != "action_space"}, "no valid 'action_space'"),
        (lambda meta: {**meta, "observation_space": 3}, "no valid 'observation_space'"),
        (lambda meta: {**meta, "action_space": {"type": "Box"}}, "'action_space' does not describe a space"),
        (lambda meta: {**meta, "action_space": {"type": "Discrete"}}, "'action_space' does not describe a space"),
        (lambda meta: {**meta, "context_window": "8"}, "context_window must be an integer"),
    ],
)
def test_wrong_policy_json_is_a_value_error_naming_file_and_field(model, tmp_path, edit, message):
    from jat_policy.modeling import WEIGHTS_NAME

    JatPolicy(model, CONT_SPACE, WIDE_BOX).save(tmp_path)
    meta = json.loads((tmp_path / "policy.json").read_text())
    model.save_pretrained(tmp_path)  # weights that vouch only for config.json: policy.json may be edited
    assert (tmp_path / WEIGHTS_NAME).is_file()
    (tmp_path / "policy.json").write_text(json.dumps(edit(meta)))
    with pytest.raises(ValueError, match=message) as error:
        JatPolicy.load(tmp_path)
    assert str(tmp_path / "policy.json") in str(error.value)


def _mission_space() -> spaces.Dict:
    return spaces.Dict(
        {
            "discrete_observation": spaces.MultiDiscrete(np.full(148, 11), dtype=np.int64),
            "text_observation": spaces.Box(0, 255, (256,), np.uint8),
            "reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )


def test_no_processor_warning_only_when_the_checkpoint_ships_its_own_tokenizer(tmp_path, recwarn):
    from jat_policy.processing import JatProcessor

    model = JatModel(tiny_config(vocab_size=512)).eval()
    JatPolicy(model, _mission_space(), spaces.Discrete(7))  # the README's SB3 snippet: a fresh model
    assert not [w for w in recwarn if "processor" in str(w.message).lower()]
    model.save_pretrained(tmp_path / "bare")  # weights only: the default tokenizer is the only one there is
    JatPolicy(JatModel.from_pretrained(tmp_path / "bare"), _mission_space(), spaces.Discrete(7))
    assert not [w for w in recwarn if "processor" in str(w.message).lower()]
    model.save_pretrained(tmp_path / "own")
    JatProcessor.from_config(model.config).save_pretrained(tmp_path / "own")
    with pytest.warns(UserWarning, match="ships its own tokenizer"):
        JatPolicy(JatModel.from_pretrained(tmp_path / "own"), _mission_space(), spaces.Discrete(7))
