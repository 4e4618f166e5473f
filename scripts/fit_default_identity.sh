#!/usr/bin/env bash
# Design references for the bundled package (qc_model.identity, docs/CHECKS.md "Declared
# design"), added to models/default in place: 1,600 renders of every design (seed 29004, used
# by no other fit; its 783 photos the gate passes become the references), threshold at 1 %
# false flags. Re-run it after models/default's network changes: the references are its
# embeddings.
#
#   bash scripts/fit_default_identity.sh           # renders what is missing under $DATA, then fits
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

REFS="$DATA/design-29004"
if [ ! -f "$REFS/manifest.jsonl" ]; then
  stamp "renders: 1,600 photos of the 16 catalog designs, 1024 px (seed 29004)"
  kito data synth --out "$REFS" --count 1600 --size 1024 --photos-per-piece 2 --seed 29004 \
    --workers "$WORKERS"
fi

stamp "fit: the embedding output and each design's references, every split"
kito identity fit --package "$PKG" --manifest "$REFS" --out "$PKG" --splits train,val,test
stamp "done: $PKG"
