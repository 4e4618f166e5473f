#!/usr/bin/env bash
# ruff (lint + format check) and mypy on the typed packages; one script, as CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
