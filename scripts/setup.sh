#!/usr/bin/env bash
# Creates .venv and installs jat-policy with every extra (idempotent: a second run only checks).
# torch==2.13.0 goes in the same pip command as the project: a bare torch range resolves to CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import jat_policy, torch, pytest" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".[all,dev]"
fi
