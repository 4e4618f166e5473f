"""Fixtures shared by the export tests (test_export*.py): a 12-photo data set and a tiny
package built from it, once per module that asks for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_data import build_tiny, write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 photos on a mat-coloured card, 6 train / 6 val, random labels, with a manifest."""
    return write_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def package(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "tiny"
    build_tiny(out, dataset)
    return out
