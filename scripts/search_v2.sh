#!/usr/bin/env bash
# Issue 18 on zoo v2 (ResNet-20, sigma 0.25) with the weight-sharing model of scripts/shared_v2.sh.
# One FP cache (500 held-out images, n = 2000) shared by every search; episodes re-bit the shared
# model, re-estimate BatchNorm on 1,024 noisy images, and score ARQ's reward by IRS (n_p = 100)
# with the deployed integer model in ONNX Runtime. Resumable: rerun the same command.
#   scripts/search_v2.sh STRATEGY EPISODES [REWARD]   e.g.  random 40 arq | arq 300 | tpe 300
# OUT_ROOT (default runs/search_v2), THREADS (default 1), BUDGET (default 1.5625), CERT (held-out
# images certified per episode, default 500; other counts get their own FP cache), WARMUP
# (default EPISODES / 6; NSGA-II's population), SEED (0; another seed also draws other held-out
# images, so it gets its own FP cache), FLAGS (more search flags, e.g.
# "--explore-decay 0.95 --seed-uniform") with TAG (their suffix on the output directory), ZOO (the FP
# checkpoint, default the sigma-0.25 zoo v2: another one needs its own OUT_ROOT, for its FP cache).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT_ROOT=${OUT_ROOT:-runs/search_v2}
THREADS=${THREADS:-1}
BUDGET=${BUDGET:-1.5625}
CERT=${CERT:-500}
SHARED=${SHARED:-runs/shared/resnet20_v2_s025/model.safetensors}
strategy=$1; episodes=$2; reward=${3:-}
SEED=${SEED:-0}
FLAGS=${FLAGS:-}
TAG=${TAG:-}
[ -z "$FLAGS" ] || [ -n "$TAG" ] || { echo "FLAGS needs a TAG (the output's suffix)" >&2; exit 2; }
warmup=${WARMUP:-$(( episodes / 6 > 0 ? episodes / 6 : 1 ))}
tag=""; [ "$CERT" = 500 ] || tag="_c$CERT"
[ "$SEED" = 0 ] || tag="${tag}_s$SEED"
out=$OUT_ROOT/${strategy}${reward:+_$reward}_b${BUDGET}_e${episodes}$tag$TAG
robustq search "${ZOO:-zoo/resnet20_cifar10_sigma0.25_v2.safetensors}" --data "$DATA" \
  --strategy "$strategy" ${reward:+--reward "$reward"} --budget "$BUDGET" \
  --episodes "$episodes" --warmup "$warmup" --holdout-images 500 --cert-images "$CERT" --n 2000 \
  --n-p 100 --shared "$SHARED" --reward-engine onnx --fp-cache "$OUT_ROOT/fp_cache_v2_h500$tag" \
  --test-images 0 --seed "$SEED" --threads "$THREADS" --out "$out" $FLAGS
