"""Contact sheet of a data set: a grid of captioned thumbnails with defect masks outlined."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import GOOD, Manifest, Record

THUMB = 256  # thumbnail side in px
GAP = 8
CAPTION_H = 64  # four text lines
HEADER_H = 44
MAX_COLS = 8
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR
WHITE, GREY, RED, GREEN = (235, 235, 235), (150, 150, 150), (60, 60, 235), (80, 200, 80)
BACKGROUND, CAPTION_BG, TILE_BG = (18, 18, 18), (32, 32, 32), (48, 48, 48)

Image = NDArray[Any]  # uint8 BGR; OpenCV's stubs type results loosely


def _is_good(r: Record) -> bool:
    return not r.labels or r.labels == [GOOD]


def sample_records(manifest: Manifest, count: int, seed: int = 0) -> list[Record]:
    """Up to `count` records, the same for the same seed: half good, half defective (when both
    exist), the defective half spread round-robin over labels, rarest label of a photo first."""
    freq = Counter(lab for r in manifest.records for lab in r.labels)
    rng = random.Random(seed)
    good = sorted((r for r in manifest.records if _is_good(r)), key=lambda r: r.id)
    buckets: dict[str, list[Record]] = defaultdict(list)
    for r in manifest.records:
        if not _is_good(r):
            buckets[min(r.labels, key=lambda s: (freq[s], s))].append(r)
    rng.shuffle(good)
    queues = []
    for key in sorted(buckets):
        queue = sorted(buckets[key], key=lambda r: r.id)
        rng.shuffle(queue)
        queues.append(queue)
    defective: list[Record] = []
    while any(queues):
        defective += [q.pop() for q in queues if q]
    n_bad = min(len(defective), max(count - len(good), math.ceil(count / 2)))
    picked = defective[:n_bad] + good[: count - n_bad]
    # Grouped by label for reading: defects first, then the good pieces.
    return sorted(picked, key=lambda r: (_is_good(r), r.labels, r.id))


def _fit(text: str, scale: float, width: int) -> str:
    """Trim `text` with an ellipsis so it fits `width` px."""
    if cv2.getTextSize(text, FONT, scale, 1)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", FONT, scale, 1)[0][0] > width:
        text = text[:-1]
    return text + "..."


def _wrap(words: list[str], scale: float, width: int, lines: int) -> list[str]:
    out: list[str] = []
    for w in words:
        joined = f"{out[-1]}, {w}" if out else w
        if out and cv2.getTextSize(joined, FONT, scale, 1)[0][0] <= width:
            out[-1] = joined
        else:
            out.append(w)
    if len(out) > lines:
        out = [*out[: lines - 1], ", ".join(out[lines - 1 :])]
    return [_fit(s, scale, width) for s in out]


def _read(path: Path, long_side: int, flags: tuple[int, int, int, int]) -> Image | None:
    # Reduced decoding (JPEG DCT scaling) keeps a 48-photo sheet of 4000 px photos quick.
    factor = long_side / THUMB
    flag = (
        flags[3]
        if factor >= 8
        else flags[2]
        if factor >= 4
        else flags[1]
        if factor >= 2
        else flags[0]
    )
    return cv2.imread(str(path), flag)


_COLOR = (
    cv2.IMREAD_COLOR,
    cv2.IMREAD_REDUCED_COLOR_2,
    cv2.IMREAD_REDUCED_COLOR_4,
    cv2.IMREAD_REDUCED_COLOR_8,
)
_GRAY = (
    cv2.IMREAD_GRAYSCALE,
    cv2.IMREAD_REDUCED_GRAYSCALE_2,
    cv2.IMREAD_REDUCED_GRAYSCALE_4,
    cv2.IMREAD_REDUCED_GRAYSCALE_8,
)


def _thumbnail(root: Path, r: Record) -> tuple[Image, bool]:
    """(THUMB x THUMB BGR tile, all masks found)."""
    tile: Image = np.full((THUMB, THUMB, 3), TILE_BG, np.uint8)
    long_side = max(r.width, r.height)
    img = _read(root / r.image, long_side, _COLOR)
    if img is None:
        cv2.putText(tile, "unreadable image", (40, THUMB // 2), FONT, 0.6, RED, 1, cv2.LINE_AA)
        return tile, True
    h, w = img.shape[:2]
    s = THUMB / max(h, w)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    x0, y0 = (THUMB - tw) // 2, (THUMB - th) // 2
    tile[y0 : y0 + th, x0 : x0 + tw] = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    masks_ok = True
    contours: list[Image] = []
    for mask_path in r.masks.values():
        mask = _read(root / mask_path, long_side, _GRAY)
        if mask is None:
            masks_ok = False
            continue
        # INTER_AREA then a low threshold: a one-pixel scratch survives an 8x shrink.
        small = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_AREA) > 24
        found, _ = cv2.findContours(
            small.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        contours += [c + np.array([x0, y0], np.int32) for c in found]
    if contours:
        fill, line = tile.copy(), tile.copy()
        cv2.drawContours(fill, contours, -1, RED, cv2.FILLED)
        cv2.drawContours(line, contours, -1, RED, 2, cv2.LINE_AA)
        tile = cv2.addWeighted(fill, 0.2, tile, 0.8, 0)
        tile = cv2.addWeighted(line, 0.7, tile, 0.3, 0)
    return tile, masks_ok


def _caption(r: Record, masks_ok: bool) -> Image:
    cap = np.full((CAPTION_H, THUMB, 3), CAPTION_BG, np.uint8)
    width = THUMB - 8
    # Imported photos often have no design: their original file name is what a person knows.
    name = r.design_id or str(r.meta.get("original") or r.id)
    first = f"{name}  [{r.split or '-'}]"
    cv2.putText(cap, _fit(first, 0.42, width), (4, 14), FONT, 0.42, WHITE, 1, cv2.LINE_AA)
    if _is_good(r):
        cv2.putText(cap, GOOD, (4, 30), FONT, 0.45, GREEN, 1, cv2.LINE_AA)
    else:
        text = _fit(", ".join(r.labels), 0.45, width)
        cv2.putText(cap, text, (4, 30), FONT, 0.45, RED, 1, cv2.LINE_AA)
    extra = [] if masks_ok else ["MASK FILE MISSING"]
    for i, line in enumerate(_wrap(extra + r.capture, 0.36, width, 2)):
        cv2.putText(cap, line, (4, 45 + 14 * i), FONT, 0.36, GREY, 1, cv2.LINE_AA)
    return cap


def sheet_size(n: int) -> tuple[int, int]:
    """(width, height) in px of the sheet for `n` thumbnails."""
    cols = min(MAX_COLS, n)
    rows = math.ceil(n / cols)
    return cols * THUMB + (cols + 1) * GAP, HEADER_H + rows * (THUMB + CAPTION_H) + (rows + 1) * GAP


def contact_sheet(dataset: Path, out: Path | None = None, count: int = 48, seed: int = 0) -> Path:
    """Write a PNG contact sheet of `count` sampled photos; default <dataset>/preview.png."""
    if count < 1:
        raise DataError(f"count must be at least 1, got {count}")
    dataset = Path(dataset)
    manifest = Manifest.read(dataset)
    root = dataset if dataset.is_dir() else dataset.parent
    out = Path(out) if out is not None else root / "preview.png"
    picked = sample_records(manifest, count, seed)
    if not picked:
        raise DataError(f"{dataset}: the manifest lists no photos")
    width, height = sheet_size(len(picked))
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    h = manifest.header
    title = (
        f"{h.name}  version {h.version}  {h.task}  {len(picked)} of {len(manifest.records)} photos"
        f" (seed {seed})"
    )
    cv2.putText(sheet, _fit(title, 0.6, width - 16), (GAP, 20), FONT, 0.6, WHITE, 1, cv2.LINE_AA)
    legend = "red: defect labels and mask outlines   green: good   grey: capture conditions"
    cv2.putText(sheet, _fit(legend, 0.45, width - 16), (GAP, 38), FONT, 0.45, GREY, 1, cv2.LINE_AA)
    cols = min(MAX_COLS, len(picked))
    for i, r in enumerate(tqdm(picked, desc="preview", unit="photo")):
        tile, masks_ok = _thumbnail(root, r)
        x = GAP + (i % cols) * (THUMB + GAP)
        y = HEADER_H + GAP + (i // cols) * (THUMB + CAPTION_H + GAP)
        sheet[y : y + THUMB, x : x + THUMB] = tile
        sheet[y + THUMB : y + THUMB + CAPTION_H, x : x + THUMB] = _caption(r, masks_ok)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise DataError(f"cannot write the contact sheet to {out}")
    return out
