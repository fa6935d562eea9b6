"""Test-wide settings: never touch the network, keep torch to few threads."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_DIR = FIXTURES / "reference-parity"


def pytest_configure(config) -> None:
    # Tiny models gain nothing from intra-op threads, and two threads oversubscribe a 2-core machine
    # as soon as a test runs a subprocess (collect workers, torchrun, README snippets).
    import torch

    torch.set_num_threads(1)
