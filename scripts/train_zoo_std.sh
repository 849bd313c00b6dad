#!/usr/bin/env bash
# Standard-trained (sigma 0) CIFAR-10 models for the RobustMQ grid (issue 20), resumable: rerun
# the same command to continue after a kill. Usage: scripts/train_zoo_std.sh [arch...]
# SIGMA (default 0): the same recipe with Gaussian noise augmentation at that sigma (issue 17's
# sigma-0.5 zoo model). OUT_ROOT (default results/train/zoo_std: tracked with its per-epoch
# train_state.safetensors, so a training longer than one session resumes in the next from the
# last committed epoch) holds one directory per model; EPOCHS (default 30), THREADS (1),
# PRECISION (fp32 | bf16: forward passes under bfloat16 autocast, ~1.9x a step here), SUFFIX
# (appended to each run's directory name, e.g. _e100_bf16, so that schedules do not collide).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
EPOCHS=${EPOCHS:-30}
THREADS=${THREADS:-1}
OUT_ROOT=${OUT_ROOT:-results/train/zoo_std}
SIGMA=${SIGMA:-0}
PRECISION=${PRECISION:-fp32}
SUFFIX=${SUFFIX:-}
for arch in ${@:-resnet20 mobilenetv2 resnet56}; do
  out=$OUT_ROOT/${arch}_cifar10_sigma$SIGMA$SUFFIX
  resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
  robustq train --data "$DATA" --arch "$arch" --epochs "$EPOCHS" --batch-size 128 --lr 0.1 \
    --schedule onecycle --sigma "$SIGMA" --seed 1 --precision "$PRECISION" --threads "$THREADS" \
    --out "$out" $resume
done
