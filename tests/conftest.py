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
