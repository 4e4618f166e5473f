#!/usr/bin/env bash
# The bundled INT8 package, models/default-int8: models/default with both graphs in INT8 with
# 8-bit weights (kito quantize --weight-bits 8: a CPU with VNNI makes it, checks it and serves
# it; the service picks it by default on such a CPU), then its own anomaly banks and fused rule
# (scripts/fit_default_anomaly.sh) and design references (scripts/fit_default_identity.sh),
# since both hold the INT8 graphs' features. Re-run it after models/default changes.
#
#   bash scripts/quantize_default.sh               # renders what is missing under $DATA
#
# Settings (environment): PY (python), DATA (default data), OUT (default models/default-int8),
# WORKERS (renders, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data}
OUT=${OUT:-models/default-int8}
WORKERS=${WORKERS:-2}
kito() { "$PY" -m kito "$@"; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

CALIB="$DATA/quant-s3-2k"
if [ ! -f "$CALIB/manifest.jsonl" ]; then
  stamp "renders: 240 photos, 2048 px, seed 3 -> $CALIB (ranges from its train photos)"
  kito data synth --out "$CALIB" --count 240 --size 2048 --seed 3 --defect-rate 0.5 \
    --workers "$WORKERS"
fi
if [ -e "$OUT" ]; then
  stamp "$OUT exists: remove it to make it again"
  exit 1
fi
stamp "INT8, 8-bit weights: models/default -> $OUT"
kito quantize --package models/default --calibration-manifest "$CALIB" --out "$OUT" \
  --weight-bits 8
PKG="$OUT" DATA="$DATA" WORKERS="$WORKERS" PY="$PY" bash scripts/fit_default_anomaly.sh
PKG="$OUT" DATA="$DATA" WORKERS="$WORKERS" PY="$PY" bash scripts/fit_default_identity.sh
stamp "done: $OUT"
