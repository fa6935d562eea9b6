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
# Headless rendering (evaluate --video, the demo's GIFs): without a display MuJoCo and Meta-World render through
# EGL (jat_policy/wrappers/rendering.py sets MUJOCO_GL=egl), here Mesa's software EGL. Installed with apt when
# missing and apt is usable (root); never fatal: without it only rendering MuJoCo / Meta-World frames fails.
if [ "$(uname -s)" = Linux ] && ! { ldconfig -p | grep -q 'libEGL\.so\.1' && ldconfig -p | grep -q -E 'libEGL_(mesa|nvidia)\.so\.0'; }; then
  egl_packages="libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri"
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Mesa EGL for headless rendering: $egl_packages" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $egl_packages; } \
      >/dev/null 2>&1 || echo "setup: warning: apt could not install $egl_packages; MuJoCo videos will not render" >&2
  else
    echo "setup: warning: no EGL library; to render MuJoCo / Meta-World headless install $egl_packages" >&2
  fi
fi
