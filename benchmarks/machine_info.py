"""What the benchmark reports record about the CPU they ran on."""

from __future__ import annotations

from pathlib import Path


def cpu_info() -> tuple[str | None, list[str]]:
    """``(model name, flags)`` of the first CPU in /proc/cpuinfo; ``(None, [])`` where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, []
    model, flags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value.split()
    return model, flags
