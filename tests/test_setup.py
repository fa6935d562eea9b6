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
