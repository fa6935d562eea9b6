"""Core wrappers: the step dict over many raw spaces, the reward shift, text encodings, import hygiene."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from jat_policy.wrappers import ChannelLast, JatObservation, TextAsBytes, decode_text, encode_text, wrap_env
from jat_policy.wrappers.common import TEXT_CHARSET


class SpaceEnv(gym.Env):
    """Samples observations from any space; reward = step index + 1 (so the shift is visible)."""

    metadata = {"render_modes": []}

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space | None = None, horizon: int = 5):
        self.observation_space = observation_space
        self.action_space = action_space or spaces.Discrete(3)
        self.horizon = horizon
        self.t = 0
        self.last_obs = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        self.last_obs = self.observation_space.sample()
        return self.last_obs, {}

    def step(self, action):
        self.t += 1
        self.last_obs = self.observation_space.sample()
        return self.last_obs, float(self.t), False, self.t >= self.horizon, {}


def _roll(env: gym.Env, steps: int = 4) -> list[tuple[dict, float]]:
    obs, _ = env.reset(seed=0)
    out = [(obs, 0.0)]
    for _ in range(steps):
        obs, reward, *_ = env.step(env.action_space.sample())
        out.append((obs, float(reward)))
    return out


MISSION = spaces.Text(max_length=40, min_length=1, charset="abcdefgh ")
SUPPORTED = {
    "box1d": (spaces.Box(-1, 1, (6,), np.float64), {"continuous_observation": ((7,), np.float32)}),
    "box1d_int": (spaces.Box(0, 9, (3,), np.int64), {"continuous_observation": ((4,), np.float32)}),
    "box_376": (spaces.Box(-1, 1, (376,), np.float32), {"continuous_observation": ((377,), np.float32)}),
    "discrete": (spaces.Discrete(5), {"discrete_observation": ((1,), np.int64), "reward": ((1,), np.float32)}),
    "discrete_start": (spaces.Discrete(5, start=2), {"discrete_observation": ((1,), np.int64)}),
    "multidiscrete": (spaces.MultiDiscrete([[3, 4], [5, 6]]), {"discrete_observation": ((4,), np.int64)}),
    "multibinary": (spaces.MultiBinary(7), {"discrete_observation": ((7,), np.int64)}),
    "int_grid": (spaces.Box(0, 10, (4, 4, 3), np.uint8), {"discrete_observation": ((48,), np.int64)}),
    "stacked_frames": (spaces.Box(0, 255, (84, 84, 4), np.uint8), {"image_observation": ((84, 84, 4), np.uint8)}),
    "dict_boxes": (
        spaces.Dict({"b": spaces.Box(-1, 1, (2,)), "a": spaces.Box(-1, 1, (3,))}),
        {"continuous_observation": ((6,), np.float32)},
    ),
    "dict_text": (
        spaces.Dict(
            {"mission": MISSION, "direction": spaces.Discrete(4), "grid": spaces.Box(0, 12, (2, 2, 3), np.uint8)}
        ),
        {"discrete_observation": ((13,), np.int64), "text_observation": ((), str), "reward": ((1,), np.float32)},
    ),
}


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_step_dict_shapes_dtypes_and_membership(name):
    space, expected = SUPPORTED[name]
    env = JatObservation(SpaceEnv(space))
    assert set(env.observation_space.spaces) >= set(expected)
    has_reward_entry = "continuous_observation" not in expected
    assert ("reward" in env.observation_space.spaces) == has_reward_entry
    for obs, _ in _roll(env):
        assert obs in env.observation_space
        for key, (shape, dtype) in expected.items():
            if dtype is str:
                assert isinstance(obs[key], str)
            else:
                assert obs[key].shape == shape and obs[key].dtype == dtype, key


class IntRewardEnv(SpaceEnv):
    """Returns numpy / int rewards, as minigrid (``0`` on failure) and some custom envs do."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, (np.int64(reward) if self.t % 2 else int(reward)), terminated, truncated, info


class DeclaredRewardRangeEnv(SpaceEnv):
    reward_range = (-1.0, 2.5)  # pre-1.0 Gymnasium attribute, still set by some envs


@pytest.mark.parametrize("name", ["box1d", "discrete", "dict_text", "stacked_frames"])
def test_rewards_are_python_floats(name):
    env = JatObservation(IntRewardEnv(SUPPORTED[name][0]))
    env.reset(seed=0)
    for _ in range(4):
        _, reward, *_ = env.step(env.action_space.sample())
        assert type(reward) is float


