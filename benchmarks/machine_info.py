"""What the benchmark reports record about the CPU they ran on."""

from __future__ import annotations

from pathlib import Path

# CPU features that decide low-precision speed (bf16, fp16 and int8 dot products, AMX tiles).
KEY_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "avx512vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
)


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


def key_flags(flags: list[str]) -> dict[str, bool]:
    """Which of :data:`KEY_FLAGS` the CPU has."""
    return {flag: flag in flags for flag in KEY_FLAGS}
