"""Does a package's score follow the defect? Each photo against its twin rendered without it.

    python -m research.twin_probe --data data/test-s2-2k --label scratch \
        --package models/default --package runs/pkg-hn/default --out runs/twins-scratch

Every photo of a `kito data synth` set that carries `--label` and that the photo gate passes
(as the service measures it: training.judged) is rendered again twice: as it is, and as its
twin without that defect (training.visibility.TwinRenderer; the renderer draws each defect
from seeds of its own, so the two differ only where the defect is). Both go through each
package as served. Per package it reports, for the class's served probability and, where the
package has a surface branch that scores the class, for the branch's logit (its highest cell
near the piece):
- the AUROC of the photos against their own twins: 0.5 when the score does not see the defect
  at all, 1.0 when it always rises with it;
- the share of photos whose score rises by more than 0.5 (logit units), and the share where it
  does not change (|Δ| < 0.05: whatever sets the score lies elsewhere on the piece).
AP over a test set mixes this with how well the score tells designs apart; this asks only
whether the defect itself moves the score. Each row also carries the defect's contrast, from the
two renders' CIE76 ΔE: its largest value and the pixels at ΔE >= 6 and >= 12. Writes
`twins.json` (one row per photo) and `summary.json`, and prints the table.

`--sheet N` also writes `lowest.jpg`: the N photos the first package scores lowest for the
label (its served probability: the ones that cost false holds to catch), each as the photo, its
twin and their difference x4, cut out around the defect's largest change at the photo's own
scale. It is the check to make by eye: can a person find the defect in the photo at all?
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import ManifestError
from qc_model.surface import logit
from qc_model.taxonomy import VISUAL_DEFECTS
from training.metrics import auroc

RISE = 0.5
SAME = 0.05
TILE = 180  # px of the photo around the defect's largest change, in the sheet


def _sigmoid(z: float) -> float:
    return float(1 / (1 + np.exp(-z)))


def pair_stats(photo: NDArray[np.floating], twin: NDArray[np.floating]) -> dict[str, float]:
    """Scores of N photos and of their N twins (same order) -> the probe's three numbers."""
    photo, twin = np.asarray(photo, np.float64), np.asarray(twin, np.float64)
    if photo.shape != twin.shape or photo.ndim != 1 or not len(photo):
        raise DataError("need one score per photo and one per twin, at least one pair")
    d = photo - twin
    y = np.r_[np.ones(len(photo), bool), np.zeros(len(twin), bool)]
    return {
        "pairs": float(len(d)),
        "auroc_photo_vs_twin": auroc(np.r_[photo, twin], y),
        "share_rises": float(np.mean(d > RISE)),
        "share_unchanged": float(np.mean(np.abs(d) < SAME)),
        "median_rise": float(np.median(d)),
    }


def _scores(
    inf: Any, image: NDArray[np.uint8], label: str, design: str | None = None
) -> dict[str, float]:
    """The package's logit of its served probability for `label` (for a piece of `design`, as
    the service scores it), and its branch's logit."""
    prepared = inf.prepare(image, design=design)
    probs, heatmaps = inf.run(prepared.tensor[None])
    branch = None
    if prepared.surface is not None:
        branch = inf.run_surface(prepared.surface, prepared.surface_piece)
    pred = inf.post_process(probs, heatmaps, [prepared.box], [{}], [branch], [design])[0]
    out = {"served": float(logit(np.array([pred.probs[label]]))[0])}
    sm = inf.meta.surface
    if sm is not None and branch is not None and label in sm.classes:
        out["branch"] = float(branch[0][sm.classes.index(label)])
    return out


