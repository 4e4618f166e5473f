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
INSET = 112  # zoom on the defect, top right of a thumbnail
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


def _read(path: Path, long_side: int) -> Image | None:
    # Reduced decoding (JPEG DCT scaling) keeps a 48-photo sheet of 4000 px photos quick.
    factor = long_side / THUMB
    reduced = [(8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4)]
    reduced.append((2, cv2.IMREAD_REDUCED_COLOR_2))
    flag = next((f for k, f in reduced if factor >= k), cv2.IMREAD_COLOR)
    return cv2.imread(str(path), flag)


def _outline(img: Image, mask: Image, width: int) -> Image:
    """`img` with `mask` (bool, same size) outlined in translucent red over a faint red fill."""
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    fill, line = img.copy(), img.copy()
    cv2.drawContours(fill, found, -1, RED, cv2.FILLED)
    cv2.drawContours(line, found, -1, RED, width, cv2.LINE_AA)
    out = cv2.addWeighted(fill, 0.15, img, 0.85, 0)
    return cv2.addWeighted(line, 0.7, out, 0.3, 0)


def _inset(img: Image, mask: Image) -> Image | None:
    """A zoom on the masked area: the piece is often a small part of the photo, and a defect
    outlined at thumbnail scale cannot be judged. None when the mask is already large."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    side = int(max(xs.max() - xs.min(), ys.max() - ys.min()) * 1.4 + 16)
    if side > 0.6 * max(h, w):
        return None
    side = min(max(side, 48), h, w)
    x0 = int(np.clip((xs.min() + xs.max() - side) // 2, 0, w - side))
    y0 = int(np.clip((ys.min() + ys.max() - side) // 2, 0, h - side))
    crop = cv2.resize(
        img[y0 : y0 + side, x0 : x0 + side], (INSET, INSET), interpolation=cv2.INTER_AREA
    )
    small = cv2.resize(mask[y0 : y0 + side, x0 : x0 + side].astype(np.uint8) * 255, (INSET, INSET))
    return _outline(crop, small > 24, 1)


def _thumbnail(root: Path, r: Record) -> tuple[Image, bool]:
    """(THUMB x THUMB BGR tile, all masks found)."""
    tile: Image = np.full((THUMB, THUMB, 3), TILE_BG, np.uint8)
    # With masks, decode at full size: the zoom inset needs the detail.
    img = _read(root / r.image, 1 if r.masks else max(r.width, r.height))
    if img is None:
        cv2.putText(tile, "unreadable image", (40, THUMB // 2), FONT, 0.6, RED, 1, cv2.LINE_AA)
        return tile, True
    h, w = img.shape[:2]
    s = THUMB / max(h, w)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    x0, y0 = (THUMB - tw) // 2, (THUMB - th) // 2
    thumb = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    union = np.zeros((h, w), bool)
    masks_ok = True
    for mask_path in r.masks.values():
        mask = cv2.imread(str(root / mask_path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            masks_ok = False
            continue
        union |= cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 127
    inset = None
    if union.any():
        # INTER_AREA then a low threshold: a one-pixel scratch survives an 8x shrink.
        small = cv2.resize(union.astype(np.uint8) * 255, (tw, th), interpolation=cv2.INTER_AREA)
        thumb = _outline(thumb, small > 24, 2)
        inset = _inset(img, union)
    tile[y0 : y0 + th, x0 : x0 + tw] = thumb
    if inset is not None:
        ys, xs = np.nonzero(union)
        box = (x0 + xs.min() * s, y0 + ys.min() * s, x0 + xs.max() * s, y0 + ys.max() * s)
        ix, iy = _inset_corner(box)
        tile[iy : iy + INSET, ix : ix + INSET] = inset
        cv2.rectangle(tile, (ix - 1, iy - 1), (ix + INSET, iy + INSET), WHITE, 1)
    return tile, masks_ok


def _inset_corner(box: tuple[float, float, float, float]) -> tuple[int, int]:
    """Top-left of the tile corner whose inset hides least of `box` (x0, y0, x1, y1) so the
    outlined defect stays visible in the thumbnail itself."""
    far = THUMB - 4 - INSET
    corners = [(far, 4), (4, 4), (far, far), (4, far)]

    def hidden(c: tuple[int, int]) -> float:
        w = min(box[2], c[0] + INSET) - max(box[0], c[0])
        h = min(box[3], c[1] + INSET) - max(box[1], c[1])
        return max(w, 0) * max(h, 0)

    return min(corners, key=hidden)


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
