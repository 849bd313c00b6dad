#!/usr/bin/env bash
# Issue 17: a uniform policy (every layer, the image input included) quantized with the deploy
# recipe (full training split at the model's sigma, distillation from the FP model) from the zoo v2
# ResNet-20, then certified on the 500-image protocol with the seeds of the FP run it is paired
# with. Resumable: rerun the same command after a kill.
# Usage: scripts/deploy_recipe_v2.sh NAME W A [METHOD [quantize flags...]]
#   e.g. scripts/deploy_recipe_v2.sh lsq44_v2_kd 4 4 lsq
#        scripts/deploy_recipe_v2.sh lsq44_v2_kd_e6 4 4 lsq --epochs 6
# OUT_ROOT (default runs/deploy) holds the QAT run; its model is kept in MODEL_ROOT (default
# results/models) and certified into CERT_ROOT (default results/certify), both tracked in git so
# that later sessions resume and pair with them; THREADS (default 1). SKIP/MAX (default 20/500, the
# protocol) certify a subset: SKIP=100 MAX=100 takes every 5th protocol image, with the same seeds
# (an image's noise seed depends on its index only), so it still pairs with the 500-image FP run.
# POLICY: a policy file instead of uniform W/A everywhere (W and A then only name the run). ZOO: the
# FP checkpoint (default the sigma-0.25 zoo v2); the recipe trains and certifies at its sigma.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; w=$2; a=$3; method=${4:-lsq}; shift $(( $# < 4 ? $# : 4 ))
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT_ROOT=${OUT_ROOT:-runs/deploy}
CERT_ROOT=${CERT_ROOT:-results/certify}
MODEL_ROOT=${MODEL_ROOT:-results/models}
THREADS=${THREADS:-1}
SKIP=${SKIP:-20}
MAX=${MAX:-500}
out=$OUT_ROOT/$name
policy=${POLICY:-$OUT_ROOT/uniform${w}${a}_all.json}   # e.g. 4/4 everywhere: 1.5625% BitOPs
mkdir -p "$OUT_ROOT"
[ -f "$policy" ] || python -c "import sys; from robustq.models import get_model
from robustq.quant.policy import uniform_policy
uniform_policy(get_model('resnet20'), int(sys.argv[2]), int(sys.argv[3]), None,
               first_input_fp=False).save(sys.argv[1])" "$policy" "$w" "$a"
resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
kept=$MODEL_ROOT/$name
[ -f "$kept/model.safetensors" ] || [ -f "$out/model.safetensors" ] || \
  robustq quantize "${ZOO:-zoo/resnet20_cifar10_sigma0.25_v2.safetensors}" \
  --data "$DATA" --policy "$policy" --method "$method" --recipe deploy --seed 0 --threads "$THREADS" \
  --out "$out" $resume "$@"    # deploy: --epochs 3 --lr 0.01 --distill 0.5 --distill-temperature 2
if [ ! -f "$kept/model.safetensors" ]; then
  mkdir -p "$kept" && cp "$out/run.json" "$out/log.jsonl" "$kept/"
  cp "$out/model.safetensors" "$kept/model.tmp" && mv "$kept/model.tmp" "$kept/model.safetensors"
fi
robustq certify "$kept/model.safetensors" --data "$DATA" --n 10000 --skip "$SKIP" --max "$MAX" --cache \
  --threads "$THREADS" --out "$CERT_ROOT/$name"
