"""Per-cell class-map targets from defect masks: cropping, augmentation, cells, loss, training."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record
from qc_model.mat import DEFAULT_MAT
from qc_model.preprocess import PreprocessConfig, crop_to_piece
from training.cell_targets import CellSpec, cell_loss, extract_mask, mask_stack, to_cells

CLASSES = ("scratch", "tarnish", "pitting")


def _photo_set(root: Path, n: int = 4) -> tuple[Manifest, Path]:
    """Discs on paper; each has a scratch drawn at a known place, with its mask; odd ones are
    also labelled tarnish without a mask (as a QC decision would be)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    records = []
    for i in range(n):
        img = np.full((180, 240, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
        cx, cy = 100 + 10 * i, 90
        cv2.circle(img, (cx, cy), 40, (40, 170, 210), -1)
        mask = np.zeros((180, 240), np.uint8)
        mask[cy - 30 : cy - 26, cx - 30 : cx - 20] = 255  # upper-left of the disc
        img[mask > 0] = (20, 40, 60)
        cv2.imwrite(str(root / f"p{i}.png"), img)
        cv2.imwrite(str(root / "masks" / f"p{i}_scratch.png"), mask)
        labels = ["scratch", "tarnish"] if i % 2 else ["scratch"]
        records.append(
            Record(
                id=f"p{i}", image=f"p{i}.png", width=240, height=180, piece_id=f"piece{i}",
                sha256=hashlib.sha256((root / f"p{i}.png").read_bytes()).hexdigest(),
                labels=labels, masks={"scratch": f"masks/p{i}_scratch.png"},
                split="train", source="synthetic",
            )
        )  # fmt: skip
    m = Manifest(header=Header(name="cells", classes=list(CLASSES)), records=records)
    m.write(root / "manifest.jsonl")
    return m, root


def test_masks_follow_the_crop_and_zero_past_the_frame(tmp_path: Path) -> None:
    m, root = _photo_set(tmp_path / "d")
    rec = m.records[0]
    cfg = PreprocessConfig(input_size=64)
    box = crop_to_piece(cv2.imread(str(root / rec.image)), cfg).box
    stack, valid = mask_stack(rec, root, CLASSES, box, 64)
    assert stack.shape == (64, 64, 3) and valid.tolist() == [True, True, True]
    ys, xs = np.nonzero(stack[:, :, 0])
    # The scratch sits in the upper-left quarter of the crop; the other classes are empty.
    assert len(xs) and xs.max() < 32 and ys.max() < 32
    assert not stack[:, :, 1:].any()
    # Present without a mask: no cell targets (not "nowhere").
    _, valid_odd = mask_stack(m.records[1], root, CLASSES, box, 64)
    assert valid_odd.tolist() == [True, False, True]
    # Past the frame the mask is empty, not a replicated edge.
    full = np.zeros((10, 10), np.uint8)
    full[:, 0] = 255
    out = extract_mask(full, (-5, 0, 5, 10))
    assert out[:, :5].sum() == 0 and (out[:, 5] == 255).all()


def test_a_mask_of_another_size_or_a_missing_mask_is_refused(tmp_path: Path) -> None:
    m, root = _photo_set(tmp_path / "d")
    bad = m.records[0].model_copy(update={"width": 100})
    with pytest.raises(DataError, match=r"p0_scratch\.png is 240x180, the photo 100x180"):
        mask_stack(bad, root, CLASSES, (0, 0, 100, 100), 32)
    gone = m.records[0].model_copy(update={"masks": {"scratch": "masks/none.png"}})
    with pytest.raises(DataError, match="missing or unreadable"):
        mask_stack(gone, root, CLASSES, (0, 0, 100, 100), 32)


def test_cells_mark_where_a_class_touches() -> None:
    stack = np.zeros((64, 64, 2), np.uint8)
    stack[3, 40, 0] = 1  # one pixel: row block 0, column block 2 of a 4 x 4 grid
    cells = to_cells(stack, (4, 4))
    assert cells.shape == (2, 4, 4)
    assert cells[0].sum() == 1 and cells[0, 0, 2] == 1 and cells[1].sum() == 0


def test_geometry_moves_masks_and_colour_does_not() -> None:
    import albumentations as A

    from training.augment import apply_with_mask

    img = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32, 2), np.uint8)
    mask[2, 3, 1] = 1
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    _, moved = apply_with_mask(flip, img, mask)
    assert moved[2, 28, 1] == 1 and moved.sum() == 1
    colour = A.Compose([A.RandomBrightnessContrast((0.3, 0.3), (0.3, 0.3), p=1.0)])
    out, same = apply_with_mask(colour, img + 100, mask)
    assert np.array_equal(same, mask) and not np.array_equal(out, img + 100)