def contrast(
    photo: NDArray[np.uint8], twin: NDArray[np.uint8], side: int = TILE
) -> tuple[dict[str, float], NDArray[np.uint8]]:
    """The defect's contrast (largest ΔE, pixels at ΔE >= 6 and >= 12) and a tile: the photo,
    the twin and |photo - twin| x4 side by side, `side` px around the largest change."""
    from training.visibility import cie_lab

    d = np.linalg.norm(cie_lab(photo) - cie_lab(twin), axis=2)
    cy, cx = np.unravel_index(int(np.argmax(d)), d.shape)
    h, w = d.shape
    y0 = int(min(max(cy - side // 2, 0), max(h - side, 0)))
    x0 = int(min(max(cx - side // 2, 0), max(w - side, 0)))
    a, b = photo[y0 : y0 + side, x0 : x0 + side], twin[y0 : y0 + side, x0 : x0 + side]
    diff = np.clip(np.abs(a.astype(np.int16) - b.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    stats = {
        "max_delta_e": float(d.max()),
        "px_delta_e_6": float((d >= 6).sum()),
        "px_delta_e_12": float((d >= 12).sum()),
    }
    return stats, np.concatenate([a, b, diff], axis=1)


def write_sheet(tiles: list[tuple[str, NDArray[np.uint8]]], out: Path, per_row: int = 2) -> None:
    """Tiles (caption, BGR image of one height) in rows of `per_row`, as a JPEG."""
    import cv2

    if not tiles:
        raise DataError("no photo to put on the sheet")
    blank = np.full_like(tiles[0][1], 255)
    cells = []
    for caption, t in tiles:
        t = t.copy()
        cv2.rectangle(t, (0, 0), (t.shape[1], 16), (255, 255, 255), -1)
        cv2.putText(t, caption, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 160), 1)
        cells.append(t)
    cells += [blank] * (-len(cells) % per_row)
    rows = [np.concatenate(cells[i : i + per_row], axis=1) for i in range(0, len(cells), per_row)]
    if not cv2.imwrite(str(out), np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise DataError(f"{out}: could not be written")


def probe(
    data: Path,
    label: str,
    packages: list[Path],
    workers: int = 1,
    limit: int = 0,
    judged_only: bool = True,
    tiles: dict[str, NDArray[np.uint8]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one row per photo, the summary per package and score); `judged_only`: only the photos
    the photo gate passes. `tiles`, when given, receives each photo's `contrast` tile by id."""
    from qc_model.inference import Inferencer
    from training.judged import gate_passed
    from training.visibility import TwinRenderer

    if label not in VISUAL_DEFECTS:
        raise DataError(f"{label!r} is not a visual defect ({', '.join(VISUAL_DEFECTS)})")
    twins = TwinRenderer(data)
    records = [r for r in twins.manifest.records if label in r.labels]
    if records and judged_only:
        records = [
            r for r, ok in zip(records, gate_passed(records, data, workers), strict=True) if ok
        ]
    records = records[: limit or None]
    if not records:
        where = " that the photo gate passes" if judged_only else ""
        raise DataError(f"{data}: no photo labelled {label}{where}")
    infs = {str(p): Inferencer(p) for p in packages}
    for name, inf in infs.items():
        if label not in inf.meta.classes:
            raise DataError(f"{name}: the package does not score {label}")
    rows = []
    for r in tqdm(records, desc=f"{label}: photo and twin"):
        photo, twin = twins.render(r), twins.render(r, frozenset({label}))
        stats, tile = contrast(photo, twin)
        row: dict[str, Any] = {"id": r.id, "design": r.design_id, "contrast": stats}
        if tiles is not None:
            tiles[r.id] = tile
        for name, inf in infs.items():
            row[name] = {
                "photo": _scores(inf, photo, label, r.design_id),
                "twin": _scores(inf, twin, label, r.design_id),
            }
        rows.append(row)
    summary: dict[str, Any] = {
        "label": label, "photos": len(rows), "judged_only": judged_only, "packages": {},
    }  # fmt: skip
    for name in infs:
        kinds = rows[0][name]["photo"].keys()
        summary["packages"][name] = {
            k: pair_stats(
                np.array([row[name]["photo"][k] for row in rows]),
                np.array([row[name]["twin"][k] for row in rows]),
            )
            for k in kinds
        }
    summary["by_contrast"] = by_contrast(rows, str(packages[0]))
    return rows, summary


def by_contrast(rows: list[dict[str, Any]], package: str) -> dict[str, dict[str, float]]:
    """The photos whose defect changes no pixel by ΔE >= 12 against the others: how many, and
    the median probability `package` serves them for the label."""
    out = {}
    for name, faint in (("no pixel at ΔE >= 12", True), ("some pixel at ΔE >= 12", False)):
        z = [r[package]["photo"]["served"] for r in rows
             if (r["contrast"]["px_delta_e_12"] == 0) == faint]  # fmt: skip
        out[name] = {
            "photos": float(len(z)),
            "median_p": _sigmoid(float(np.median(z))) if z else float("nan"),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a kito data synth folder")
    p.add_argument("--label", required=True, help="the defect to leave out of the twins")
    p.add_argument("--package", type=Path, action="append", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=0, help="the first N photos only")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--all-photos", action="store_true", help="not only the photos the photo gate passes"
    )
    p.add_argument(
        "--sheet", type=int, default=0, metavar="N",
        help="write lowest.jpg: the N photos the first package scores lowest, with their twins",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.sheet < 0:
        p.error("--sheet takes a number of photos, 0 or more")
    tiles: dict[str, NDArray[np.uint8]] = {}
    try:
        rows, summary = probe(
            args.data, args.label, args.package, args.workers, args.limit, not args.all_photos,
            tiles if args.sheet else None,
        )  # fmt: skip
    except (DataError, ManifestError) as e:
        raise SystemExit(f"error: {e}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sheet:
        first = str(args.package[0])
        low = sorted(rows, key=lambda r: r[first]["photo"]["served"])[: args.sheet]
        try:
            write_sheet(
                [(f"{r['id']} {r['design']} p={_sigmoid(r[first]['photo']['served']):.3f} "
                  f"dE max {r['contrast']['max_delta_e']:.0f}", tiles[r["id"]]) for r in low],
                args.out / "lowest.jpg",
            )  # fmt: skip
        except DataError as e:
            raise SystemExit(f"error: {e}") from None
    (args.out / "twins.json").write_text(json.dumps(rows, indent=1))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    which = "photos" if args.all_photos else "judged photos"
    print(f"{summary['photos']} {which} labelled {args.label}, each against its twin")
    if args.sheet:
        print(f"wrote {args.out / 'lowest.jpg'}: the {min(args.sheet, len(rows))} lowest scored")
    for group, st in summary["by_contrast"].items():
        print(f"{group}: {st['photos']:.0f} photos, median served p {st['median_p']:.3f} "
              f"({args.package[0]})")  # fmt: skip
    print(f"{'package':40} {'score':7} {'AUROC':>6} {'rises':>6} {'same':>6} {'median Δ':>9}")
    for name, kinds in summary["packages"].items():
        for k, st in kinds.items():
            print(
                f"{name[-40:]:40} {k:7} {st['auroc_photo_vs_twin']:6.3f} {st['share_rises']:6.2f}"
                f" {st['share_unchanged']:6.2f} {st['median_rise']:9.2f}"
            )


if __name__ == "__main__":
    main()
