"""The mixed data set the judged-photo tests share (tests/training and research/tests): 8 clean
1024 px photos and 4 defocused ones of one design, every piece's photos in val or in test."""

from __future__ import annotations

from pathlib import Path

from qc_model.catalog import default_catalog_dir
from qc_model.manifest import Header, Manifest
from training.synth.generate import SynthOptions, generate_dataset


def write_mixed(root: Path) -> Path:
    records = []
    for name, force, count in (("clean", (), 8), ("blurred", ("defocus_blur",), 4)):
        opts = SynthOptions(
            count=count, size=1024, defect_rate=0.5, difficulty=0.0, seed=5,
            designs=("KQ-CUFF-BR-65",), force_capture=force,
        )  # fmt: skip
        m = generate_dataset(default_catalog_dir(), root / name, opts, workers=1)
        # Half of each group's pieces in val, half in test (two photos per piece).
        for i, r in enumerate(m.records):
            split = "val" if i < count // 2 else "test"
            new = {"id": f"{name}-{r.id}", "image": f"{name}/{r.image}", "split": split}
            records.append(r.model_copy(update=new))
    Manifest(header=Header(name="mixed", classes=m.header.classes), records=records).write(
        root / "manifest.jsonl"
    )
    return root
