#!/usr/bin/env bash
# Zoo v2: the v1 ResNet-20s trained further (warm start, a second cosine cycle), resumable:
# rerun the same command to continue after a kill. Usage: scripts/train_zoo_v2.sh [sigma...]
# OUT_ROOT (default runs/zoo_v2) holds one directory per model; EPOCHS (default 30), LR (0.05),
# THREADS (default: torch's), SEED (1), FROM (the warm start's suffix: "" = the v1 file, "_v2" = v2).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
EPOCHS=${EPOCHS:-30}
LR=${LR:-0.05}
OUT_ROOT=${OUT_ROOT:-runs/zoo_v2}
THREADS=${THREADS:-}
SEED=${SEED:-1}
FROM=${FROM:-}
for s in ${@:-0.25 0.5}; do
  out=$OUT_ROOT/resnet20_cifar10_sigma$s
  resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
  robustq train --data "$DATA" --arch resnet20 --epochs "$EPOCHS" --batch-size 128 --lr "$LR" \
    --schedule cosine --sigma "$s" --seed "$SEED" --init "zoo/resnet20_cifar10_sigma$s$FROM.safetensors" \
    --out "$out" ${THREADS:+--threads "$THREADS"} $resume
done
