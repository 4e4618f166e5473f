"""The surface branch's input: the piece crop at a fixed scale in pixels per millimetre.

The defect network sees the piece crop resized to its input size, so a scratch's width in
its input depends on the piece's size (docs/MODEL.md, "Finer photos"). The surface branch
sees the same square crop without that resize. Its input is resampled only to bring the photo
to the scale the branch was trained at, measured from the mat's markers, so a 0.1 mm hairline
is as wide for it on every design and every phone. Numpy and OpenCV only (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qc_model.locate import Box
from qc_model.mat import MatDetection
from qc_model.preprocess import Crop, extract_box


class SurfaceConfig(BaseModel):
    """How a photo becomes the surface branch's input; stored in packages that have one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The scale the branch was trained at; None: the photo's own pixels, whatever their scale.
    px_per_mm: float | None = Field(default=None, gt=0)
    # Within this relative difference the crop is not resampled: resampling blurs the very
    # hairlines the branch looks for, and a few percent of scale does not matter to it.
    scale_tolerance: float = Field(default=0.15, ge=0.0, lt=1.0)
    # A longer crop side is shrunk to this (a locate failure can return the whole mat).
    max_side: int = Field(default=1024, ge=32, le=4096)
    # Cell size of the branch's output in input pixels; the input is padded to a multiple.
    stride: int = Field(default=8, ge=1, le=64)
    # Score the crop in square tiles of this many pixels (the branch's training patch size),
    # only the tiles that reach the piece, each on its own as the branch was trained: the
    # square crop of a necklace or a hoop is mostly paper. None: the whole crop in one run,
    # every cell counted (how packages attached before tiles existed were fitted).
    tile: int | None = Field(default=None, ge=8, le=1024)
    # With tiles, the cells counted are those within this many pixels of the piece's mask
    # (the photo gate's segmentation, which can miss a thin edge or a glint).
    piece_margin: int = Field(default=16, ge=0, le=256)

    @model_validator(mode="after")
    def _tile_is_whole_cells(self) -> SurfaceConfig:
        if self.tile is not None and self.tile % self.stride:
            raise ValueError(f"tile {self.tile} is not a multiple of the stride {self.stride}")
        return self


def surface_scale(cfg: SurfaceConfig, photo_px_per_mm: float | None, side: int) -> float:
    """The factor the crop of `side` pixels is resized by (1.0: left as it is)."""
    f = 1.0
    if cfg.px_per_mm is not None and photo_px_per_mm is not None and photo_px_per_mm > 0:
        f = cfg.px_per_mm / photo_px_per_mm
        if abs(f - 1.0) <= cfg.scale_tolerance:
            f = 1.0
    if side * f > cfg.max_side:
        f = cfg.max_side / side
    return f


def surface_crop(
    image_bgr: NDArray[np.uint8],
    box: Box,
    cfg: SurfaceConfig,
    photo_px_per_mm: float | None,
) -> tuple[NDArray[np.uint8], float]:
    """(RGB crop at the branch's scale, padded with black to a multiple of cfg.stride; factor)."""
    region = extract_box(image_bgr, box)
    side = region.shape[0]
    f = surface_scale(cfg, photo_px_per_mm, side)
    if f != 1.0:
        size = max(cfg.stride, round(side * f))
        flag = cv2.INTER_AREA if f < 1.0 else cv2.INTER_CUBIC
        region = np.asarray(cv2.resize(region, (size, size), interpolation=flag), np.uint8)
    s = cfg.stride
    h, w = region.shape[:2]
    hp, wp = -(-h // s) * s, -(-w // s) * s
    out = np.zeros((hp, wp, 3), np.uint8)
    # OpenCV's channel swap, not region[:, :, ::-1]: the same bytes, 5 ms less on a 1024 px crop.
    out[:h, :w] = cv2.cvtColor(region, cv2.COLOR_BGR2RGB)
    return out, f


def surface_piece_mask(
    mask: NDArray[np.uint8], box: Box, shape: tuple[int, int], factor: float
) -> NDArray[np.bool_]:
    """The piece's mask (photo-sized, 0/255) carried through `surface_crop`'s crop and resample
    onto its padded (H, W) grid. Area resampling then "any coverage": a thin wire stays."""
    m = extract_box(mask, box)
    side = m.shape[0]
    if factor != 1.0:
        size = max(1, round(side * factor))
        m = np.asarray(cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA), np.uint8)
    out = np.zeros(shape, np.bool_)
    h, w = min(shape[0], m.shape[0]), min(shape[1], m.shape[1])
    out[:h, :w] = m[:h, :w] > 0
    return out


