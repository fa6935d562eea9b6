#!/usr/bin/env bash
# The test command: installs (if needed) and runs the default test suite (slow tests and benchmarks deselected).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
