"""`build_tiny_package` from tests/serving/model_package.py, for the training tests.

tests/serving is not on sys.path when only tests/training runs, so the module is loaded from
its file, once, under a name of its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_NAME = "kito_tests_model_package"


def _module() -> Any:
    if _NAME not in sys.modules:
        path = Path(__file__).parents[1] / "serving" / "model_package.py"
        spec = importlib.util.spec_from_file_location(_NAME, path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = mod
        spec.loader.exec_module(mod)
    return sys.modules[_NAME]


def build_tiny_package(out: Path, *args: Any, **kwargs: Any) -> Path:
    """A small real package (see tests/serving/model_package.py for its arguments)."""
    return Path(_module().build_tiny_package(out, *args, **kwargs))


def mat_photo(*args: Any, **kwargs: Any) -> Any:
    """A synthetic photo of a piece on the mat (tests/serving/model_package.py)."""
    return _module().mat_photo(*args, **kwargs)


def tiny_classes() -> list[str]:
    """The classes a tiny package scores."""
    return list(_module().CLASSES)
