#!/usr/bin/env bash
# Issue 17: the deploy recipe (LSQ 4/4, every layer, 3 epochs over the full training split at the
# model's sigma, distillation from the FP model) on the zoo v2 ResNet-20, then its certification on
# the 500-image protocol with the seeds of the FP run it is paired with. Resumable: rerun the same
# command after a kill. OUT_ROOT (default runs/deploy), THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT_ROOT=${OUT_ROOT:-runs/deploy}
THREADS=${THREADS:-1}
out=$OUT_ROOT/lsq44_v2_kd
policy=$OUT_ROOT/uniform44_all.json   # every layer at 4/4, the image input included: 1.5625% BitOPs
mkdir -p "$OUT_ROOT"
[ -f "$policy" ] || python -c "import sys; from robustq.models import get_model
from robustq.quant.policy import uniform_policy
uniform_policy(get_model('resnet20'), 4, 4, None, first_input_fp=False).save(sys.argv[1])" "$policy"
resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
[ -f "$out/model.safetensors" ] || robustq quantize zoo/resnet20_cifar10_sigma0.25_v2.safetensors \
  --data "$DATA" --policy "$policy" --method lsq --recipe deploy --seed 0 --threads "$THREADS" \
  --out "$out" $resume     # deploy: --epochs 3 --lr 0.01 --distill 0.5 --distill-temperature 2
robustq certify "$out/model.safetensors" --data "$DATA" --n 10000 --skip 20 --max 500 --cache \
  --threads "$THREADS" --out "$OUT_ROOT/cert_lsq44_v2_kd"
