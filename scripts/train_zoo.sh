#!/usr/bin/env bash
# Train the CIFAR-10 zoo models with robustq's own command (resumable: rerun to continue).
# Usage: scripts/train_zoo.sh [sigma...]   (default: 0.25 0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
EPOCHS=${EPOCHS:-15}
for sigma in "${@:-0.25 0.5}"; do
  for s in $sigma; do
    out=runs/zoo/resnet20_cifar10_sigma$s
    resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
    robustq train --data "$DATA" --arch resnet20 --epochs "$EPOCHS" --batch-size 128 --lr 0.1 \
      --schedule onecycle --sigma "$s" --seed 0 --out "$out" $resume
  done
done
