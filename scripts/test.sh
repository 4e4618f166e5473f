#!/usr/bin/env bash
# The default test suite: everything but the tests marked slow.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -m "not slow" "$@"
