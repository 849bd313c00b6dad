#!/usr/bin/env bash
# Issue 20: the quantized models of the RobustMQ grid on a standard-trained (sigma 0) zoo model,
# each a `robustq quantize` run of the deploy recipe (3 epochs over the full training split,
# distilled from the FP model on clean images) with the fused quantizer kernels, written where
# scripts/bench_std.sh (robustq bench --models-dir) reads them: <MODELS>/<method>_w<b>a<b>/.
# Resumable per epoch: rerun the same command after a kill; finished models are skipped.
# Usage: scripts/qat_std.sh [arch [quantize flags...]]   (default resnet20)
# ZOO (checkpoint suffix, e.g. _v2: zoo/<arch>_cifar10_sigma0_v2.safetensors), METHODS
# (lsq_mse,dorefa,pact), BITS (4,2,6,8), THREADS (1), PRECISION (fp32), MODELS (default
# results/models/std_<arch><ZOO>: tracked, so a finished model lands with a commit and a later
# session resumes from it; so is the per-epoch train_state.safetensors of a model in progress,
# since a larger architecture's QAT outlasts a session; a finished model's is removed), SHARD
# (i/n: only the models i, i+n, i+2n, ... of the 12, so that n processes share them).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-resnet20}; shift $(( $# < 1 ? $# : 1 ))
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
ZOO=${ZOO:-}
MODELS=${MODELS:-results/models/std_${arch}${ZOO}}
SHARD=${SHARD:-0/1}; shard=${SHARD%/*}; shards=${SHARD#*/}; i=-1
for method in $(echo "${METHODS:-lsq_mse,dorefa,pact}" | tr , ' '); do
  for b in $(echo "${BITS:-4,2,6,8}" | tr , ' '); do
    i=$((i + 1)); [ $((i % shards)) -eq "$shard" ] || continue
    out=$MODELS/${method}_w${b}a${b}
    [ -f "$out/model.safetensors" ] && { rm -f "$out/train_state.safetensors"; continue; }
    resume=""; [ -f "$out/train_state.safetensors" ] && resume="--resume"
    robustq quantize "zoo/${arch}_cifar10_sigma0${ZOO}.safetensors" --data "$DATA" --bits "$b/$b" \
      --method "$method" --recipe deploy --quant-kernels compiled --precision "${PRECISION:-fp32}" \
      --seed 0 --threads "${THREADS:-1}" --out "$out" $resume "$@"
  done
done
