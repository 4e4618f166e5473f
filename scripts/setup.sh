#!/usr/bin/env bash
# Create .venv and install Kito QC with everything it needs (serving, training, development).
# Idempotent: re-running reuses .venv, skips PyTorch when the pinned version is there and only
# installs what changed. Every step prints a line first, so a long step is never a silent one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
START=$SECONDS
STEP=0
TOTAL=5

step() {
  STEP=$((STEP + 1))
  echo "==> [$STEP/$TOTAL] $*  (at ${SECONDS}s)"
}

step "creating .venv with $("$PY" --version 2>&1)"
if [ -x .venv/bin/python ]; then
  echo "    .venv exists: reusing it"
else
  "$PY" -m venv .venv
fi

step "upgrading pip (a newer pip shows a progress bar while it installs)"
.venv/bin/python -m pip install --quiet --upgrade pip

# The torch / torchvision pins live in pyproject's train extra (one place); read them from there.
mapfile -t TORCH_PINS < <(.venv/bin/python - <<'EOF'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    train = tomllib.load(f)["project"]["optional-dependencies"]["train"]
for req in train:
    if re.match(r"(torch|torchvision)==", req):
        print(req)
EOF
)
if .venv/bin/python - "${TORCH_PINS[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version

sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
EOF
then
  step "PyTorch already installed (${TORCH_PINS[*]}): skipping"
else
  # pip takes these wheels from this machine's disk; they and the CUDA libraries they bring
  # take about 5 GB in .venv. On a fresh 2-core VM (2026-12-07) this step took 133 s and the
  # next 144 s.
  step "installing PyTorch (${TORCH_PINS[*]}: about 5 GB with its CUDA libraries, about 2 minutes; pip shows progress)"
  .venv/bin/python -m pip install --progress-bar on "${TORCH_PINS[@]}"
fi

if [ -x .venv/bin/kito ]; then
  # Installed before: pip only adds what changed, and its 150 "already satisfied" lines say nothing.
  step "updating Kito QC and its serve, train and dev extras (editable; only what changed)"
  .venv/bin/python -m pip install --quiet -e ".[serve,train,dev]"
else
  step "installing Kito QC and its serve, train and dev extras (editable; about 2 minutes)"
  .venv/bin/python -m pip install --progress-bar on -e ".[serve,train,dev]"
fi

step "checking the install: kito --help, import torch, onnxruntime, fastapi"
.venv/bin/kito --help >/dev/null
VERSIONS=$(.venv/bin/python -c "
import fastapi, onnxruntime, torch
print(f'torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, fastapi {fastapi.__version__}')
")

echo
echo "setup done in $((SECONDS - START))s: kito CLI ready in .venv ($VERSIONS)"
echo "next: .venv/bin/kito demo     (the service with a seeded order; see README.md)"
echo "      bash scripts/test.sh    (the default test suite)"
