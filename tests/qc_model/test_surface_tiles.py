"""qc_model.surface's tiled scoring and the reduced copy the service measures on."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from qc_model.decode import reduce_whole, reduction_factor
from qc_model.locate import PieceLocation
from qc_model.mat import MatDetection
from qc_model.surface import (
    TILES_PER_RUN,
    SurfaceConfig,
    branch_scores,
    counted_cells,
    piece_cells,
    pool_top,
    surface_piece_mask,
    tile_origins,
    top_cells,
)


class CellMeans:
    """A stand-in branch whose cell logit is the mean of its own 8 x 8 pixels (channel 0) and,
    for a second class, minus that: no context, so tiles must reproduce the whole-crop cells
    exactly wherever they count. Records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []

    def __call__(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        self.batches.append(x.shape)
        b, _, h, w = x.shape
        m = x[:, 0].reshape(b, h // 8, 8, w // 8, 8).mean(axis=(2, 4))
        return np.stack([m * 10.0, -m * 10.0], axis=1).astype(np.float32)


def _crop() -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """A 200 x 296 crop: a ring-shaped piece on the left, a bright blob on the paper far right."""
    rng = np.random.default_rng(0)
    crop = rng.integers(60, 120, (200, 296, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:200, :296]
    r = np.hypot(yy - 100, xx - 90)
    piece = (r > 50) & (r < 62)
    crop[piece] = 150
    crop[20:36, 260:276] = 255  # glare on the mat, nowhere near the piece
    return crop, piece


def test_tiles_reproduce_the_whole_crop_where_cells_count_and_ignore_the_paper() -> None:
    crop, piece = _crop()
    whole_cfg = SurfaceConfig(stride=8)
    tiled_cfg = SurfaceConfig(stride=8, tile=48, piece_margin=8)
    z_whole, p_whole = branch_scores(CellMeans(), crop, piece, whole_cfg)
    runner = CellMeans()
    z_tiled, p_tiled = branch_scores(runner, crop, piece, tiled_cfg)
    count = piece_cells(piece, crop.shape[:2], tiled_cfg)
    assert p_whole.shape == p_tiled.shape == (2, 25, 37)
    np.testing.assert_allclose(p_tiled[:, count], p_whole[:, count], rtol=1e-6)
    assert np.all(p_tiled[:, ~count] == 0.0)
    # The glare is the brightest cell of the whole crop, but it is not on the piece.
    assert z_whole[0] == pytest.approx(10.0 * (255 / 127.5 - 1.0), abs=1e-4)
    assert z_tiled[0] < z_whole[0] - 1.0
    assert z_tiled[0] == pytest.approx(np.log(p_tiled[0].max() / (1 - p_tiled[0].max())), abs=1e-3)
    # Only the tiles that reach the piece ran, all of the training patch's size, in runs of
    # at most TILES_PER_RUN.
    tiles = tile_origins(count, 6)
    assert len(tiles) > TILES_PER_RUN
    assert [b[0] for b in runner.batches] == [
        min(TILES_PER_RUN, len(tiles) - i) for i in range(0, len(tiles), TILES_PER_RUN)
    ]
    assert all(b[1:] == (3, 48, 48) for b in runner.batches)
    assert len(tiles) < 5 * 7  # the whole grid is 5 x 7 tiles


def test_without_a_piece_every_cell_counts() -> None:
    crop, _ = _crop()
    cfg = SurfaceConfig(stride=8, tile=48)
    z, p = branch_scores(CellMeans(), crop, None, cfg)
    z_whole, p_whole = branch_scores(CellMeans(), crop, None, SurfaceConfig(stride=8))
    np.testing.assert_allclose(z, z_whole, rtol=1e-6)
    np.testing.assert_allclose(p, p_whole, rtol=1e-6)
    assert piece_cells(np.zeros((16, 16), np.bool_), (16, 16), cfg).all()  # nothing found


def test_a_class_logit_can_average_its_highest_counted_cells() -> None:
    crop, piece = _crop()
    cfg = SurfaceConfig(stride=8, tile=48, piece_margin=8)
    cells, count = counted_cells(CellMeans(), crop, piece, cfg)
    counted = np.sort(cells[:, count], axis=1)[:, ::-1]  # (2, cells that count), highest first
    top = top_cells(cells, count, 5)
    np.testing.assert_allclose(top, counted[:, :5], rtol=1e-6)
    z, p = branch_scores(CellMeans(), crop, piece, cfg)
    np.testing.assert_allclose(z, counted[:, 0], rtol=1e-6)  # the highest counted cell
    np.testing.assert_allclose(pool_top(top, 1), counted[:, 0], rtol=1e-6)
    np.testing.assert_allclose(pool_top(top, 4), counted[:, :4].mean(axis=1), rtol=1e-6)
    assert np.all(p[:, ~count] == 0.0)
    # Fewer counted cells than asked for: the mean of those there are; none: -inf.
    whole, _ = counted_cells(CellMeans(), crop, None, SurfaceConfig(stride=8))
    six = np.zeros(whole.shape[1:], np.bool_)
    six[:3, :2] = True
    few = top_cells(whole, six, 10)
    assert np.isfinite(few).sum(axis=1).tolist() == [6, 6]
    assert pool_top(few[0], 10) == pytest.approx(whole[0, :3, :2].mean(), rel=1e-6)
    assert pool_top(np.full(3, -np.inf), 2) == -np.inf


def test_piece_cells_reach_the_margin_around_the_mask() -> None:
    piece = np.zeros((80, 80), np.bool_)
    piece[40, 40] = True  # cell (5, 5)
    cells = piece_cells(piece, (80, 80), SurfaceConfig(stride=8, tile=16, piece_margin=16))
    assert cells.shape == (10, 10) and cells.sum() == 25
    assert cells[3:8, 3:8].all()
    tight = piece_cells(piece, (80, 80), SurfaceConfig(stride=8, tile=16, piece_margin=0))
    assert tight.sum() == 1 and tight[5, 5]


def test_a_tile_must_be_whole_cells() -> None:
    with pytest.raises(ValueError, match="not a multiple of the stride"):
        SurfaceConfig(stride=8, tile=100)


def test_the_piece_mask_follows_the_crop_and_its_resample() -> None:
    mask = np.zeros((400, 400), np.uint8)
    mask[100:120, 200:300] = 255
    m = surface_piece_mask(mask, (180, 80, 380, 280), (104, 104), 0.5)  # 200 px box, halved
    assert m.shape == (104, 104) and not m[100:].any() and not m[:, 100:].any()
    ys, xs = np.nonzero(m)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 19, 10, 59)


def test_reduce_whole_matches_the_decoders_factor_and_averages_blocks() -> None:
    assert reduction_factor(4032, 1000) == 4 and reduction_factor(2048, 1000) == 2
    assert reduction_factor(1900, 1000) == 1
    img = np.zeros((21, 41, 3), np.uint8)
    img[0:2, 0:2] = (0, 100, 200)
    img[0, 0] = (4, 100, 200)
    small, f = reduce_whole(img, 15)
    assert f == 2 and small.shape == (10, 20, 3)  # the odd last row and column are left out
    assert small[0, 0].tolist() == [1, 100, 200] and small[5, 5].tolist() == [0, 0, 0]
    same, f1 = reduce_whole(img, 30)  # 41 / 2 < 30
    assert f1 == 1 and same is img


def test_a_location_and_a_mat_found_on_the_copy_carry_up_to_the_photo() -> None:
    mask = np.zeros((50, 60), np.uint8)
    mask[10:20, 30:45] = 255
    mat = MatDetection(
        image_to_mat=np.array([[0.5, 0.0, -3.0], [0.0, 0.5, -1.0], [0.0, 0.0, 1.0]]),
        marker_ids=(1, 2),
        px_per_mm=2.0,
        reprojection_error_mm=0.1,
    )
    loc = PieceLocation(mask, [(30, 10, 45, 20)], (30, 10, 45, 20), 0.05, False, mat)
    big = loc.enlarged(4, (203, 241))
    assert big.mask.shape == (203, 241) and big.bbox == (120, 40, 180, 80)
    assert big.boxes == [(120, 40, 180, 80)] and big.area_fraction == loc.area_fraction
    ys, xs = np.nonzero(big.mask)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (40, 80, 120, 180)
    assert big.mat is not None and big.mat.px_per_mm == 8.0
    # The centre of copy pixel (x, y) is the centre of its 4 x 4 block in the photo.
    for x, y in [(0, 0), (30.0, 10.0), (59, 49)]:
        here = mat.to_mat(np.array([[x, y]]))
        there = big.mat.to_mat(np.array([[4 * x + 1.5, 4 * y + 1.5]]))
        np.testing.assert_allclose(there, here, atol=1e-9)


def test_counted_features_are_the_counted_cells_of_the_same_runs_in_grid_order() -> None:
    """The features kept beside each tiled run, gathered for the counted cells, are what the
    whole grid of every channel would give at those cells, in row-major order."""
    from qc_model.surface import counted_features

    crop, piece = _crop()
    cfg = SurfaceConfig(stride=8, tile=48, piece_margin=8)
    kept: list[NDArray[np.float32]] = []
    branch = CellMeans()

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        cells = branch(x)
        b, _, h, w = cells.shape
        # Three feature channels that depend on the cell's place in its tile and its pixels.
        pos = np.broadcast_to(np.arange(h * w, dtype=np.float32).reshape(1, 1, h, w), (b, 1, h, w))
        kept.append(np.concatenate([cells, cells * 2.0 + pos, pos], axis=1)[:, 2:])
        return cells

    cells, count = counted_cells(run, crop, piece, cfg)
    feats = counted_features(count, kept, cfg)
    assert feats.shape == (int(count.sum()), 3)

    def run_all(x: NDArray[np.float32]) -> NDArray[np.float32]:
        c = branch(x)
        b, _, h, w = c.shape
        pos = np.broadcast_to(np.arange(h * w, dtype=np.float32).reshape(1, 1, h, w), (b, 1, h, w))
        return np.concatenate([c, c * 2.0 + pos, pos], axis=1)

    grid, count2 = counted_cells(run_all, crop, piece, cfg)
    assert np.array_equal(count, count2)
    np.testing.assert_array_equal(feats, grid[2:][:, count].T)
    np.testing.assert_array_equal(cells, grid[:2])
    whole = SurfaceConfig(stride=8)
    one = [grid[None, 2:]]
    np.testing.assert_array_equal(counted_features(count, one, whole), grid[2:][:, count].T)
