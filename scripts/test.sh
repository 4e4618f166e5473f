#!/usr/bin/env bash
# The default test suite: everything but the tests marked slow and the studies' tests
# (research/tests: `.venv/bin/python -m pytest research/tests -m research`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -m "not slow and not research" "$@"
