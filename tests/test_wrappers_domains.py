"""What every domain's env promises alike: Gymnasium's env checker, and an install hint when its extra is missing."""

from __future__ import annotations

import sys

import pytest
from gymnasium.utils.env_checker import check_env

from jat_policy.wrappers import make_env

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(different from the unwrapped|infinity|Constant\\(s\\) may be too high)"
)


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("atari-breakout", {}),
        ("babyai-go-to-local", {}),
        ("babyai-go-to-local", {"text_as_bytes": True}),
        ("metaworld-reach", {}),
        ("mujoco-pendulum", {}),
    ],
)
def test_check_env(task, kwargs):
    check_env(make_env(task, **kwargs), skip_render_check=True)


@pytest.mark.parametrize(
    ("module", "extra", "task"),
    [
        ("ale_py", "atari", "atari-pong"),
        ("minigrid", "babyai", "babyai-go-to"),
        ("metaworld", "metaworld", "metaworld-reach"),
        ("mujoco", "mujoco", "mujoco-hopper"),
    ],
)
def test_missing_extra_names_it(monkeypatch, module, extra, task):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf'pip install "jat-policy\[{extra}\]"'):
        make_env(task)
