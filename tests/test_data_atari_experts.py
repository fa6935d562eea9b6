"""Atari RAM experts: the AtariARI addresses checked against the screen, make_expert names, collection."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

import gymnasium as gym  # noqa: E402

from jat_policy.data.atari_experts import (  # noqa: E402
    BREAKOUT_RAM,
    BREAKOUT_SCREEN_OFFSETS,
    PONG_RAM,
    PONG_SCREEN_OFFSETS,
    BreakoutRamExpert,
    PongRamExpert,
)
from jat_policy.data.experts import RandomExpert, make_expert  # noqa: E402
from jat_policy.wrappers import make_env  # noqa: E402

PONG_COLOURS = {"player": (92, 186, 92), "ball": (236, 236, 236)}  # the right (green) paddle, the ball
BREAKOUT_RED = (200, 72, 72)  # paddle and ball share this colour


def _raw_env(game: str) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    return gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)


def _frames(game: str, n: int, seed: int = 0):
    """(RGB frame, RAM) pairs under random play held 8 frames at a time, restarting finished games."""
    env = _raw_env(game)
    rng = np.random.default_rng(seed)
    frame, _ = env.reset(seed=seed)
    action = 1
    for t in range(n):
        if t % 8 == 0:
            action = int(rng.integers(env.action_space.n))
        frame, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            frame, _ = env.reset()
        yield frame, env.unwrapped.ale.getRAM().copy()
    env.close()


def _pixels(frame: np.ndarray, colour: tuple[int, int, int], rows: slice) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(np.all(frame[rows] == colour, axis=-1))
    return ys + (rows.start or 0), xs


def test_pong_ram_addresses_match_the_screen():
    checked = {"player_y": 0, "ball_x": 0, "ball_y": 0}
    for frame, ram in _frames("Pong", 1500):
        ys, _ = _pixels(frame, PONG_COLOURS["player"], slice(34, 194))
        if len(ys) and ys.max() - ys.min() >= 15:  # whole paddle on screen (it hides behind the borders)
            assert abs(ys.mean() - (ram[PONG_RAM["player_y"]] + PONG_SCREEN_OFFSETS["player_y"])) <= 1.5
            checked["player_y"] += 1
        ys, xs = _pixels(frame, PONG_COLOURS["ball"], slice(34, 194))
        if len(ys):
            assert abs(xs.mean() - (ram[PONG_RAM["ball_x"]] + PONG_SCREEN_OFFSETS["ball_x"])) <= 1.0
            assert abs(ys.mean() - (ram[PONG_RAM["ball_y"]] + PONG_SCREEN_OFFSETS["ball_y"])) <= 2.0
            checked["ball_x"] += 1
            checked["ball_y"] += 1
    assert min(checked.values()) > 300, checked  # the check saw the objects, and saw them move


def test_breakout_ram_addresses_match_the_screen():
    paddles = balls = 0
    lefts = set()
    for frame, ram in _frames("Breakout", 1500):
        _, xs = _pixels(frame[:, :152], BREAKOUT_RED, slice(189, 193))  # the paddle's rows, inside the walls
        if len(xs) and xs.max() - xs.min() == 15 and 8 < xs.min():  # whole 16-px paddle, not against a wall
            centre = ram[BREAKOUT_RAM["player_x"]] + BREAKOUT_SCREEN_OFFSETS["player_x"]
            assert abs((xs.min() + xs.max()) / 2 - centre) <= 1.0
            paddles += 1
            lefts.add(int(xs.min()))
        ys, xs = _pixels(frame, BREAKOUT_RED, slice(93, 188))  # below the bricks, above the paddle
        if len(ys):
            assert abs(xs.mean() - (ram[BREAKOUT_RAM["ball_x"]] + BREAKOUT_SCREEN_OFFSETS["ball_x"])) <= 1.0
            assert abs(ys.mean() - (ram[BREAKOUT_RAM["ball_y"]] + BREAKOUT_SCREEN_OFFSETS["ball_y"])) <= 2.0
            balls += 1
    assert paddles > 300 and balls > 100 and len(lefts) > 20, (paddles, balls, len(lefts))


def test_make_expert_names_the_ram_experts():
    assert isinstance(make_expert("ram", "atari-pong"), PongRamExpert)
    assert isinstance(make_expert("auto", "atari-breakout"), BreakoutRamExpert)
    assert isinstance(make_expert("auto", "atari-alien"), RandomExpert)  # no RAM expert: random, as before
    with pytest.raises(ValueError, match="babyai-go-to.*RAM experts exist for"):
        make_expert("ram", "babyai-go-to")


def test_ram_expert_refuses_another_game_and_a_missing_reset():
    env = make_env("atari-pong")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="plays Breakout, not 'pong'"):
        BreakoutRamExpert().reset(env, 0)
    with pytest.raises(RuntimeError, match="needs reset"):
        PongRamExpert()({})
    with pytest.raises(ValueError, match="plays ALE games"):
        PongRamExpert().reset(gym.make("CartPole-v1"), 0)


def test_ram_expert_pickles_without_its_emulator():
    env = make_env("atari-breakout")
    obs, _ = env.reset(seed=0)
    expert = BreakoutRamExpert()
    expert.reset(env, 0)
    assert expert(obs) in range(env.action_space.n)
    clone = pickle.loads(pickle.dumps(expert))  # collector workers get a copy and bind their own env
    with pytest.raises(RuntimeError, match="needs reset"):
        clone(obs)


def test_pong_expert_lookahead_leaves_the_episode_untouched():
    env_a, env_b = make_env("atari-pong"), make_env("atari-pong")
    obs_a, _ = env_a.reset(seed=3)
    obs_b, _ = env_b.reset(seed=3)
    expert = PongRamExpert()
    expert.reset(env_a, 3)
    for _ in range(60):
        action = expert(obs_a)  # tries moves on a cloned state of env_a
        obs_a, reward_a, *_ = env_a.step(action)
        obs_b, reward_b, *_ = env_b.step(action)
        np.testing.assert_array_equal(obs_a["image_observation"], obs_b["image_observation"])
        assert reward_a == reward_b


def test_collect_breakout_with_the_ram_expert(tmp_path):
    from jat_policy.data import collect, load_jat_dataset

    result = collect(
        "atari-breakout", "ram", 2, out=tmp_path, max_steps=40, random_episodes=0, progress=False, test_fraction=0
    )
    assert result.metadata["expert"]["name"] == "ram-scripted:breakout"
    row = load_jat_dataset("atari-breakout", split="train", path=result.path)[0]
    from jat_policy.data.images import image_to_frame

    assert image_to_frame(row["image_observations"][0]).shape == (84, 84, 4)
    assert len(row["discrete_actions"]) == 40


def _points(task: str, expert, seed: int, max_steps: int) -> tuple[int, int, float]:
    """(points won, points lost, score) of the expert over at most ``max_steps`` steps of one game."""
    env = make_env(task)
    obs, _ = env.reset(seed=seed)
    expert.reset(env, seed)
    won = lost = 0
    score = 0.0
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(expert(obs))
        won, lost, score = won + (reward > 0), lost + (reward < 0), score + float(reward)
        if terminated or truncated:
            break
    return won, lost, score


@pytest.mark.slow
def test_breakout_expert_beats_random_by_far():
    *_, score = _points("atari-breakout", BreakoutRamExpert(), 0, 27_000)  # a whole game (all five lives)
    assert score >= 20  # random play scores 1.7 (paper's table), the expert ~55-69


@pytest.mark.slow
def test_pong_expert_wins_more_points_than_it_loses():
    # 1500 steps of a game (whole ones take 6-27k steps); the emulator and the expert are deterministic
    won, lost, _ = _points("atari-pong", PongRamExpert(), 1, 1500)
    assert won > lost and won >= 3, (won, lost)  # random play loses ~21-0