def test_cell_loss_counts_known_maps_only() -> None:
    cells = torch.zeros(1, 2, 2, 2)
    cells[0, 0, 0, 0] = 1
    good = torch.full((1, 2, 2, 2), -8.0)
    good[0, 0, 0, 0] = 8.0
    valid = torch.tensor([[True, False]])
    low = cell_loss(good, cells, valid)
    assert float(low) < 1e-3
    # Whatever the unknown map says, the loss does not change; a wrong known map raises it.
    other = good.clone()
    other[0, 1] = 8.0
    assert torch.equal(cell_loss(other, cells, valid), low)
    wrong = good.clone()
    wrong[0, 0, 0, 0] = -8.0
    assert float(cell_loss(wrong, cells, valid)) > 1.0
    with pytest.raises(DataError, match="class map"):
        cell_loss(good, torch.zeros(1, 2, 3, 3), valid)


def test_cached_views_keep_their_cells_on_disk(tmp_path: Path) -> None:
    from qc_model.network import build_model
    from training.augment import build_augment
    from training.config import load_config
    from training.dataset import CropDataset, CropStore, cache_views
    from training.feature_cache import FeatureCache

    m, root = _photo_set(tmp_path / "d")
    cfg = load_config(None, ["preprocess.input_size=64"])
    store = CropStore(root, cfg.preprocess, tmp_path / "cache")
    spec = CellSpec(CLASSES, (2, 2))
    model = build_model(num_classes=3, weights="none", freeze_blocks=6)
    disk = FeatureCache(tmp_path / "cache", model, cfg.preprocess, cfg.augment)
    aug = build_augment(cfg.augment, 0)
    plain = CropDataset(m.records, np.zeros(len(m.records)), store, aug)
    # Features cached by a run without cells are computed again (with new views) for cells.
    cache_views(model, plain, 2, torch.device("cpu"), quiet=True, disk=disk)[0]
    data = CropDataset(m.records, np.zeros(len(m.records)), store, aug, cells=spec)
    calls = []
    trunk = model.forward_trunk
    model.forward_trunk = lambda x: calls.append(len(x)) or trunk(x)  # type: ignore[method-assign]
    feats, cells = cache_views(model, data, 2, torch.device("cpu"), quiet=True, disk=disk)
    assert sum(calls) == 2 * len(m.records) and cells is not None
    targets, valid = cells
    assert targets.shape == (4, 2, 3, 2, 2) and valid[:, 1].tolist() == [True, False] * 2
    assert targets[:, 0, 0, 0, 0].all()  # clean view: the scratch is in the upper-left cell
    assert targets[:, :, 0].sum(dim=(2, 3)).min() >= 1  # each augmented view keeps it somewhere
    calls.clear()
    feats2, cells2 = cache_views(model, data, 2, torch.device("cpu"), quiet=True, disk=disk)
    assert calls == [] and torch.equal(feats, feats2) and cells2 is not None
    assert torch.equal(cells2[0], targets) and torch.equal(cells2[1], valid)
    # The crop boxes were kept beside the crops, as the crop located them.
    box_file = next((tmp_path / "cache" / "crops").rglob("*.box"))
    assert len(box_file.read_text().split()) == 4
    first = m.records[0]
    expected = crop_to_piece(cv2.imread(str(root / first.image)), cfg.preprocess).box
    assert CropStore(root, cfg.preprocess, tmp_path / "cache").box(first) == expected


class _Toy(nn.Module):
    """Logits from one parameter, class map from another: only the cell loss reaches `cam`."""

    def __init__(self) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(2))
        self.cam = nn.Parameter(torch.zeros(2, 2, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        return self.logit.expand(b, 2), self.cam.expand(b, 2, 2, 2)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_training_steps_learn_from_cells_only_when_asked(weight: float) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from training.train import train_one_epoch
    from training.train_utils import Dist

    toy = _Toy()
    cells = torch.zeros(4, 2, 2, 2, dtype=torch.uint8)
    cells[:, 0, 0, 0] = 1
    batch = TensorDataset(
        torch.zeros(4, 1), torch.ones(4, 2), cells, torch.ones(4, 2, dtype=torch.bool)
    )
    opt = torch.optim.SGD(toy.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    d = Dist()
    train_one_epoch(
        toy, nn.BCEWithLogitsLoss(), opt, sched, DataLoader(batch, batch_size=4),
        torch.device("cpu"), 0, d, cam_loss=weight,
    )  # fmt: skip
    moved = toy.cam.detach()
    if weight == 0:
        assert torch.equal(moved, torch.zeros(2, 2, 2))
    else:  # towards the mask: up where the scratch is, down everywhere else
        assert moved[0, 0, 0] > 0 and (moved[0].flatten()[1:] < 0).all() and (moved[1] < 0).all()