def test_continuous_space_keeps_the_env_bounds():
    second = spaces.Box(np.array([0, -np.inf], np.float32), np.array([1, 5], np.float32))
    space = spaces.Dict({"b": spaces.Box(-2, 3, (2,)), "a": second})  # Gymnasium sorts a plain dict's keys
    env = JatObservation(SpaceEnv(space))
    box = env.observation_space["continuous_observation"]
    np.testing.assert_array_equal(box.low, np.array([0, -np.inf, -2, -2, -np.inf], np.float32))  # a ‖ b ‖ reward
    np.testing.assert_array_equal(box.high, np.array([1, 5, 3, 3, np.inf], np.float32))
    for obs, _ in _roll(env):
        assert obs in env.observation_space
    declared = JatObservation(DeclaredRewardRangeEnv(spaces.Box(-1, 1, (3,)))).observation_space
    assert declared["continuous_observation"].low[-1] == -1.0 and declared["continuous_observation"].high[-1] == 2.5


@pytest.mark.parametrize("name", ["box1d", "discrete", "dict_text", "stacked_frames"])
def test_reward_is_the_previous_one(name):
    env = JatObservation(SpaceEnv(SUPPORTED[name][0]))
    for obs, reward in _roll(env):
        carried = obs["continuous_observation"][-1] if "continuous_observation" in obs else obs["reward"][0]
        assert carried == np.float32(reward)  # 0.0 after reset, then the reward this step returned


def test_values_are_the_raw_observation():
    env = JatObservation(SpaceEnv(SUPPORTED["box1d"][0]))
    obs, _ = env.reset(seed=1)
    np.testing.assert_allclose(obs["continuous_observation"][:-1], env.unwrapped.last_obs.astype(np.float32))
    env = JatObservation(SpaceEnv(SUPPORTED["dict_text"][0]))
    obs, _ = env.reset(seed=1)
    raw = env.unwrapped.last_obs
    # Dict entries in key order: direction, grid (the mission is the text entry)
    np.testing.assert_array_equal(obs["discrete_observation"], [raw["direction"], *raw["grid"].flatten()])
    assert obs["text_observation"] == raw["mission"]
    env = JatObservation(SpaceEnv(SUPPORTED["dict_boxes"][0]))
    obs, _ = env.reset(seed=1)
    raw = env.unwrapped.last_obs
    np.testing.assert_allclose(obs["continuous_observation"][:-1], np.concatenate([raw["a"], raw["b"]]))


UNSUPPORTED = {
    "377 dims": (spaces.Box(-1, 1, (377,)), "at most 376"),
    "dict of 377 dims": (spaces.Dict({"a": spaces.Box(-1, 1, (200,)), "b": spaces.Box(-1, 1, (177,))}), "at most 376"),
    "2-D float": (spaces.Box(-1, 1, (3, 4)), "Unsupported observation space"),
    "tuple": (spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)]), "Unsupported observation space"),
    "graph-ish": (spaces.Sequence(spaces.Discrete(3)), "Unsupported observation space"),
    "too many discrete": (spaces.MultiDiscrete([3] * 213), "at most 212"),
    "text plus 149": (spaces.Dict({"m": MISSION, "d": spaces.MultiDiscrete([3] * 149)}), "at most 148"),
    "text alone": (spaces.Dict({"m": MISSION}), "text entry alone"),
    "text plus float": (spaces.Dict({"m": MISSION, "x": spaces.Box(-1, 1, (3,))}), "not discrete-valued"),
    "two texts": (spaces.Dict({"m": MISSION, "n": MISSION, "d": spaces.Discrete(2)}), "more than one text"),
    "negative ints": (spaces.MultiDiscrete([3, 3], start=[-1, 0]), "outside 0..50256"),
    "huge ints": (spaces.Box(0, 2**40, (2, 2), np.int64), "outside 0..50256"),
    "raw image": (spaces.Box(0, 255, (64, 64, 3), np.uint8), "use jat_policy.wrappers.wrap_env"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_spaces_raise_clear_errors(name):
    space, message = UNSUPPORTED[name]
    with pytest.raises(ValueError, match=message) as info:
        JatObservation(SpaceEnv(space))
    if "Unsupported" in message:
        assert str(space) in str(info.value) and "1-D Box" in str(info.value)


def test_wrap_env_rejects_unsupported_action_spaces():
    with pytest.raises(ValueError, match="Unsupported action space MultiDiscrete"):
        wrap_env(SpaceEnv(spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 2])))
    with pytest.raises(TypeError, match="gymnasium.Env"):
        wrap_env("CartPole-v1")  # type: ignore[arg-type]


