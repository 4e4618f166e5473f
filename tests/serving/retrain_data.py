"""Small labelled data sets for the retraining tests: brass hoop pairs on the calibration mat,
some with a bold "scratch" (a dark bar across a hoop) or "tarnish" (dark patches on the wire),
drawn big enough for a frozen-trunk network at 64 px to learn in a few epochs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from qc_model.manifest import Header, Manifest, Record
from qc_model.mat import DEFAULT_MAT

DESIGN = "KQ-HOOP-BR-30"
PX_PER_MM = 3.0


def hoop_photo(labels: Sequence[str], seed: int) -> np.ndarray:
    """A pair of 30 mm brass hoops on the mat, with the given visual defects drawn bold."""
    rng = np.random.default_rng(seed)
    img = DEFAULT_MAT.render(PX_PER_MM)
    h, w = img.shape[:2]
    wire = round(2.5 * PX_PER_MM)
    r = round(15 * PX_PER_MM - wire / 2)
    offset = round(25 * PX_PER_MM)
    jitter = rng.integers(-8, 9, size=2)
    centres = [(w // 2 - offset + int(jitter[0]), h // 2 + int(jitter[1])),
               (w // 2 + offset + int(jitter[0]), h // 2 + int(jitter[1]))]  # fmt: skip
    brass = tuple(int(c) for c in np.array([60, 150, 190]) + rng.integers(-12, 13, 3))
    for c in centres:
        cv2.circle(img, c, r, brass, wire, lineType=cv2.LINE_AA)
    victim = centres[int(rng.integers(2))]
    if "scratch" in labels:
        a = rng.uniform(0, np.pi)
        dx, dy = int(r * np.cos(a)), int(r * np.sin(a))
        p, q = (victim[0] - dx, victim[1] - dy), (victim[0] + dx, victim[1] + dy)
        cv2.line(img, p, q, (50, 100, 140), round(3 * PX_PER_MM), cv2.LINE_AA)
    if "tarnish" in labels:
        for a in rng.uniform(0, 2 * np.pi, 3):
            spot = (int(victim[0] + r * np.cos(a)), int(victim[1] + r * np.sin(a)))
            cv2.circle(img, spot, round(5 * PX_PER_MM), (70, 90, 40), -1, cv2.LINE_AA)
    noise = rng.normal(0, 2, img.shape)
    return np.clip(cv2.GaussianBlur(img, (3, 3), 0) + noise, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def make_dataset(
    root: Path,
    kinds: Sequence[tuple[str, ...]],
    seed: int,
    splits: Sequence[str] | None = None,
    name: str = "hoops",
) -> Path:
    """One photo per entry of `kinds` (its labels); splits cycle train/train/val unless given."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    cycle = splits or ["train", "train", "val"]
    for i, labels in enumerate(kinds):
        data = jpeg(hoop_photo(labels, seed * 10_000 + i))
        sha = hashlib.sha256(data).hexdigest()
        (root / "images" / f"{sha}.jpg").write_bytes(data)
        h, w = DEFAULT_MAT.render(PX_PER_MM).shape[:2]
        records.append(
            Record(
                id=f"{name}-{seed}-{i:04d}",
                image=f"images/{sha}.jpg",
                sha256=sha,
                width=w,
                height=h,
                design_id=DESIGN,
                piece_id=f"{name}-{seed}-{i:04d}",
                labels=list(labels),
                split=cycle[i % len(cycle)],  # type: ignore[arg-type]
                source="synthetic",
            )
        )
    Manifest(header=Header(name=name), records=records).write(root / "manifest.jsonl")
    return root / "manifest.jsonl"
