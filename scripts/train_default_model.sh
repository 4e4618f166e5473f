#!/usr/bin/env bash
# How the bundled model (models/default) is made, start to finish: synthetic training data
# (seed 1) and a held-out test set (seed 2, never used for training or choices), training,
# test-set evaluation, and the calibrated, parity-checked ONNX package. (The pooling and
# per-cell-loss variants it once chose between left with their options: research/README.md.)
#
#   bash scripts/train_default_model.sh                    # on a GPU host (minutes)
#   N=60 NTEST=30 EPOCHS=1 CONFIG=configs/train_default.yaml bash scripts/train_default_model.sh
#                                                         # a smoke run on a CPU
# Settings (environment): PY (python), DATA, RUNS, OUT (package folder), N, NTEST, EPOCHS,
# WORKERS (default: all cores), CONFIG (default configs/train_gpu.yaml),
# SIZE (photo long side in px, default 1024), INPUT (network input px; default: CONFIG's).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data}
RUNS=${RUNS:-runs}
OUT=${OUT:-$RUNS/pkg/default}
N=${N:-10000}
NTEST=${NTEST:-2000}
WORKERS=${WORKERS:-$(nproc)}
CONFIG=${CONFIG:-configs/train_gpu.yaml}
EPOCHS=${EPOCHS:-}
SIZE=${SIZE:-1024}
INPUT=${INPUT:-}
kito() { "$PY" -m kito "$@"; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
if [ -n "$INPUT" ]; then  # one config for crops, training and export alike
  mkdir -p "$RUNS"
  "$PY" -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); c['preprocess']['input_size'] = int(sys.argv[2]); yaml.safe_dump(c, open(sys.argv[3], 'w'), sort_keys=False)" \
    "$CONFIG" "$INPUT" "$RUNS/config-$INPUT.yaml"
  CONFIG="$RUNS/config-$INPUT.yaml"
fi

stamp "synthetic data: $N training photos (seed 1), $NTEST test photos (seed 2)"
kito data synth --out "$DATA/train-s1" --count "$N" --size "$SIZE" --seed 1 --defect-rate 0.5 \
  --workers "$WORKERS"
kito data synth --out "$DATA/test-s2" --count "$NTEST" --size "$SIZE" --seed 2 --workers "$WORKERS"
# Training uses seed 1's train (+ its generator test split) and val; evaluation scores seed 2.
kito data merge --out "$DATA/trainval-s1.jsonl" "$DATA/train-s1:test=train"
kito data merge --out "$DATA/eval-s1s2.jsonl" "$DATA/train-s1:train=-,test=-" "$DATA/test-s2:*=test"

stamp "locate + crop every photo once (cached for all runs)"
kito data crops "$DATA/trainval-s1.jsonl" "$DATA/eval-s1s2.jsonl" --config "$CONFIG" \
  --workers "$WORKERS"

stamp "train"
extra=()
[ -n "$EPOCHS" ] && extra+=(--set "epochs=$EPOCHS")
kito train --config "$CONFIG" --manifest "$DATA/trainval-s1.jsonl" --out "$RUNS/default" \
  --set "workers=$WORKERS" "${extra[@]}"
m=$("$PY" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print(r.get('val_map') or 0)" "$RUNS/default/metrics.jsonl")
stamp "final validation mAP $m"
kito eval --checkpoint "$RUNS/default/checkpoint.pt" --manifest "$DATA/eval-s1s2.jsonl" \
  --split test --out "$RUNS/eval-default-test" --workers "$WORKERS"
kito export --checkpoint "$RUNS/default/checkpoint.pt" \
  --calibration-manifest "$DATA/trainval-s1.jsonl" --out "$OUT" --workers "$WORKERS"
stamp "done: package $OUT, report $RUNS/eval-default-test/index.html"
