#!/usr/bin/env bash
# Refreshes requirements/lock.txt to the newest versions pyproject.toml allows (pip-compile, with torch held at the
# CPU build 2.13.0 of requirements/torch.in), then reinstalls .venv from it and runs the default suite on it.
# If the suite fails, the new lock is not the tested stack: `git checkout requirements/lock.txt` restores the old one.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.venv-tools
if [ ! -x "$tools/bin/pip-compile" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "pip-tools==7.6.2"
fi
# jat-policy is "unsafe": its `all` extra names the project itself, and pip-compile would pin it as
# `jat-policy @ file:///<this checkout>`, a path no other clone has (pip then refuses the lock).
CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tools/bin/pip-compile" -q --upgrade --extra all --extra dev --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --unsafe-package jat-policy --unsafe-package pip \
  -o requirements/lock.txt pyproject.toml requirements/torch.in
git --no-pager diff --stat -- requirements/lock.txt || true
exec bash scripts/test.sh "$@"
