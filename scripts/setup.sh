#!/usr/bin/env bash
# Creates .venv and installs jat-policy with every extra at the versions of requirements/lock.txt (the stack the
# suite passed on). Idempotent: a second run only checks; a changed lock or pyproject.toml reinstalls.
# torch==2.13.0 goes in the same pip command as the project: a bare torch range resolves to CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
lock=requirements/lock.txt
stamp="$venv/.jat-policy-lock"
want=$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c "import jat_policy, torch, pytest" >/dev/null 2>&1; then
  echo "setup: installing jat-policy[all,dev] into $venv from $lock" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$lock" "torch==2.13.0" -e ".[all,dev]"
  echo "$want" > "$stamp"
fi
