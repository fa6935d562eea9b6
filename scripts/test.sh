#!/usr/bin/env bash
# The test command: installs (if needed) and runs the default test suite (slow tests and benchmarks deselected).
#   bash scripts/test.sh [pytest args]            the locked stack (requirements/lock.txt) in .venv
#   bash scripts/test.sh --latest [pytest args]   a scratch .venv-latest with the newest versions pyproject allows
#   bash scripts/test.sh --oldest [pytest args]   a scratch .venv-oldest with every direct dependency at its lower bound
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
case "${1:-}" in
  --latest | --oldest)
    mode=${1#--}
    shift
    venv=".venv-$mode"
    rm -rf "$venv"
    python3 -m venv "$venv"
    pins=()
    if [ "$mode" = oldest ]; then
      python3 scripts/lower_bounds.py > "$venv/lower-bounds.txt"
      pins=(-c "$venv/lower-bounds.txt")
    fi
    # torch stays 2.13.0: the CPU build on this machine's disk (any newer torch on PyPI is a multi-GB CUDA build)
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "${pins[@]}" "torch==2.13.0" -e ".[all,dev]"
    echo "test.sh --$mode: $("$venv/bin/python" scripts/versions.py)" >&2
    exec "$venv/bin/python" -m pytest -q "$@"
    ;;
esac
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
