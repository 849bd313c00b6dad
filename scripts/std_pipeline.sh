#!/usr/bin/env bash
# Issue 20's whole pipeline for one architecture on a 2-core machine: every step resumes and a
# finished one is skipped, so the same command continues it session after session until the
# grid is complete. Usage: scripts/std_pipeline.sh ARCH   (e.g. mobilenetv2, resnet56)
#   1. the standard (sigma 0) training, EPOCHS (30) epochs in fp32 on THREADS (2) threads
#      (scripts/train_zoo_std.sh with SUFFIX=_e$EPOCHS; fp32 because bf16 is emulated, 10x
#      slower, on CPUs without native bfloat16; pass PRECISION=bf16 only for a new run on one);
#   2. its publication as zoo/<arch>_cifar10_sigma0.safetensors with its card (the card is
#      written last: a model without one is not yet published);
#   3. the 12 deploy-recipe QAT models in two processes of one thread (scripts/qat_std.sh with
#      SHARD=0/2 and 1/2);
#   4. the grid with two workers of one thread (scripts/bench_std.sh, WORKERS=2 THREADS=1).
# Commit results/ now and then: the training's and the QAT models' per-epoch states and the
# grid's cells are tracked, so a later session resumes from the last committed epoch or unit.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: scripts/std_pipeline.sh ARCH}
EPOCHS=${EPOCHS:-30}
PRECISION=${PRECISION:-fp32}
suffix=_e$EPOCHS$([ "$PRECISION" = fp32 ] || echo "_$PRECISION")
run=results/train/zoo_std/${arch}_cifar10_sigma0$suffix
zoo=zoo/${arch}_cifar10_sigma0.safetensors
if [ ! -f "${zoo%.safetensors}.json" ]; then
  echo "== 1/4 training $run"
  SUFFIX=$suffix EPOCHS=$EPOCHS PRECISION=$PRECISION THREADS=${THREADS:-2} \
    scripts/train_zoo_std.sh "$arch"
  echo "== 2/4 publishing $zoo"
  python scripts/publish_zoo.py "$run" "$zoo" --command "SUFFIX=$suffix EPOCHS=$EPOCHS \
PRECISION=$PRECISION scripts/train_zoo_std.sh $arch  (= robustq train --data \
../shared/data/cifar10-jpeg.zip --arch $arch --epochs $EPOCHS --batch-size 128 --lr 0.1 \
--schedule onecycle --sigma 0 --seed 1 --precision $PRECISION --out $run)"
fi
echo "== 3/4 deploy-recipe QAT of the 12 grid models"
SHARD=0/2 scripts/qat_std.sh "$arch" & first=$!
SHARD=1/2 scripts/qat_std.sh "$arch" & second=$!
wait "$first"; wait "$second"
echo "== 4/4 the grid"
WORKERS=2 THREADS=1 scripts/bench_std.sh "$arch"
