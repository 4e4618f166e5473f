#!/usr/bin/env bash
# Create .venv and install Kito QC with everything it needs (serving, training, development).
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject; pip takes them from this machine's disk.
.venv/bin/python -m pip install --quiet -e ".[serve,train,dev]"
echo "setup done: $(.venv/bin/kito --help >/dev/null && echo 'kito CLI ready')"
