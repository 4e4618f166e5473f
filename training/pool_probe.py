"""Whether a class's branch logit should average its few highest cells instead of the highest.

    python -m training.pool_probe models/default --val data/val-s3-2k-val.jsonl:val \\
        --test data/test-s2-2k --workers 2

A photo's branch logit for a class is its highest cell near the piece
(qc_model.surface.branch_scores). A scratch crosses several cells; a link crossing that reads
as a scratch may light one. If so, the mean of a class's n highest cells would rank photos
better than the highest alone. This probe scores the judged val and test photos with the
package's network alone and with its branch's cells, and for each n in `SIZES`:
- per class: the branch's AP alone and, fused with the network as `kito surface attach`
  fuses it (fitted on val), on val and test;
- the any-defect operating point with every fused class pooled over n cells, thresholds
  chosen on val as `kito surface attach` chooses them, scored on test; and the same with each
  class's n chosen by its fused val AP.
It prints the result as JSON. `--all-photos` scores every photo, not only the judged ones.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import Record
from qc_model.package import SURFACE_FILE, open_session, read_meta, surface_runner
from qc_model.surface import counted_cells, pool_top, top_cells
from training.metrics import any_defect, average_precision, macro_f1

SIZES = (1, 2, 3, 4, 6, 8, 16)

Scored = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]  # p, top, y


def score(
    package: Path, plain: Path, records: list[Record], root: Path, workers: int, name: str
) -> Scored:
    """The network's probabilities (N, K), each branch class's highest cells (N, Ks, n) and
    the labels (N, K) of `records`."""
    from training.evaluate import package_probs
    from training.surface import prepare

    meta = read_meta(package)
    assert meta.surface is not None
    classes, sm = list(meta.classes), meta.surface
    p = package_probs(plain, records, root, classes, f"network ({name})")
    run = surface_runner(open_session(package / SURFACE_FILE, threads=2))
    with tempfile.TemporaryDirectory() as tmp:
        crops = f"crops ({name})"
        samples = prepare(records, root, sm.classes, sm.config, Path(tmp), workers, crops)
        top = np.stack([
            top_cells(*counted_cells(run, s.image, s.piece, sm.config), max(SIZES))
            for s in tqdm(samples, desc=f"branch ({name})")
        ])  # fmt: skip
    y = np.array([[c in r.labels for c in classes] for r in records], dtype=bool)
    return p, top, y


def compare(package: Path, val: Scored, test: Scored, target_recall: float) -> dict[str, Any]:
    """Per class and per pool size: APs alone and fused; operating points (module doc)."""
    from training.calibrate import choose_thresholds
    from training.surface import apply_fusion, fit_fusion

    meta = read_meta(package)
    assert meta.surface is not None
    classes, sm = list(meta.classes), meta.surface
    (pv, tv, yv), (pt, tt, yt) = val, test
    fits: dict[tuple[str, int], tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    per_class: dict[str, dict[str, Any]] = {}
    for j, c in enumerate(sm.classes):
        k = classes.index(c) if c in classes else -1
        if k < 0 or not yv[:, k].any() or yv[:, k].all():
            continue
        row: dict[str, Any] = {"fused_in_package": c in sm.fusion}
        for n in SIZES:
            zv, zt = pool_top(tv[:, j], n), pool_top(tt[:, j], n)
            f = fit_fusion(pv[:, k], zv, yv[:, k])
            fv, ft = apply_fusion(pv[:, k], zv, f), apply_fusion(pt[:, k], zt, f)
            fits[c, n] = fv, ft
            row[str(n)] = {
                "branch_ap": [average_precision(zv, yv[:, k]), average_precision(zt, yt[:, k])],
                "fused_ap": [average_precision(fv, yv[:, k]), average_precision(ft, yt[:, k])],
            }
        per_class[c] = row

    def operate(sizes: dict[str, int]) -> dict[str, float]:
        qv, qt = pv.copy(), pt.copy()
        for c, n in sizes.items():
            k = classes.index(c)
            qv[:, k], qt[:, k] = fits[c, n]
        choice = choose_thresholds(qv, yv, classes, target_recall=target_recall)
        t = [choice.thresholds[c].threshold for c in classes]
        ad = any_defect(qt, yt, t, classes)
        return {"test_macro_f1": macro_f1(qt, yt, t), "test_recall": ad.recall,
                "test_false_hold": ad.false_hold_rate}  # fmt: skip

    fused = [c for c in sm.fusion if c in per_class]
    best = {c: max(SIZES, key=lambda n: (per_class[c][str(n)]["fused_ap"][0], -n)) for c in fused}
    return {
        "photos": {"val": len(yv), "test": len(yt)},
        "per_class": per_class,
        "operating": {
            **{f"{n} cells": operate(dict.fromkeys(fused, n)) for n in SIZES},
            "per class, by val AP": {**operate(best), "cells": best},
        },
    }


def main(argv: list[str] | None = None) -> None:
    """python -m training.pool_probe PACKAGE --val DATA[:SPLIT] --test DATA[:SPLIT]"""
    from training.export import network_alone
    from training.judged import gate_passed
    from training.score_packages import records_at

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package", type=Path, help="a package with a surface branch")
    p.add_argument("--val", required=True, help="PATH[:SPLIT] the fusion is fitted on")
    p.add_argument("--test", required=True, help="PATH[:SPLIT] scored")
    p.add_argument("--all-photos", action="store_true", help="not only the judged photos")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    try:
        meta = read_meta(args.package)
        if meta.surface is None:
            raise DataError(f"{args.package}: has no surface branch to probe")
        sets = {"val": records_at(args.val), "test": records_at(args.test)}
        scored: dict[str, Scored] = {}
        with tempfile.TemporaryDirectory() as tmp:
            network_alone(args.package, Path(tmp))
            plain = Path(tmp)
            for name, (records, root) in sets.items():
                if not args.all_photos:
                    keep = gate_passed(records, root, args.workers, f"photo gate ({name})")
                    records = [r for r, ok in zip(records, keep, strict=True) if ok]
                if not records:
                    raise DataError(f"the photo gate passes none of the {name} photos")
                scored[name] = score(args.package, plain, records, root, args.workers, name)
        target = float(meta.metrics.get("target_recall") or 0.97)
        res = compare(args.package, scored["val"], scored["test"], target)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
