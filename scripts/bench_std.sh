#!/usr/bin/env bash
# The RobustMQ grid on a standard-trained (sigma 0) zoo model (issue 20), resumable unit by unit:
# rerun the same command to continue. Usage: scripts/bench_std.sh [arch]   (default resnet20)
# Output: results/bench/std_<arch><ZOO> (tracked, so committed cells land and a later session
# resumes from them; its corrupted-image cache is git-ignored and rebuilt).
# METHODS (lsq_mse,dorefa,pact), BITS, IMAGES (1000: corruptions and pipelines), ATTACK (500: FGSM/PGD), AA (AutoAttack
# images, 100) - the issue's minima -, AA_CHUNK (AutoAttack images per call and checkpoint, 20;
# the v2 ResNet-20 grid ran before chunks existed: resume it with AA_CHUNK=200), THREADS (2),
# WORKERS (1: local worker processes sharing the units; e.g. WORKERS=2 THREADS=1 on two cores),
# ZOO (checkpoint suffix, e.g. _v2), MODELS (the models dir, as in scripts/qat_std.sh). Quantized models missing from the models dir get bench's own one-epoch QAT;
# scripts/qat_std.sh puts the deploy-recipe models there first.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-resnet20}
ZOO=${ZOO:-}
MODELS=${MODELS:-results/models/std_${arch}${ZOO}}
robustq bench "zoo/${arch}_cifar10_sigma0${ZOO}.safetensors" --data ../shared/data/cifar10-jpeg.zip \
  --out "${OUT:-results/bench/std_${arch}${ZOO}}" --models-dir "$MODELS" \
  --methods "${METHODS:-lsq_mse,dorefa,pact}" --bits "${BITS:-4,2,6,8}" --images "${IMAGES:-1000}" \
  --attack-images "${ATTACK:-500}" --autoattack-images "${AA:-100}" \
  --autoattack-chunk "${AA_CHUNK:-20}" --threads "${THREADS:-2}" --workers "${WORKERS:-1}"
