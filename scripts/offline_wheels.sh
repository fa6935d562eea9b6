#!/usr/bin/env bash
# Wheels for running jat-policy from a checkout on an offline machine that already has its own PyTorch stack (a CUDA
# image with torch, transformers, accelerate, safetensors, numpy, pyarrow, scipy, matplotlib, imageio, opencv):
# downloads, at the versions of requirements/lock.txt, the packages such an image usually lacks, grouped so that each
# group fits a size-limited transfer. Pure-Python sdists (rliable) are built into wheels here.
#
#   bash scripts/offline_wheels.sh [--python 3.12] DEST GROUP...     groups: core babyai mujoco atari metaworld eval
#
# On the offline machine (from the checkout's root; nothing is fetched, --no-deps keeps its torch stack untouched):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DEST/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
#
# Sizes (Python 3.12, manylinux x86_64): core 1.5 MB, babyai 12 MB (pygame-ce), mujoco 10 MB, atari 3 MB,
# metaworld 37 MB (its meshes), eval 15 MB (pandas 2: rliable's arch breaks on pandas 3).
set -euo pipefail
cd "$(dirname "$0")/.."
python_version=3.12
if [ "${1:-}" = --python ]; then
  python_version=$2
  shift 2
fi
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/offline_wheels.sh [--python 3.12] DEST GROUP... (groups: core babyai mujoco atari metaworld eval)" >&2
  exit 2
fi
dest=$1
shift
declare -A groups=(
  [core]="gymnasium farama-notifications stable-baselines3 datasets dill multiprocess"
  [babyai]="minigrid pygame-ce"
  [mujoco]="mujoco glfw pyopengl"
  [atari]="ale-py"
  [metaworld]="metaworld"
  [eval]="rliable arch pandas pytz tzdata"
)
packages=()
for group in "$@"; do
  if [ -z "${groups[$group]+set}" ]; then
    echo "offline_wheels.sh: error: unknown group '$group' (expected: ${!groups[*]})" >&2
    exit 2
  fi
  packages+=(${groups[$group]})
done
mkdir -p "$dest"
lock=requirements/lock.txt
platforms=()
for n in 17 24 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
for name in "${packages[@]}"; do
  pin=$(grep -i -m1 "^${name}==" "$lock" || true)
  if [ -z "$pin" ]; then
    echo "offline_wheels.sh: error: $name is not in $lock" >&2
    exit 1
  fi
  if ! python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$python_version" --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 \
    -d "$dest" "$pin" 2>/dev/null; then
    # no wheel on the index (rliable ships an sdist only): build one; it must be pure Python to travel
    python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$dest" "$pin"
  fi
done
du -sh "$dest"
