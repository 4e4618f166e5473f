"""A package's operating point with photos decoded as `kito eval --package` decodes them (the
whole file) and as the service decodes them (serving.inspection.intake: a large JPEG reduced in the
DCT domain to the decode target of the design and the package).

    python -m research.decode_check models/default data/test-s2-2k [--all-photos] [--workers 2]

Prints macro-F1, any-defect recall and false-hold for both, on the photos the gate passes
(default) or on all, and how far the two decodes move each probability.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.decode import SERVICE_DECODE_LONG_SIDE, DecodeLimits, decode_photo
from qc_model.gate import decode_long_side
from qc_model.inference import Inferencer, read_image
from qc_model.manifest import Manifest
from training.judged import gate_passed
from training.metrics import any_defect, macro_f1


def compare(package: Path, data: Path, *, judged_only: bool, workers: int) -> dict[str, Any]:
    manifest = data / "manifest.jsonl" if data.is_dir() else data
    root = manifest.parent
    records = Manifest.read(manifest).records
    if judged_only:
        keep = gate_passed(records, root, workers, "photo gate")
        records = [r for r, ok in zip(records, keep, strict=True) if ok]
    inf = Inferencer(package, threads=2)
    classes, catalog = inf.classes, load_catalog(default_catalog_dir())
    whole, served = [], []
    for r in tqdm(records, desc="photos", unit="photo"):
        data_bytes = (root / r.image).read_bytes()
        # serving.inspection.submission.decode_plan_for, at KITO_DECODE_LONG_SIDE's default
        design = catalog.get(r.design_id or "")
        side = decode_long_side(
            design, floor=SERVICE_DECODE_LONG_SIDE, model_px_per_mm=inf.min_px_per_mm
        )
        limits = DecodeLimits(target_long_side=side)
        for out, image in (
            (whole, read_image(data_bytes)),
            (served, decode_photo(data_bytes, limits=limits).image),
        ):
            out.append([inf.predict(image)[0].probs[c] for c in classes])
    y = np.array([[c in r.labels for c in classes] for r in records])
    t = [inf.thresholds[c].threshold for c in classes]
    res: dict[str, Any] = {"photos": len(records)}
    for name, p in (("whole file", np.array(whole)), ("service decode", np.array(served))):
        a = any_defect(p, y, t, classes)
        res[name] = {
            "macro_f1": round(macro_f1(p, y, t), 4),
            "recall": round(a.recall, 4),
            "false_hold": round(a.false_hold_rate, 4),
        }
    diff = np.abs(np.array(whole) - np.array(served))
    res["abs_diff_probs"] = {
        "max": round(float(diff.max()), 4),
        "mean": round(float(diff.mean()), 4),
    }
    return res


def main(argv: list[str] | None = None) -> None:
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package", type=Path)
    p.add_argument("data", type=Path, help="data set folder or manifest")
    p.add_argument("--all-photos", action="store_true", help="not only the photos the gate passes")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    res = compare(args.package, args.data, judged_only=not args.all_photos, workers=args.workers)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
