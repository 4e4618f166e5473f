"""Tests of the `kito` dispatcher: help works, and answering it never imports torch."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from kito.cli import app

_PROBE = """
import sys
from typer.testing import CliRunner
from kito.cli import app
runner = CliRunner()
for args in (["--help"], ["data", "--help"], ["data", "import", "--help"],
             ["data", "preview", "--help"], ["data", "stats", "--help"], ["catalog", "--help"],
             ["models", "--help"], ["models", "promote", "--help"], ["retrain", "--help"]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
heavy = sorted(m for m in ("torch", "timm", "albumentations", "training") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def test_kito_help_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kito", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "data" in proc.stdout and "catalog" in proc.stdout


def test_help_does_not_import_torch() -> None:
    # A fresh interpreter: this test process may already hold torch from other tests.
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_user_error_is_one_line_and_exit_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["catalog", "check", "--catalog", str(tmp_path / "none")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "catalog folder not found" in lines[0]
    )


_BLAS_PROBE = """
import os, sys
os.environ.pop("OPENBLAS_NUM_THREADS", None)
from kito.cli import service
from kito.cli.common import one_blas_thread
assert "numpy" not in sys.modules, "numpy loaded before kito serve could set its threads"
one_blas_thread()
print("THREADS=" + os.environ["OPENBLAS_NUM_THREADS"])
os.environ["OPENBLAS_NUM_THREADS"] = "3"
one_blas_thread()
print("KEPT=" + os.environ["OPENBLAS_NUM_THREADS"])
"""


def test_kito_serve_can_still_put_numpy_blas_on_one_thread() -> None:
    # OpenBLAS reads its thread count when numpy loads: kito serve sets it before any import
    # loads numpy, and a value the operator set is kept.
    proc = subprocess.run(
        [sys.executable, "-c", _BLAS_PROBE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "THREADS=1\n" in proc.stdout and "KEPT=3\n" in proc.stdout, proc.stdout
