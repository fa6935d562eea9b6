#!/usr/bin/env bash
# The main job on its built-in default, offline on a CPU: installs (if needed), then runs `jat-policy demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
bash scripts/setup.sh
exec .venv/bin/jat-policy demo "$@"