def test_encode_decode_text_roundtrip():
    assert decode_text("go") == "go"
    assert decode_text(["a", "b"]) == ["a", "b"]
    x = encode_text("pick up the key, then open the door")
    assert x.shape == (256,) and x.dtype == np.uint8 and x[-1] == 0
    assert decode_text(x) == "pick up the key, then open the door"
    batch = np.stack([encode_text("one"), encode_text("two"), encode_text("")])
    assert decode_text(batch) == ["one", "two", ""]
    assert decode_text(batch.astype(np.float32).astype(np.int64)) == [
        "one",
        "two",
        "",
    ]  # what a tensor round trip gives
    assert decode_text(b"abc\0\0") == "abc"
    assert decode_text(np.array(["x", "y"])) == ["x", "y"]
    # long and non-ASCII text: truncated at a character boundary
    long = "é" * 200
    assert decode_text(encode_text(long)) == "é" * 128
    with pytest.raises(ValueError, match=r"\(N, 256\)"):
        decode_text(np.zeros((2, 2, 2), np.uint8))


def test_text_as_bytes_wrapper():
    env = TextAsBytes(JatObservation(SpaceEnv(SUPPORTED["dict_text"][0])))
    assert env.observation_space["text_observation"] == spaces.Box(0, 255, (256,), np.uint8)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        assert obs in env.observation_space
        assert decode_text(obs["text_observation"]) == env.unwrapped.last_obs["mission"]
        obs, *_ = env.step(0)
    with pytest.raises(ValueError, match="text entry"):
        TextAsBytes(JatObservation(SpaceEnv(spaces.Discrete(3))))


def test_default_text_charset_covers_printable_ascii():
    env = JatObservation(SpaceEnv(spaces.Dict({"m": spaces.Text(300, charset="ab"), "d": spaces.Discrete(2)})))
    assert env.observation_space["text_observation"].max_length == 256  # capped, long texts are truncated
    assert set(" ,.'abcXYZ0123") <= set(TEXT_CHARSET)


def test_channel_last():
    env = ChannelLast(SpaceEnv(spaces.Box(0, 255, (3, 5, 7), np.uint8)))
    assert env.observation_space.shape == (5, 7, 3)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.moveaxis(env.unwrapped.last_obs, 0, -1))
    assert obs.flags["C_CONTIGUOUS"]
    with pytest.raises(ValueError, match="at least 2 axes"):
        ChannelLast(SpaceEnv(spaces.Box(0, 1, (3,))))


def test_spec_can_recreate_the_stack():
    env = wrap_env(gym.make("CartPole-v1"))
    again = env.spec.make()
    assert type(again) is type(env) and again.observation_space == env.observation_space


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_wrappers_never_import_torch_or_optional_domains():
    out = _run(
        "import sys, jat_policy, jat_policy.wrappers, jat_policy.tasks\n"
        "import gymnasium as gym\n"
        "assert 'jat/atari-pong' in gym.registry and 'jat/mujoco-ant' in gym.registry\n"
        "env = jat_policy.make_env('CartPole-v1'); env.reset(seed=0)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'ale_py', 'minigrid', 'metaworld', 'mujoco') "
        "if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_gym_make_with_module_prefix_needs_no_import():
    out = _run(
        "import gymnasium as gym\n"
        "env = gym.make('jat_policy:jat/babyai-go-to-red-ball')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs['text_observation'], obs['discrete_observation'].shape)"
    )
    assert out.strip() == "go to the red ball (148,)"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "module", ["common", "generic", "atari", "babyai", "metaworld", "mujoco", "registration", "__init__", "tasks"]
)
def test_docstring_examples_run(module):
    name = "jat_policy.tasks" if module == "tasks" else f"jat_policy.wrappers.{module}".removesuffix(".__init__")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, result


def test_success_is_any_step_of_either_key():
    from jat_policy.wrappers.common import update_success, vector_step_success

    flag = None
    for info in ({}, {"success": 0.0}, {"success": 1.0}, {"success": 0.0}):  # Meta-World: success at any step
        flag = update_success(flag, info)
    assert flag is True
    assert update_success(None, {}) is None  # an env without a success key has no success rate
    assert update_success(None, {"is_success": False}) is False
    assert update_success(update_success(None, {"is_success": True}), {"is_success": False}) is True
    infos = {"is_success": np.array([True, True, False]), "_is_success": np.array([True, False, True])}
    np.testing.assert_array_equal(vector_step_success(infos, 3), [True, False, False])  # masked entries are no news
    assert vector_step_success({}, 3) is None
