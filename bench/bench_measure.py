"""Size-error study and photo-gate tuning on synthetic photos whose truth is known.

    .venv/bin/python bench/bench_measure.py --count 300 --out /tmp/kito-bench-measure

renders (or, with --data, reads) a synthetic data set, runs the photo gate and the spec checks on
every photo, and prints: size error per measure on photos with a good mat; how often the gate
sends good photos to retake and catches degraded ones, per capture condition; and how the spec
checks agree with the spec-defect labels. Results are recorded in docs/CHECKS.md.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from qc_model.catalog import default_catalog_dir
from qc_model.decode import DecodeLimits, decode_photo
from qc_model.gate import GateConfig, check_photo, decode_long_side
from qc_model.manifest import Manifest, Record
from qc_model.spec_checks import run_spec_checks

# Conditions that should make the gate ask for a retake, and the codes that count as caught.
DEGRADING = {
    "defocus_blur": {"blurry"},
    "motion_blur": {"blurry"},
    "overexposed": {"too_bright"},
    "underexposed": {"too_dark"},
    "no_mat": {"no_mat"},
    "partly_out_of_frame": {"piece_cut_off", "no_piece"},
    "low_resolution": {"low_resolution", "too_far", "blurry"},
    "distance_far": {"too_far", "low_resolution"},
}
# Conditions a sound photo may carry (the gate must let these through).
HARMLESS = {"rotation", "perspective", "sensor_noise", "white_balance", "uneven_light", "shadow"}
SPEC_LABELS = {
    "wrong_size": "size_",
    "wrong_finish_colour": "finish_",
    "mismatched_pair": "pair_",
    "missing_component": "component_count",
}


def truth_dims(record: Record) -> list[dict[str, float]]:
    """True size per measure for each piece of the photo (two for a pair), from the record."""
    pieces = record.meta.get("pieces") or []
    return [dict(p["dims_mm"]) for p in pieces if isinstance(p, dict) and "dims_mm" in p]


def run(
    manifest: Manifest, root: Path, cfg: GateConfig, decode_floor: int | None = None
) -> list[dict[str, Any]]:
    """Gate and spec checks on every photo. With `decode_floor`, photos are decoded the way the
    service decodes them (DCT-reduced to qc_model.gate.decode_long_side for the design)."""
    # Lenient: the study needs the schema, not the golden reference images.
    from training.synth.designs import load_designs

    designs = {d.id: d for d in load_designs(default_catalog_dir())}
    rows = []
    for rec in tqdm(manifest.records, desc="photos", unit="photo"):
        if rec.design_id not in designs:
            continue
        design = designs[rec.design_id]
        if decode_floor is None:
            img = cv2.imread(str(root / rec.image), cv2.IMREAD_COLOR)
        else:
            side = decode_long_side(design, cfg, floor=decode_floor)
            data = (root / rec.image).read_bytes()
            img = decode_photo(data, limits=DecodeLimits(target_long_side=side)).image
        if img is None:
            continue
        bgr = np.asarray(img, np.uint8)
        gate = check_photo(bgr, design, cfg)
        checks = run_spec_checks(bgr, design, mat=gate.mat, location=gate.location)
        rows.append({"rec": rec, "gate": gate, "checks": checks, "design": design})
    return rows


def size_errors(rows: list[dict[str, Any]]) -> list[tuple[str, str, float, bool]]:
    """(design, measure, relative error, gate passed) per size check on photos with a good mat."""
    out = []
    for row in rows:
        rec, gate = row["rec"], row["gate"]
        if set(rec.capture) & {"no_mat", "mat_cut_off", "partly_out_of_frame"}:
            continue
        if gate.mat is None or len(gate.mat.marker_ids) < 2:
            continue
        truth = truth_dims(rec)
        for c in row["checks"]:
            if not c.name.startswith("size_") or c.measured is None or not truth:
                continue
            measure = c.name.removeprefix("size_")
            # The check reports the piece furthest from nominal; compare with that piece's truth.
            values = [t[measure] for t in truth if measure in t]
            if values:
                true = max(values, key=lambda v: abs(v - c.expected))
                out.append((rec.design_id, measure, (c.measured - true) / true, gate.passed))
    return out


def _error_rows(groups: dict[str, list[float]]) -> None:
    print("| group | photos | median abs error | p90 abs error | median signed error |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, e in sorted(groups.items()):
        a = np.abs(e)
        print(
            f"| {key} | {len(e)} | {np.median(a):.2%} | {np.percentile(a, 90):.2%} "
            f"| {np.median(e):+.2%} |"
        )


def size_table(rows: list[dict[str, Any]]) -> None:
    errors = size_errors(rows)
    for title, keep in (("all photos with a good mat", False), ("photos the gate accepted", True)):
        sel = [e for e in errors if e[3] or not keep]
        print(f"\nSize error by measure, {title}:")
        groups: dict[str, list[float]] = defaultdict(list)
        for _, measure, err, _ in sel:
            groups[measure].append(err)
            groups["(all)"].append(err)
        _error_rows(groups)
    print("\nSize error by design, photos the gate accepted:")
    by_design: dict[str, list[float]] = defaultdict(list)
    for design, measure, err, passed in errors:
        if passed:
            by_design[f"{design} {measure}"].append(err)
    _error_rows(by_design)


def gate_table(rows: list[dict[str, Any]]) -> None:
    good = [r for r in rows if not (set(r["rec"].capture) & (set(DEGRADING) | {"mat_cut_off"}))]
    retaken = [r for r in good if not r["gate"].passed]
    print(f"\nGood photos sent to retake: {len(retaken)}/{len(good)}", end="")
    print(f" ({len(retaken) / max(1, len(good)):.1%})")
    why: dict[str, int] = defaultdict(int)
    for r in retaken:
        for code in r["gate"].retake_codes:
            why[code] += 1
    if why:
        print("  by code: " + ", ".join(f"{k} {v}" for k, v in sorted(why.items())))
    print("\n| condition | photos | sent to retake | with the expected code |")
    print("| --- | ---: | ---: | ---: |")
    for cond, codes in DEGRADING.items():
        sel = [r for r in rows if cond in r["rec"].capture]
        if not sel:
            continue
        caught = [r for r in sel if not r["gate"].passed]
        right = [r for r in sel if set(r["gate"].retake_codes) & codes]
        n = len(sel)
        print(f"| {cond} | {n} | {len(caught) / n:.0%} | {len(right) / n:.0%} |")


def spec_table(rows: list[dict[str, Any]]) -> None:
    usable = [r for r in rows if r["gate"].passed]
    print(f"\nSpec checks on the {len(usable)} photos the gate accepted (fail / borderline):")
    print("| label | photos with label | caught: fail | caught: borderline |", end="")
    print(" others: fail | others: borderline |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, prefix in SPEC_LABELS.items():
        relevant = [r for r in usable if any(c.name.startswith(prefix) for c in r["checks"])]
        pos = [r for r in relevant if label in r["rec"].labels]
        neg = [r for r in relevant if label not in r["rec"].labels]

        def outcome(r: dict[str, Any], prefix: str = prefix) -> str:
            results = {c.result for c in r["checks"] if c.name.startswith(prefix)}
            return "fail" if "fail" in results else "borderline" if "borderline" in results else ""

        def count(group: list[dict[str, Any]], what: str) -> str:
            return f"{sum(outcome(r) == what for r in group)}/{len(group)}"

        print(
            f"| {label} | {len(pos)} | {count(pos, 'fail')} | {count(pos, 'borderline')} "
            f"| {count(neg, 'fail')} | {count(neg, 'borderline')} |"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="existing synthetic data set folder")
    p.add_argument("--out", type=Path, default=Path("/tmp/kito-bench-measure"))
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--difficulty", type=float, default=0.5)
    p.add_argument("--defect-rate", type=float, default=0.35)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--decode-floor",
        type=int,
        help="decode as the service does (KITO_DECODE_LONG_SIDE, e.g. 1000) instead of in full",
    )
    args = p.parse_args(argv)
    root = args.data
    if root is None:
        from training.synth.generate import SynthOptions, generate_dataset

        opts = SynthOptions(
            count=args.count,
            size=args.size,
            seed=args.seed,
            defect_rate=args.defect_rate,
            difficulty=args.difficulty,
        )
        generate_dataset(default_catalog_dir(), args.out, opts, workers=args.workers)
        root = args.out
    manifest = Manifest.read(root)
    rows = run(manifest, root, GateConfig(), args.decode_floor)
    print(f"{len(rows)} photos from {root} (manifest version {manifest.header.version})")
    size_table(rows)
    gate_table(rows)
    spec_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
