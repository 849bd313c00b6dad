#!/usr/bin/env bash
# Issue 18's headline rows: one search (scripts/search_v2.sh), its record kept in results/search,
# then its best policy through the deploy recipe (scripts/deploy_recipe_v2.sh, 6 epochs, KD) and
# certified on every 5th protocol image (100 images; SKIP/MAX override it). Resumable: rerun the
# same command after a kill (the search, the QAT epochs and the certification all resume).
# Usage: scripts/headline_v2.sh NAME STRATEGY EPISODES [REWARD]
#   e.g. scripts/headline_v2.sh haq60best_v2_kd_e6 haq 60
#        BUDGET=1.0 scripts/headline_v2.sh arq60best_b1.0_v2_kd_e6 arq 60
# CERT (default 100) and WARMUP (default 10) go to the search; BUDGET, SEED, FLAGS, TAG, ZOO as there
# (another ZOO needs its own SHARED, OUT_ROOT and TAG: TAG names the kept search record).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; strategy=$2; episodes=$3; reward=${4:-}
export CERT=${CERT:-100} WARMUP=${WARMUP:-10} BUDGET=${BUDGET:-1.5625}
export SHARED=${SHARED:-results/models/shared_resnet20_v2_s025/model.safetensors}
OUT_ROOT=${OUT_ROOT:-runs/search_v2}
tag=""; [ "$CERT" = 500 ] || tag="_c$CERT"
[ "${SEED:-0}" = 0 ] || tag="${tag}_s$SEED"
run=${strategy}${reward:+_$reward}_b${BUDGET}_e${episodes}$tag${TAG:-}
kept=results/search/$run
if [ ! -f "$kept/best_policy.json" ]; then
  OUT_ROOT=$OUT_ROOT scripts/search_v2.sh "$strategy" "$episodes" $reward
  mkdir -p "$kept.tmp" && cp "$OUT_ROOT/$run"/{best_policy.json,episodes.jsonl,search.json} "$kept.tmp/"
  [ ! -d "$OUT_ROOT/$run/episodes" ] || cp -r "$OUT_ROOT/$run/episodes" "$kept.tmp/"
  rm -rf "$kept" && mv "$kept.tmp" "$kept"
fi
POLICY=$kept/best_policy.json SKIP=${SKIP:-100} MAX=${MAX:-100} \
  scripts/deploy_recipe_v2.sh "$name" mp mp lsq --epochs 6
