"""BabyAI: the 148-int layout, missions in the Text space, quiet resets, reward shift, truncation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.tasks import get_task
from jat_policy.wrappers import decode_text, make_env

pytestmark = pytest.mark.filterwarnings("ignore:.*(different from the unwrapped|infinity)")


def _raw(task: str) -> gym.Env:
    import minigrid

    gym.register_envs(minigrid)
    return gym.make(get_task(task).env_id)


@pytest.mark.parametrize("task", ["babyai-go-to-red-ball", "babyai-boss-level", "babyai-put-next", "babyai-open-door"])
def test_layout_matches_the_raw_env(task, capsys):
    env, raw = make_env(task), _raw(task)
    space = env.observation_space
    assert set(space.spaces) == {"discrete_observation", "text_observation", "reward"}
    assert space["discrete_observation"].shape == (148,) and space["discrete_observation"].dtype == np.int64
    assert isinstance(space["text_observation"], gym.spaces.Text)
    assert env.action_space == gym.spaces.Discrete(7)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        raw_obs, _ = raw.reset(seed=seed)
        for _ in range(10):
            assert obs in space
            expected = [raw_obs["direction"], *raw_obs["image"].flatten()]  # JAT: [direction] + (7, 7, 3) C order
            np.testing.assert_array_equal(obs["discrete_observation"], expected)
            assert obs["text_observation"] == raw_obs["mission"]
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            raw_obs, raw_reward, *_ = raw.step(action)
            assert reward == raw_reward and obs["reward"][0] == np.float32(reward)
            assert type(reward) is float  # minigrid returns int 0 on failure; Gymnasium and the reference float
            if terminated or truncated:
                break
    assert "Sampling rejected" not in capsys.readouterr().out


def test_missions_are_in_the_text_space():
    for task in ("babyai-synth-seq", "babyai-go-to-seq", "babyai-mini-boss-level"):
        env = make_env(task)
        for seed in range(40):
            obs, _ = env.reset(seed=seed)
            assert obs["text_observation"] in env.observation_space["text_observation"], obs["text_observation"]


def test_reward_shift_on_success():
    env = make_env("babyai-go-to-red-ball-no-dists")
    from minigrid.utils.baby_ai_bot import BabyAIBot

    obs, _ = env.reset(seed=0)
    bot = BabyAIBot(env.unwrapped)
    assert obs["reward"][0] == 0.0
    for _ in range(64):
        obs, reward, terminated, truncated, info = env.step(bot.replan())
        assert obs["reward"][0] == np.float32(reward)
        assert info["success"] == terminated  # the bot's mission is done exactly when the episode ends
        if terminated:
            break
    assert terminated and reward > 0 and obs["reward"][0] == np.float32(reward)


def test_truncation_at_max_steps():
    env = make_env("babyai-go-to-red-ball-grey")  # max_steps = 64
    env.reset(seed=0)
    steps = [env.step(6) for _ in range(64)]  # "done" never solves GoTo: the episode runs out
    assert [step[2:4] for step in steps] == [(False, False)] * 63 + [(False, True)]
    assert not any(step[4]["success"] for step in steps)  # a timeout is no success
    env = make_env("babyai-go-to-red-ball-grey", max_episode_steps=5)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(5)] == [False] * 4 + [True]


def test_text_as_bytes():
    env = make_env("babyai-pickup", text_as_bytes=True)
    assert env.observation_space["text_observation"] == gym.spaces.Box(0, 255, (256,), np.uint8)
    obs, _ = env.reset(seed=4)
    assert obs in env.observation_space
    assert decode_text(obs["text_observation"]) == _raw("babyai-pickup").reset(seed=4)[0]["mission"]


# ----------------------------------------------------------------------------------------------- mirror
def _reflected(env, d0: int):
    """A copy of a reset minigrid env whose level is reflected across a line parallel to heading ``d0``."""
    import copy

    from minigrid.core.grid import Grid

    width, height = env.grid.width, env.grid.height
    flip_y = d0 in (0, 2)  # heading east/west: reflect north <-> south

    def reflect(x: int, y: int) -> tuple[int, int]:
        return (x, height - 1 - y) if flip_y else (width - 1 - x, y)

    mirrored = copy.deepcopy(env)
    grid = Grid(width, height)
    for x in range(width):
        for y in range(height):
            cell = copy.deepcopy(env.grid.get(x, y))
            if cell is not None:
                cell.cur_pos = cell.init_pos = reflect(x, y)
            grid.set(*reflect(x, y), cell)
    mirrored.grid, mirrored.agent_pos = grid, reflect(*env.agent_pos)
    return mirrored


@pytest.mark.parametrize("task", ["babyai-go-to-local", "babyai-pickup-loc", "babyai-open-door"])
def test_a_mirrored_episode_is_what_the_reflected_level_shows(task, capsys):
    from jat_policy.wrappers.babyai import mirror_episodes

    checked = 0
    for seed in range(6):
        env = _raw(task).unwrapped
        obs, _ = env.reset(seed=seed)
        mirrored_env = _reflected(env, env.agent_dir)
        mirrored_obs = mirrored_env.gen_obs()
        episode = {"discrete_observations": [], "discrete_actions": [], "text_observations": [], "rewards": []}
        seen = []
        rng = np.random.default_rng(seed)
        for _ in range(30):
            action = int(rng.choice([0, 1, 2, 2, 3, 5]))  # turns, forward, pick up, toggle
            episode["discrete_observations"].append([int(obs["direction"]), *obs["image"].flatten().tolist()])
            episode["text_observations"].append(obs["mission"])
            episode["discrete_actions"].append(action)
            seen.append([int(mirrored_obs["direction"]), *mirrored_obs["image"].flatten().tolist()])
            obs, reward, terminated, truncated, _ = env.step(action)
            episode["rewards"].append(float(reward))
            mirrored_obs, *_ = mirrored_env.step({0: 1, 1: 0}.get(action, action))  # left <-> right
            if terminated or truncated:
                break
        out = mirror_episodes({k: [v] for k, v in episode.items()})
        assert out["discrete_observations"][0] == seen  # the reflected level's own views and headings
        assert out["rewards"] == [episode["rewards"]]
        swapped = episode["text_observations"][0].replace("left", "<l>").replace("right", "left")
        assert out["text_observations"][0][0] == swapped.replace("<l>", "right")
        assert mirror_episodes(out) == {k: [v] for k, v in episode.items()}  # an involution
        checked += len(seen)
    assert checked > 60


def test_mirror_swaps_turns_and_side_words_only_and_names_bad_episodes():
    from jat_policy.wrappers.babyai import mirror_episodes

    obs = np.zeros((3, 148), dtype=np.int64)
    obs[:, 0] = [1, 2, 0]  # first heading 1: 1 -> 1, 2 -> 0, 0 -> 2
    obs[:, 1:] = np.arange(147)
    batch = {
        "discrete_observations": [obs.tolist()],
        "discrete_actions": [[0, 1, 6]],
        "text_observations": [["pick up the key on your left", "a bright door", "on your right"]],
    }
    out = mirror_episodes(batch)
    image = np.asarray(out["discrete_observations"][0])[:, 1:].reshape(3, 7, 7, 3)
    assert np.asarray(out["discrete_observations"][0])[:, 0].tolist() == [1, 0, 2]
    assert (image[:, 0] == np.arange(147).reshape(7, 7, 3)[6]).all()  # x -> 6 - x
    assert out["discrete_actions"] == [[1, 0, 6]]
    assert out["text_observations"] == [["pick up the key on your right", "a bright door", "on your left"]]
    empty = {"discrete_observations": [[]], "discrete_actions": [[]], "rewards": [[]]}
    assert mirror_episodes(empty) == empty  # an empty episode stays empty (the windows drop it)
    with pytest.raises(ValueError, match=r"Episode 0: discrete_observations of shape \(2, 5\)"):
        mirror_episodes({"discrete_observations": [[[0] * 5] * 2], "discrete_actions": [[0, 0]]})
    with pytest.raises(ValueError, match="not minigrid's 0..6"):
        mirror_episodes({"discrete_observations": [obs.tolist()], "discrete_actions": [[0, 7, 0]]})
