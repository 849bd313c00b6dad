#!/usr/bin/env bash
# The rest of the 500-image test protocol for a model certified on every 5th protocol image
# (results/certify/NAME, images 0, 100, ...): the other 400 in four resumable runs of 100,
# results/certify/NAME_o20, _o40, _o60, _o80 (images 20, 120, ...; 40, 140, ...). An image's noise
# depends on its index only, so the five runs together are the 500-image run, paired with FP's
# (benchmarks/headline_table.py joins them: NAME=DIR+DIR_o20+...). Rerun the same command after
# a kill; finished parts (a summary.json) are skipped. THREADS (default 1), OFFSETS (default "20 40 60 80").
# Usage: scripts/protocol_parts.sh NAME   e.g. scripts/protocol_parts.sh haq60best_v2_kd_e6
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
for offset in ${OFFSETS:-20 40 60 80}; do
  [ -f "results/certify/${name}_o$offset/summary.json" ] && continue
  robustq certify "results/models/$name/model.safetensors" --data "$DATA" --n 10000 --skip 100 \
    --max 100 --offset "$offset" --cache --threads "${THREADS:-1}" --out "results/certify/${name}_o$offset"
done
