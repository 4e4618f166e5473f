"""The anomaly tests' data: the tiny 8 x 8 average-pool extractor (tests/shared/tiny_anomaly.py),
records and grey photos with a bright blotch as the defect, and a model fitted on them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tiny_anomaly as tiny

from qc_model.anomaly import ANOMALY_ONNX
from qc_model.manifest import Header, Manifest, Record
from training.anomaly.fit import Extractor, FitOptions, fit_banks
from training.anomaly.package import staged, write_anomaly


def record(i: int, design: str | None, split: str, labels: list[str] | None = None) -> Record:
    return Record(
        id=f"p{i}",
        image=f"images/p{i}.png",
        sha256="0" * 64,
        width=64,
        height=64,
        design_id=design,
        piece_id=f"piece{i}",
        labels=labels or [],
        split=split,  # type: ignore[arg-type]
        source="imported",
    )


def write_photos(root: Path, records: list[Record], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for r in records:
        grey = 120 if r.design_id != "B" else 60
        img = np.clip(grey + rng.normal(0, 4, (64, 64, 3)), 0, 255).astype(np.uint8)
        if r.labels:
            img[24:40, 24:40] = 250  # a bright blotch: the defect
        cv2.imwrite(str(root / r.image), img)


def fitted_model(tmp_path: Path, proj_dim: int | None = None) -> tuple[Path, Path, list[Record]]:
    """A model fitted on 14 good photos of design A (4 held out), and 10 test photos, half with
    the blotch; `proj_dim`: its bank stored in that many principal directions."""
    data = tmp_path / "data"
    records = [record(i, "A", "train" if i < 14 else "val") for i in range(18)]
    records += [record(50 + i, "A", "test", ["scratch"] if i % 2 else []) for i in range(10)]
    write_photos(data, records)
    Manifest(header=Header(name="t"), records=records).write(data / "manifest.jsonl")
    out = tmp_path / "model"
    opts = FitOptions(
        bank_size=32, pool_size=400, min_photos=10, min_calibration=3, proj_dim=proj_dim
    )
    with staged(out, None) as tmp:
        tiny.write_pool_extractor(tmp / ANOMALY_ONNX)
        ex = Extractor(tmp / ANOMALY_ONNX, data, opts.config)
        designs, fams, family_of = fit_banks(ex, records, opts)
        write_anomaly(tmp, designs, fams, family_of, opts, {}, 3, {})
    return out, data, records