def surface_view(
    image_bgr: NDArray[np.uint8], crop: Crop, cfg: SurfaceConfig, mat: MatDetection | None = None
) -> tuple[NDArray[np.uint8], Box, float, NDArray[np.bool_] | None]:
    """The branch's view of a located crop (preprocess.crop_to_piece's): its box at the branch's
    scale, measured by `mat` or else the mat the locator found, and the piece's mask on that
    grid. (RGB crop, box as ints, factor, mask or None where no piece was found.) The service
    (Inferencer.prepare) and the branch's training data (training.surface.data) both use it."""
    box = (int(crop.box[0]), int(crop.box[1]), int(crop.box[2]), int(crop.box[3]))
    loc = crop.location
    found = mat or (loc.mat if loc is not None else None)
    rgb, f = surface_crop(image_bgr, box, cfg, found.px_per_mm if found is not None else None)
    piece = surface_piece_mask(loc.mask, box, rgb.shape[:2], f) if loc is not None else None
    return rgb, box, f, piece


def piece_cells(
    piece: NDArray[np.bool_] | None, shape: tuple[int, int], cfg: SurfaceConfig
) -> NDArray[np.bool_]:
    """(h, w) cells of a padded crop of `shape` that count: those within cfg.piece_margin
    pixels of the piece (all of them when no piece was found)."""
    s = cfg.stride
    h, w = shape[0] // s, shape[1] // s
    if piece is None or not piece.any():
        return np.ones((h, w), np.bool_)
    cells = np.asarray(piece[: h * s, : w * s].reshape(h, s, w, s).any(axis=(1, 3)), np.uint8)
    reach = -(-cfg.piece_margin // s)
    if reach:
        kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
        cells = np.asarray(cv2.dilate(cells, kernel), np.uint8)
    return cells > 0


def window(arr: NDArray[Any], y: int, x: int, size: int) -> NDArray[Any]:
    """arr[y:y+size, x:x+size], zero-padded where it runs past the edge (y, x may be < 0)."""
    out = np.zeros((size, size, *arr.shape[2:]), arr.dtype)
    h, w = arr.shape[:2]
    y0, x0, y1, x1 = max(0, y), max(0, x), min(h, y + size), min(w, x + size)
    if y1 > y0 and x1 > x0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = arr[y0:y1, x0:x1]
    return out


def tile_origins(cells: NDArray[np.bool_], tile_cells: int) -> list[tuple[int, int]]:
    """Top-left cells of the grid-aligned tiles that hold at least one counted cell."""
    h, w = cells.shape
    return [
        (y, x)
        for y in range(0, h, tile_cells)
        for x in range(0, w, tile_cells)
        if cells[y : y + tile_cells, x : x + tile_cells].any()
    ]


# (B, 3, H, W) input -> cell logits (B, K, h, w): the deployed graph (onnxruntime) or the
# torch network behind it.
BranchRunner = Callable[[NDArray[np.float32]], NDArray[np.float32]]

# Tiles per run: enough to amortise a run's overhead, few enough that a run's activations stay
# in a core's cache. On the 2-core AMD EPYC VM (1 MB L2 per core) the branch took 2.7-2.8 ms of
# CPU a 96 px tile in runs of 4 or 8 tiles, 3.1 ms in runs of 48 (docs/BENCHMARKS.md); each
# tile's cells are the same whatever the run's size.
TILES_PER_RUN = 8


def counted_cells(
    run: BranchRunner,
    crop_rgb: NDArray[np.uint8],
    piece: NDArray[np.bool_] | None,
    cfg: SurfaceConfig,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """A crop's cell logits (K, h, w) and which cells count (h, w).

    Without tiles: the whole crop in one run, every cell counted. With tiles: the grid-aligned
    tiles that reach the piece, batched, each scored on its own (zero-padded past the crop, as
    the training patches are); only cells near the piece count (the others are -inf)."""
    count: NDArray[np.bool_]
    if cfg.tile is None:
        cells = np.asarray(run(surface_input(crop_rgb)[None])[0], np.float32)
        count = np.ones(cells.shape[1:], np.bool_)
    else:
        s, t = cfg.stride, cfg.tile
        count = piece_cells(piece, crop_rgb.shape[:2], cfg)
        h, w = count.shape[0], count.shape[1]
        origins = tile_origins(count, t // s)
        cells = np.empty((0, h, w), np.float32)
        for start in range(0, len(origins), TILES_PER_RUN):
            chunk = origins[start : start + TILES_PER_RUN]
            out = run(tile_inputs(crop_rgb, chunk, cfg))
            if not cells.size:
                cells = np.full((out.shape[1], h, w), -np.inf, np.float32)
            for (y, xx), c in zip(chunk, out, strict=True):
                dy, dx = min(t // s, h - y), min(t // s, w - xx)
                cells[:, y : y + dy, xx : xx + dx] = c[:, :dy, :dx]
    return cells, count


def counted_features(
    count: NDArray[np.bool_], runs: list[NDArray[np.float32]], cfg: SurfaceConfig
) -> NDArray[np.float32]:
    """(n, D) the features of the counted cells, in row-major order of `count`, from the runs
    `counted_cells` made (each (B, D, t, t) for its tiles, in its order; or the whole crop's)."""
    if cfg.tile is None:
        return np.ascontiguousarray(runs[0][0][:, count].T, np.float32)
    t = cfg.tile // cfg.stride  # tile side in cells
    h, w = count.shape
    index = np.full((h, w), -1, np.int64)
    index[count] = np.arange(int(count.sum()))
    feats = np.concatenate(runs) if runs else np.zeros((0, 1, t, t), np.float32)
    out = np.zeros((int(count.sum()), feats.shape[1]), np.float32)
    for (y, x), f in zip(tile_origins(count, t), feats, strict=True):
        rows = index[y : y + t, x : x + t]
        keep = rows >= 0
        dy, dx = rows.shape
        out[rows[keep]] = f[:, :dy, :dx].transpose(1, 2, 0)[keep]
    return out


def tile_inputs(
    crop_rgb: NDArray[np.uint8], origins: list[tuple[int, int]], cfg: SurfaceConfig
) -> NDArray[np.float32]:
    """(B, 3, tile, tile) branch inputs of the tiles at `origins` (top-left cells)."""
    assert cfg.tile is not None
    s, t = cfg.stride, cfg.tile
    return np.stack([surface_input(window(crop_rgb, y * s, x * s, t)) for y, x in origins])


def top_cells(cells: NDArray[np.float32], count: NDArray[np.bool_], n: int) -> NDArray[np.float64]:
    """(K, n): each class's `n` highest counted cell logits, highest first (-inf past the
    number of counted cells)."""
    k = cells.shape[0]
    flat = np.where(count[None], cells, -np.inf).reshape(k, -1).astype(np.float64)
    if flat.shape[1] < n:
        flat = np.concatenate([flat, np.full((k, n - flat.shape[1]), -np.inf)], axis=1)
    if n < flat.shape[1]:
        flat = -np.partition(-flat, n - 1, axis=1)[:, :n]
    return np.asarray(-np.sort(-flat, axis=1)[:, :n], np.float64)


def pool_top(top: NDArray[np.floating], n: int) -> NDArray[np.float64]:
    """The mean of the `n` highest of `top` (..., N) sorted highest first, over the finite
    ones: n = 1 is the highest cell. -inf where no cell counts."""
    t = np.asarray(top, np.float64)[..., :n]
    finite = np.isfinite(t)
    m = finite.sum(axis=-1)
    total = np.where(finite, t, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, total / np.maximum(m, 1), -np.inf)


def branch_scores(
    run: BranchRunner,
    crop_rgb: NDArray[np.uint8],
    piece: NDArray[np.bool_] | None,
    cfg: SurfaceConfig,
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """A crop's branch logit per class (K,), its highest counted cell, and the cell
    probabilities (K, h, w), 0 where a cell does not count (cells as `counted_cells` scores
    them). The highest cell, not a mean of the highest few: averaging ranked the validation
    photos no better (docs/MODEL.md, "One cell or several")."""
    cells, count = counted_cells(run, crop_rgb, piece, cfg)
    return scores_of_cells(cells, count)


def scores_of_cells(
    cells: NDArray[np.float32], count: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """`branch_scores` of cell logits (K, h, w) already run."""
    k = cells.shape[0]
    z = np.where(count[None], cells, -np.inf).reshape(k, -1).max(axis=1).astype(np.float64)
    with np.errstate(over="ignore"):
        probs = np.where(count[None], 1.0 / (1.0 + np.exp(-cells)), 0.0).astype(np.float32)
    return z, probs


# A surface heatmap is max-pooled to at most this many cells a side: enough to point at a
# scratch on the overlay, small enough to keep with every inspection.
SURFACE_HEATMAP_MAX = 32


def pool_max(grid: NDArray[np.float32], most: int = SURFACE_HEATMAP_MAX) -> NDArray[np.float32]:
    """(h, w) -> at most (most, most), each cell the maximum of the cells it covers."""
    h, w = grid.shape
    fy, fx = -(-h // most), -(-w // most)
    if fy == 1 and fx == 1:
        return grid
    hp, wp = -(-h // fy) * fy, -(-w // fx) * fx
    padded = np.full((hp, wp), -np.inf, np.float32)
    padded[:h, :w] = grid
    return padded.reshape(hp // fy, fy, wp // fx, fx).max(axis=(1, 3))


def surface_input(crop_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) in [-1, 1], tf_efficientnet_lite0's scaling."""
    x = crop_rgb.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def logit(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """log(p / (1 - p)), with p clipped away from 0 and 1."""
    q = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q) - np.log1p(-q), np.float64)


def fuse_probability(
    p_model: NDArray[np.floating],
    z_surface: NDArray[np.floating],
    w_model: float,
    w_surface: float,
    bias: float,
) -> NDArray[np.float64]:
    """sigmoid(w_model * logit(p_model) + w_surface * z_surface + bias): a package's `Fusion`."""
    z = w_model * logit(p_model) + w_surface * np.asarray(z_surface, np.float64) + bias
    return np.asarray(1.0 / (1.0 + np.exp(-z)), np.float64)
