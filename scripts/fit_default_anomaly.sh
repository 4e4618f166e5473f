#!/usr/bin/env bash
# The bundled package's anomaly model (docs/ANOMALY.md), fitted into models/default in place:
# banks of the surface branch's cells from good renders of every design (seed 27, used by no
# other fit), then the fused review rule of classifier and anomaly model chosen on labelled
# renders of seeds 28 and 29 for the classifier's own target recall (0.97), with a level guard
# for defects no class knows that holds at most 2 % more of those good photos. Re-run it after
# models/default's surface branch changes: the banks hold that branch's features, and a package
# whose branch differs from the one they were filled from does not load.
#
#   bash scripts/fit_default_anomaly.sh            # renders what is missing under $DATA, then fits
#
# Settings (environment): PY (python), DATA (default data), PKG (default models/default),
# WORKERS (renders, default 2), SAMPLING (bank rows, default coreset).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data}
PKG=${PKG:-models/default}
WORKERS=${WORKERS:-2}
SAMPLING=${SAMPLING:-coreset}
kito() { "$PY" -m kito "$@"; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
render() {  # folder count seed [extra synth options]
  if [ ! -f "$1/manifest.jsonl" ]; then
    stamp "renders: $2 photos, 2048 px, seed $3 -> $1"
    kito data synth --out "$1" --count "$2" --size 2048 --seed "$3" --workers "$WORKERS" "${@:4}"
  fi
}

GOOD="$DATA/anomaly-good-s27-2k"
render "$GOOD" 960 27 --defect-rate 0
render "$DATA/val-s28-400" 400 28
render "$DATA/val-s29-1200" 1200 29
VAL="$DATA/anomaly-val-s28-s29.jsonl"
kito data merge "$DATA/val-s28-400:*=val" "$DATA/val-s29-1200:*=val" --out "$VAL"

stamp "fit: banks of the branch's cells of the good photos the gate passes (train + test splits)"
kito anomaly fit --manifest "$GOOD" --package "$PKG" --out "$PKG" --source branch \
  --bank-splits train,test --judged-only --bank-size 1024 --sampling "$SAMPLING" --top-k 1
stamp "fused rule and level guard: chosen on the judged seed-28 and seed-29 renders for recall 0.97"
kito anomaly thresholds --fused --package "$PKG" --manifest "$VAL" --out "$PKG" \
  --split val --target-recall 0.97 --guard-budget 0.02 --workers "$WORKERS"
stamp "done: $PKG"
