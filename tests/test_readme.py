"""The README stays true: its set-up block, and every Python snippet runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
HUB_MARK = "# needs the Hugging Face Hub"


def test_first_block_holds_the_two_commands() -> None:
    lang, code = BLOCKS[0]
    commands = [line.split("#")[0].strip() for line in code.strip().splitlines()]
    assert commands == ["bash scripts/quickstart.sh", "bash scripts/test.sh"]
    for command in commands:
        assert (ROOT / command.split()[1]).is_file()
    # .ci/run calls the README's test command
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "jat-policy demo" in (ROOT / "scripts" / "quickstart.sh").read_text()


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_snippet_runs(index: int, tmp_path: Path) -> None:
    code = PYTHON[index]
    if code.startswith(HUB_MARK):
        # Offline, the Hub snippet must fail fast with the explanation, not hang.
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode != 0 and "local" in proc.stderr.lower(), proc.stderr[-2000:]
        return
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=os.environ
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip(), "every snippet prints a result"
