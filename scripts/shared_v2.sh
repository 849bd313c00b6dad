#!/usr/bin/env bash
# Issue 18: one weight-sharing LSQ ResNet-20 (zoo v2, sigma 0.25) for cheap search episodes: 3
# epochs over the full training split, a random policy (bits 2-8, BitOPs 0.8-2.6%) each step,
# half the loss distilled from the FP model (the deploy recipe's settings). Resumable: rerun the
# same command after a kill. OUT_ROOT (default runs/shared), THREADS (default 1), ZOO (the FP
# checkpoint, default the sigma-0.25 zoo v2) with NAME (the output's name, default resnet20_v2_s025).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT_ROOT=${OUT_ROOT:-runs/shared}
THREADS=${THREADS:-1}
ZOO=${ZOO:-zoo/resnet20_cifar10_sigma0.25_v2.safetensors}
out=$OUT_ROOT/${NAME:-resnet20_v2_s025}
resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
[ -f "$out/model.safetensors" ] || robustq shared "$ZOO" \
  --data "$DATA" --epochs 3 --seed 0 --threads "$THREADS" --out "$out" $resume
