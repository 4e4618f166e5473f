"""Every test under research/tests is marked `research`: the default suite (`-m "not slow and
not research"`, testpaths = tests) leaves them out; run them with
`pytest research/tests -m research`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# `research` itself, and the tiny model package the training tests build (tests/training).
for path in (ROOT, ROOT / "tests" / "training"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.research)
