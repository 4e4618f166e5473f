"""Score exported packages side by side on named photo sets, as serving runs them.

    python -m training.score_packages models/default runs/pkg/new \\
        --on val=data/trainval-s1.jsonl:val --on test=data/test-s2

Each package scores every photo of each set through its own preprocessing and ONNX graph, at
its own thresholds. One markdown row per package and set: mAP, macro-F1, any-defect recall and
false-hold rate, AP per class, and the AUROC within designs (training.metrics.stratified_auroc)
of each class: whether the score tells a design's defective pieces from its good ones. A set is
`NAME=PATH[:SPLIT]`, PATH a data set folder or a manifest file, SPLIT one of its splits (every
photo when left out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from qc_model.package import read_meta
from training.compare import score_package
from training.dataset import resolve_root
from training.metrics import stratified_auroc


def records_at(spec: str) -> tuple[list[Record], Path]:
    """`PATH[:SPLIT]` (a data set folder or a manifest) -> (records, folder of their images)."""
    path_s, _, split = spec.partition(":")
    path = Path(path_s)
    manifest_path = path / "manifest.jsonl" if path.is_dir() else path
    if not manifest_path.is_file():
        raise DataError(f"{spec!r}: no manifest at {manifest_path}")
    m = Manifest.read(manifest_path)
    records = m.split(split) if split else list(m.records)  # type: ignore[arg-type]
    if not records:
        raise DataError(f"{spec!r}: no photos" + (f" in split {split!r}" if split else ""))
    return records, resolve_root(manifest_path, None)


def photo_set(spec: str) -> tuple[str, list[Record], Path]:
    """`NAME=PATH[:SPLIT]` -> (name, records, folder their image paths are relative to)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise DataError(f"--on {spec!r}: expected NAME=PATH or NAME=PATH:SPLIT")
    try:
        records, root = records_at(rest)
    except DataError as exc:
        raise DataError(f"--on {name}={exc}") from None
    return name, records, root


def score_rows(
    packages: list[Path], sets: list[tuple[str, list[Record], Path]]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for pkg in packages:
        classes = list(read_meta(pkg).classes)
        for name, records, root in sets:
            s = score_package(pkg, records, root, classes)
            y = np.array([[c in r.labels for c in classes] for r in records])
            designs = [r.design_id or "(none)" for r in records]
            k_all = range(len(classes))
            rows.append(
                {
                    "package": pkg.name,
                    "set": name,
                    "photos": len(records),
                    "ap": {r["name"]: r["ap"] for r in s.per_class},
                    "within_design_auroc": {
                        classes[k]: stratified_auroc(s.probs[:, k], y[:, k], designs) for k in k_all
                    },
                    "macro_f1": s.scores.macro_f1,
                    "recall": s.any_defect["recall"],
                    "false_hold": s.any_defect["false_hold_rate"],
                    "per_class": s.per_class,
                }
            )
    return rows


def _table(rows: list[dict[str, object]]) -> str:
    def per(d: object) -> str:
        assert isinstance(d, dict)
        return " ".join(f"{c}={v:.2f}" for c, v in d.items())

    out = [
        "| package | set | photos | mAP | macro-F1 | recall | false-hold | AP per class "
        "| AUROC within designs |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ap = r["ap"]
        assert isinstance(ap, dict)
        out.append(
            f"| {r['package']} | {r['set']} | {r['photos']} | {np.nanmean(list(ap.values())):.3f} "
            f"| {r['macro_f1']:.3f} | {r['recall']:.3f} | {r['false_hold']:.3f} | {per(ap)} "
            f"| {per(r['within_design_auroc'])} |"
        )
    return "\n".join(out)


def _class_tables(rows: list[dict[str, object]]) -> str:
    """One table per package and set: each class at the package's own threshold."""
    out = []
    for r in rows:
        per = r["per_class"]
        within = r["within_design_auroc"]
        assert isinstance(per, list) and isinstance(within, dict)
        out += [
            f"\n{r['package']} on {r['set']} ({r['photos']} photos):\n",
            "| class | positives | threshold | precision | recall | F1 | AUROC | AP "
            "| AUROC within designs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {c['name']} | {c['support']} | {c['threshold']:.3f} | {c['precision']:.3f} "
            f"| {c['recall']:.3f} | {c['f1']:.3f} | {c['auroc']:.3f} | {c['ap']:.3f} "
            f"| {within[c['name']]:.3f} |"
            for c in per
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("packages", type=Path, nargs="+", help="model package folders")
    p.add_argument(
        "--on", action="append", required=True, metavar="NAME=PATH[:SPLIT]", help="a photo set"
    )
    p.add_argument(
        "--per-class", action="store_true", help="also a per-class table for each package and set"
    )
    args = p.parse_args(argv)
    try:
        for pkg in args.packages:
            read_meta(pkg)
        sets = [photo_set(s) for s in args.on]
        rows = score_rows(args.packages, sets)
        print(_table(rows))
        if args.per_class:
            print(_class_tables(rows))
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
