#!/usr/bin/env bash
# The GPU checks of issue 15, in one short run on a CUDA machine (from the repository root, jat-policy installed):
#   1. exactness on the GPU: every fp32 action equals the full forward over s(t)..t with the step replayed as a CUDA
#      graph (tests marked "needs a CUDA GPU" skip on CPU-only machines and run here);
#   2. the latency benchmark on cuda, fp32 and bf16 (int8 is CPU only), 1 and 16 envs;
#   3. bf16 fidelity against fp32 on the trained checkpoint, if it is there;
#   4. issue 18: benchmarks/learning.py unchanged on cuda (bf16 autocast, its GPU default), the four-domain
#      configuration with jat-tiny and with jat-small, LEARN_MINUTES of training each (default 2; 0 skips), on data
#      collected there with small counts (a proof that the GPU path trains and evaluates, not a score run).
# Results are written under $OUT (default: benchmarks/results/gpu); commit the JSON files.
# On an offline CUDA image with its own torch, first install what it lacks from wheels made here
# (scripts/offline_wheels.sh; the groups core babyai mujoco atari metaworld eval) and put them on PYTHONPATH.
set -euo pipefail
OUT=${OUT:-benchmarks/results/gpu}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"

"$PYTHON" -m pytest -q -p no:randomly tests/test_rolling.py tests/test_policy.py -k "cuda or gpu or rollout" \
    --junitxml="$OUT/exactness_junit.xml" 2>&1 | tee "$OUT/exactness.log"

"$PYTHON" benchmarks/predict_latency.py --device cuda --precisions fp32 bf16 --threads 1 --envs 1 16 \
    --out "$OUT/predict_latency" 2>&1 | tee "$OUT/predict_latency.log"

CHECKPOINT=${CHECKPOINT:-runs/bf16/fp32/runs/multi/final}
if [ -d "$CHECKPOINT" ]; then
    "$PYTHON" benchmarks/precision_fidelity.py --device cuda --precisions bf16 --checkpoint "$CHECKPOINT" \
        --data "${DATA:-runs/bf16/data}" --out "$OUT/precision_fidelity" 2>&1 | tee "$OUT/precision_fidelity.log"
else
    echo "no checkpoint at $CHECKPOINT: fidelity skipped (set CHECKPOINT and DATA)" | tee "$OUT/precision_fidelity.log"
fi

LEARN_MINUTES=${LEARN_MINUTES:-2}
if [ "$LEARN_MINUTES" != 0 ]; then
    # jat-small trains at the reference's 1e-4; jat-tiny at the benchmark's 1e-3
    for run in "jat-tiny 1e-3" "jat-small 1e-4"; do
        set -- $run
        "$PYTHON" benchmarks/learning.py --configs multi --device cuda --preset "$1" --learning-rate "$2" \
            --budget-minutes "$LEARN_MINUTES" --episodes 5000 --metaworld-episodes 100 --mujoco-episodes 20 \
            --atari-episodes 4 --atari-eval-episodes 4 --eval-episodes 50 --workers "${WORKERS:-8}" \
            --observation-loss-coef 0 --scratch "${SCRATCH:-runs/gpu-learning}" --results "$OUT/learning-$1" \
            2>&1 | tee "$OUT/learning-$1.log"
    done
fi
