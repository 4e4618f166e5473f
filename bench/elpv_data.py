"""The public ELPV cells for the real-photo benchmarks (bench_real.py, bench_anomaly_real.py):
the cells, one stratified split both use, and a kito runner. Licence CC BY-NC-SA 4.0: benchmarks
only, never inside a bundled model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def elpv_cells() -> tuple[Path, list[tuple[str, float, str]]]:
    """(data folder, [(image path relative to it, defect probability, cell type)])."""
    try:
        import elpv_dataset
    except ImportError:
        sys.exit("error: ELPV is not installed: .venv/bin/pip install -e '.[bench]'")
    data = Path(elpv_dataset.__file__).parent / "data"
    rows = []
    for line in (data / "labels.csv").read_text().splitlines():
        path, prob, kind = line.split()
        rows.append((path, float(prob), kind))
    return data, rows


def stratified_split(
    rows: list[tuple[str, float, str]], seed: int, good: str, test_share: float = 0.25
) -> dict[str, list[tuple[str, str, str]]]:
    """{"train", "test"} -> [(path, label, cell type)], stratified by (label, cell type); a
    probability >= 0.5 is "defective", the rest `good`. The same seed gives the same split
    whatever `good` is called (the strata sort the same way)."""
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, str], list[str]] = {}
    for path, prob, kind in rows:
        strata.setdefault(("defective" if prob >= 0.5 else good, kind), []).append(path)
    out: dict[str, list[tuple[str, str, str]]] = {"train": [], "test": []}
    for (label, kind), paths in sorted(strata.items()):
        order = rng.permutation(len(paths))
        n_test = round(len(paths) * test_share)
        for rank, i in enumerate(order):
            out["test" if rank < n_test else "train"].append((paths[i], label, kind))
    return out


def kito(*args: str) -> float:
    """Run one kito command with this checkout's code; its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kito", *args], check=True, env=env)
    return time.perf_counter() - t0


def errors_by_agreement(
    data: Path, rows: list[tuple[str, float, str]], checkpoint: Path, manifest: Path
) -> list[str]:
    """One line per expert defect probability (0, 1/3, 2/3, 1): how many of the test cells at
    it the checkpoint gets wrong at the argmax. Cells are matched to ELPV by their bytes."""
    import hashlib

    sys.path.insert(0, str(REPO))
    from training.predict import predict_manifest

    prob = {hashlib.sha256((data / p).read_bytes()).hexdigest(): pr for p, pr, _ in rows}
    probs, targets, records = predict_manifest(checkpoint, manifest, "test")
    wrong: dict[float, list[int]] = {}
    for r, p, t in zip(records, probs.argmax(1), targets, strict=True):
        if r.sha256 in prob:
            wrong.setdefault(prob[r.sha256], []).append(int(p != t))
    return [
        f"experts' defect probability {k:.2f}: {sum(v)} wrong of {len(v)}"
        for k, v in sorted(wrong.items())
    ]
