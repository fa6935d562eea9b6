"""The agent on video: evaluate(..., video_dir=...) and `jat-policy evaluate --video` record episode 0 per task.

Every domain renders headless here (no DISPLAY): MuJoCo and Meta-World through the off-screen backend that
jat_policy.wrappers.rendering picks. Frames are read back from the MP4 with imageio.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

from jat_policy.cli import main
from jat_policy.evaluation import evaluate, random_policy_factory
from jat_policy.evaluation.video import RecordEpisodeVideo, write_gif, write_mp4
from jat_policy.wrappers.rendering import ensure_offscreen_rendering

iio = pytest.importorskip("imageio.v3")
pytest.importorskip("imageio_ffmpeg")

# task, extra time limit (keeps Meta-World's ~0.2 s software-rendered frames few), frame shape
DOMAINS = [
    ("atari-pong", 30, (210, 160, 3)),
    ("babyai-go-to-red-ball", 20, (256, 256, 3)),
    ("metaworld-reach", 6, (480, 480, 3)),
    ("mujoco-pendulum", 25, (480, 480, 3)),
]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("task", "max_steps", "shape"), DOMAINS, ids=[d[0].split("-")[0] for d in DOMAINS])
def test_first_episode_of_each_domain_is_recorded(tmp_path, task, max_steps, shape):
    result = evaluate(
        random_policy_factory(0),
        task,
        n_episodes=2,
        n_envs=2,
        seed=3,
        max_episode_steps=max_steps,
        progress=False,
        video_dir=tmp_path,
    )
    res = result.tasks[task]
    assert res.video == str(tmp_path / f"{task}-episode-0.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{task}-episode-0.mp4"]  # env 1 does not record
    frames = iio.imread(res.video)
    # one frame at reset and one per step of episode 0
    assert frames.shape == (int(res.lengths[0]) + 1, *shape) and frames.dtype == np.uint8
    assert frames.std() > 0  # an image, not a blank context
    assert result.to_dict()["tasks"][task]["video"] == res.video


def test_recording_does_not_change_the_scores(tmp_path):
    kwargs = dict(n_episodes=3, n_envs=2, seed=0, max_episode_steps=20, progress=False)
    plain = evaluate(random_policy_factory(0), "babyai-go-to-red-ball", **kwargs)
    filmed = evaluate(random_policy_factory(0), "babyai-go-to-red-ball", video_dir=tmp_path, **kwargs)
    np.testing.assert_array_equal(
        plain.tasks["babyai-go-to-red-ball"].returns, filmed.tasks["babyai-go-to-red-ball"].returns
    )
    assert plain.tasks["babyai-go-to-red-ball"].video is None


def test_custom_env_fn_must_render_rgb_arrays(tmp_path):
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        evaluate(
            random_policy_factory(0),
            "cartpole",
            env_fn=lambda task: gym.make("CartPole-v1"),
            reference_scores={"cartpole": (20.0, 500.0)},
            progress=False,
            video_dir=tmp_path,
        )


def test_cli_video_flag(tmp_path, capsys):
    videos = tmp_path / "videos"
    argv = ["evaluate", "--model", "random", "--tasks", "CartPole-v1", "--episodes", "1", "--no-progress"]
    argv += ["--no-plots", "--output", str(tmp_path / "eval.json"), "--video", str(videos)]
    assert main(argv) == 0
    video = videos / "CartPole-v1-episode-0.mp4"
    assert f"Saved {video}" in capsys.readouterr().out
    assert iio.imread(video).shape[1:] == (400, 600, 3)


def test_record_episode_video_writes_one_file_per_triggered_episode(tmp_path):
    env = RecordEpisodeVideo(
        gym.make("CartPole-v1", render_mode="rgb_array"), tmp_path, episode_trigger=lambda k: k in (0, 2), fps=20
    )
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(4 + episode):
            env.step(0)
    env.close()
    assert [p.name for p in env.saved] == ["rl-video-episode-0.mp4", "rl-video-episode-2.mp4"]
    assert [len(iio.imread(p)) for p in env.saved] == [5, 7]
    assert iio.immeta(env.saved[0])["fps"] == 20


def test_writers_keep_frame_sizes_and_refuse_bad_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 210, 160, 3), dtype=np.uint8)
    assert iio.imread(write_mp4(frames, tmp_path / "a.mp4", fps=15)).shape == (6, 210, 160, 3)
    gif = iio.imread(write_gif(frames, tmp_path / "a.gif", fps=5, max_side=105))
    assert gif.shape[0] == 6 and gif.shape[1:3] == (105, 80)
    with pytest.raises(ValueError, match="uint8 RGB"):
        write_mp4(frames.astype(np.float32), tmp_path / "b.mp4", fps=15)
    with pytest.raises(ValueError, match="No frames"):
        write_gif([], tmp_path / "b.gif")


def test_offscreen_backend_only_when_headless(monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.setenv(name, "")  # recorded, so the values are restored after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("DISPLAY", ":0")
    assert ensure_offscreen_rendering() is None and "MUJOCO_GL" not in os.environ
    monkeypatch.delenv("DISPLAY")
    assert ensure_offscreen_rendering(render_mode=None) is None  # nothing renders off screen
    backend = ensure_offscreen_rendering()
    assert backend in ("egl", "osmesa") and os.environ["MUJOCO_GL"] == backend
    assert os.environ["SDL_VIDEODRIVER"] == "dummy"  # pygame (classic control) renders without a window
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert ensure_offscreen_rendering() == "osmesa"  # the user's choice stays
