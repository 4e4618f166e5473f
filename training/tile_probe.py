"""What scoring a surface branch in tiles over the piece costs in ranking, against the whole crop.

    python -m training.tile_probe runs/SURFACE/surface.pt --val DATA.jsonl [--workers 2]

Scores the val split (by default the photos the photo gate passes, as the service judges them)
with the branch alone in onnxruntime, once in its tiles (SurfaceConfig.tile, or --tile) and
once over the whole crop, and prints each class's AP and the wall time of each pass as JSON.
`--all-photos` scores every val photo.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from qc_model.errors import DataError
from qc_model.manifest import Manifest
from qc_model.package import open_session
from training.judged import gate_passed
from training.metrics import average_precision
from training.predict import resolve_root
from training.surface import _ort_logits, export_surface_onnx, load_surface, prepare


def compare(
    surface: Path, manifest: Path, *, judged_only: bool, tile: int | None, workers: int
) -> dict[str, Any]:
    model, classes, cfg, _ = load_surface(surface)
    tiled = cfg.model_copy(update={"tile": tile or cfg.tile or 96})
    val = Manifest.read(manifest).split("val")
    if not val:
        raise DataError(f"{manifest}: no photos in split 'val'")
    root = resolve_root(manifest, None)
    if judged_only:
        keep = gate_passed(val, root, workers, "photo gate (val)")
        val = [r for r, ok in zip(val, keep, strict=True) if ok]
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "surface.onnx"
        export_surface_onnx(model, onnx)
        session = open_session(onnx, threads=2)
        samples = prepare(val, root, classes, tiled, Path(tmp) / "crops", workers, "crops")
        y = np.stack([s.labels for s in samples])
        out: dict[str, Any] = {"photos": len(samples), "tile": tiled.tile}
        for name, c in (("tiles", tiled), ("whole", tiled.model_copy(update={"tile": None}))):
            t0 = time.perf_counter()
            z = _ort_logits(session, samples, c, name)
            ap = {cl: round(average_precision(z[:, k], y[:, k]), 4) for k, cl in enumerate(classes)}
            out[name] = {**ap, "seconds": round(time.perf_counter() - t0, 1)}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("surface", type=Path, help="surface.pt from kito surface train")
    p.add_argument("--val", type=Path, required=True, help="manifest with a val split")
    p.add_argument("--all-photos", action="store_true", help="not only the judged photos")
    p.add_argument("--tile", type=int, help="tile side (default: the branch's own, else 96)")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    res = compare(
        args.surface, args.val, judged_only=not args.all_photos, tile=args.tile,
        workers=args.workers,
    )  # fmt: skip
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
