#!/usr/bin/env bash
# Issue 17: which lever moves LSQ 4/4 towards FP under noise? One-epoch deploy-recipe QAT runs of
# the zoo v2 ResNet-20 (sigma 0.25), one change each, scored by clean and noisy accuracy on the
# full test split (run.json: results.accuracy). Resumable: finished runs are skipped, a killed
# one resumes. Usage: scripts/qat_levers.sh [lever...]   OUT_ROOT (runs/levers), THREADS (1).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT_ROOT=${OUT_ROOT:-runs/levers}
THREADS=${THREADS:-1}
mkdir -p "$OUT_ROOT"
python - "$OUT_ROOT" <<'PY'
import sys
from pathlib import Path
from robustq.models import get_model
from robustq.quant.policy import Policy, uniform_policy
root = Path(sys.argv[1])
pol = uniform_policy(get_model("resnet20"), 4, 4, None, first_input_fp=False)
pol.save(root / "w4a4_all.json")
# the image input at 8 bits (a probe: 1.58% BitOPs, over the 1.5625% budget)
Policy({k: (b.w, 8 if k == "conv1" else b.a) for k, b in pol.items()}).save(root / "w4a4_input8.json")
PY
run() {  # name policy [quantize flags...]
  local name=$1 policy=$2; shift 2
  local out=$OUT_ROOT/$name resume=""
  [ -f "$out/model.safetensors" ] && return 0
  [ -f "$out/train_state.safetensors" ] && resume="--resume"
  robustq quantize zoo/resnet20_cifar10_sigma0.25_v2.safetensors --data "$DATA" \
    --policy "$OUT_ROOT/$policy" --method lsq --recipe deploy --epochs 1 --seed 0 \
    --threads "$THREADS" --out "$out" $resume "$@"
}
for lever in ${@:-base input8 kd1 kd0}; do
  case $lever in
    base) run base w4a4_all.json ;;                       # deploy recipe, one epoch
    input8) run input8 w4a4_input8.json ;;               # image input quantized at 8 bits
    kd1) run kd1 w4a4_all.json --distill 1.0 ;;          # distillation only, no cross-entropy
    kd0) run kd0 w4a4_all.json --distill 0 ;;            # no distillation
    kd1_lr3e-3) run kd1_lr3e-3 w4a4_all.json --distill 1.0 --lr 0.003 ;;   # gentler fine-tune
    kd1_lr1e-3) run kd1_lr1e-3 w4a4_all.json --distill 1.0 --lr 0.001 ;;
    kd1_t1) run kd1_t1 w4a4_all.json --distill 1.0 --distill-temperature 1 ;;
    *) echo "unknown lever $lever" >&2; exit 2 ;;
  esac
done
