#!/usr/bin/env bash
# An anomaly model for the bundled package (docs/ANOMALY.md), added to models/default in place
# (not shipped by default: on the judged renders it held more good pieces for no recall):
# good renders of every design (seed 27, used by no other fit) fill the banks; the review level
# is the 2 % false-hold quantile of each design's held-out good photos (docs/ANOMALY.md says why
# not a level chosen for a recall). Re-run it after models/default's networks change: the
# files it adds do not depend on them, but package.json and model.onnx's copy name them.
#
#   bash scripts/fit_default_anomaly.sh            # renders what is missing under $DATA, then fits
#
# Settings (environment): PY (python), DATA (default data), PKG (default models/default),
# WORKERS (renders, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data}
PKG=${PKG:-models/default}
WORKERS=${WORKERS:-2}
kito() { "$PY" -m kito "$@"; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

GOOD="$DATA/anomaly-good-s27-2k"
if [ ! -f "$GOOD/manifest.jsonl" ]; then
  stamp "good renders: 960 photos, 60 of each design, 2048 px (seed 27)"
  kito data synth --out "$GOOD" --count 960 --size 2048 --defect-rate 0 --seed 27 --workers "$WORKERS"
fi

stamp "fit: banks of the good photos the gate passes (train + test splits), calibration on val"
kito anomaly fit --manifest "$GOOD" --package "$PKG" --out "$PKG" --bank-splits train,test \
  --judged-only --max-side 192 --bank-size 1024 --proj-dim 64
stamp "done: $PKG"
