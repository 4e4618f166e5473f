"""The notebooks run on tiny data in this venv's kernel, and are committed stripped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from traitlets import default

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
STRIP = ROOT / "scripts" / "strip_notebooks.py"
CELL_TIMEOUT_S = 240  # per cell; a hang (e.g. a forked worker deadlocking) fails, never blocks

TOUR_PARAMS = """
COUNT = 12
SIZE = 640
SEED = 0
WORKERS = 1
WORK = {work!r}
"""
MODEL_PARAMS = """
COUNT = 24
SIZE = 256
DEFECT_RATE = 0.8
INPUT_SIZE = 64
EPOCHS = 1
WEIGHTS = "none"
SEED = 0
THREADS = 1
PACKAGE = None
WORK = {work!r}
"""


class NativeKernelManager(AsyncKernelManager):
    """Searches no kernel folders, so "python3" is ipykernel's native spec for this interpreter:
    [sys.executable, -m, ipykernel_launcher, ...]."""

    @default("kernel_spec_manager")
    def _native_only(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[])


def parameter_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return cells[0]


def execute(name: str, params: str, tmp_path: Path) -> nbformat.NotebookNode:
    """Run notebooks/<name> with its parameter cell replaced, in a temporary working folder.

    The kernel is "python3" as ipykernel itself defines it for the running interpreter (no
    `ipykernel install` step, and a user's own "python3" kernelspec cannot take its place).
    A first cell proves that it is this venv.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    parameter_cell(nb).source = params
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    client = NotebookClient(
        nb,
        kernel_manager_class=NativeKernelManager,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert nb.cells[0].outputs[0]["text"].strip() == sys.prefix, "the kernel is not this venv's"
    return nb


def outputs(nb: nbformat.NotebookNode, kind: str) -> list[str]:
    return [
        o["data"][kind]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if kind in o.get("data", {})
    ]


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(
        o["text"] for c in nb.cells if c.cell_type == "code" for o in c.outputs if "text" in o
    )


def test_dataset_tour_runs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    nb = execute("dataset_tour.ipynb", TOUR_PARAMS.format(work=str(work)), tmp_path)
    assert len(outputs(nb, "image/png")) >= 8  # goldens, mat, labels, sheet, masks, ...
    assert (work / "synth" / "manifest.jsonl").is_file()
    assert (work / "contact_sheet.png").is_file()
    text = stdout(nb)
    assert "12 photos" in text and "each in exactly one split" in text
    assert "measurements on" in text  # the size study measured something


@pytest.fixture(scope="module")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[nbformat.NotebookNode, Path]:
    """The model notebook's default path (train, evaluate, export) on tiny data, run once."""
    tmp = tmp_path_factory.mktemp("model")
    work = tmp / "work"
    return execute("model_evaluation.ipynb", MODEL_PARAMS.format(work=str(work)), tmp), work


def test_model_evaluation_trains_evaluates_exports(
    model_run: tuple[nbformat.NotebookNode, Path],
) -> None:
    nb, work = model_run
    assert (work / "run" / "checkpoint.pt").is_file()
    for name in ("metrics.json", "index.html", "reliability.png", "pr_curves.png"):
        assert (work / "eval" / name).is_file(), name
    assert {"model.onnx", "package.json"} <= {p.name for p in (work / "package").iterdir()}
    assert len(outputs(nb, "image/png")) >= 4  # loss, thresholds, reliability, PR, heatmaps
    assert "parity on" in stdout(nb)


@pytest.mark.slow  # ~20 s more: a second kernel with torch, a second data set
def test_model_evaluation_of_a_ready_package(
    model_run: tuple[nbformat.NotebookNode, Path], tmp_path: Path
) -> None:
    """PACKAGE set (as for models/default): no training, the package's ORT scores evaluated."""
    _, trained = model_run
    params = MODEL_PARAMS.replace("COUNT = 24", "COUNT = 16").replace(
        "PACKAGE = None", f"PACKAGE = {str(trained / 'package')!r}"
    )
    work = tmp_path / "work"
    nb = execute("model_evaluation.ipynb", params.format(work=str(work)), tmp_path)
    assert not (work / "run").exists() and not (work / "package").exists()
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    assert metrics["package"] == str(trained / "package") and metrics["scores"]["photos"] > 0
    assert "no training" in stdout(nb)


@pytest.mark.slow  # the committed defaults: ~30 s for the tour, minutes for the model
@pytest.mark.parametrize("name", ["dataset_tour.ipynb", "model_evaluation.ipynb"])
def test_notebook_runs_with_its_own_parameters(name: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    lines = parameter_cell(nb).source.splitlines()
    assert sum(line.startswith("WORK = ") for line in lines) == 1
    work = tmp_path / "work"
    params = "\n".join(f"WORK = {str(work)!r}" if x.startswith("WORK = ") else x for x in lines)
    execute(name, params, tmp_path)
    assert (work / "synth" / "manifest.jsonl").is_file()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebook_is_stripped(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    parameter_cell(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: run scripts/strip_notebooks.py"
            assert cell.execution_count is None, f"cell {i} has an execution count"
        assert "execution" not in cell.metadata, f"cell {i} keeps run metadata"


def test_both_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} >= {
        "dataset_tour.ipynb",
        "model_evaluation.ipynb",
    }


def test_strip_script(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(STRIP), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    check = run("--check", str(path))
    assert check.returncode == 1 and "not stripped" in check.stdout
    assert nbformat.read(path, as_version=4).cells[1].outputs  # --check changed nothing
    assert run(str(path)).returncode == 0
    back = nbformat.read(path, as_version=4).cells[1]
    assert back.outputs == [] and back.execution_count is None
    assert back.metadata == {"tags": ["parameters"]}  # run metadata gone, tags kept
    assert run("--check", str(path)).returncode == 0
    missing = run(str(tmp_path / "nope.ipynb"))
    assert missing.returncode == 2 and "no such notebook" in missing.stderr
