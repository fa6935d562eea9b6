"""The committed lock installs anywhere: exact pins only, the CPU torch build, no path of the machine it came from."""

from __future__ import annotations

import re
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"


def _requirements() -> list[str]:
    return [line for line in LOCK.read_text().splitlines() if line and not line.startswith((" ", "#"))]


def test_lock_pins_every_package_exactly_and_names_no_local_path():
    lines = _requirements()
    assert len(lines) > 50
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s;]+", line), line  # no "pkg @ file:///..." or ranges
    assert not any(line.lower().startswith("jat-policy") for line in lines)  # the project installs itself (-e .)


def test_lock_holds_the_cpu_torch_build():
    torch = [line for line in _requirements() if line.startswith("torch==")]
    assert torch == ["torch==2.13.0+cpu"]
    assert not any(line.startswith(("nvidia-", "triton==")) for line in _requirements())


def test_offline_wheel_groups_name_only_locked_packages_and_refuse_an_unknown_group():
    import subprocess

    script = LOCK.parents[1] / "scripts" / "offline_wheels.sh"
    groups = re.findall(r'\[(\w+)\]="([^"]+)"', script.read_text())
    assert {name for name, _ in groups} == {"core", "babyai", "mujoco", "atari", "metaworld", "eval"}
    pinned = {line.split("==")[0].lower() for line in _requirements()}
    for _, packages in groups:
        assert set(packages.split()) <= pinned, packages  # every wheel is downloaded at the lock's version
    run = subprocess.run(["bash", str(script), "/tmp/unused", "gpu"], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "unknown group 'gpu'" in run.stderr
