"""Which training recipe a data set gets, chosen from what its photos are, never from its name.

`kito train` (and `torchrun -m training.train`, and `kito retrain` for a champion without a
stored config) call `choose_recipe` when no --config is given: a named config under configs/
plus the few settings that follow from the data (input size, class balance). The reasons are
printed and written beside the run (recipe.json)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from qc_model.manifest import Manifest, Record
from qc_model.mat import detect_mat

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# Photos on the calibration mat (renders and phone photos of pieces): piece crop, frozen trunk.
ON_MAT = "train_default.yaml"
# Colour photos without the mat: the whole photo is the subject.
WHOLE_PHOTO = "train_photo_whole.yaml"
# Grey photos without the mat (e.g. X-ray, electroluminescence, thermal): no colour jitter.
GREY_PHOTO = "train_photo_grey.yaml"

SAMPLE = 12  # photos looked at for the mat and for colour: enough to see a consistent kind
MIN_SIZE, MAX_SIZE = 224, 320  # input side for whole photos: ImageNet's floor, a CPU ceiling
# Below this share of the rarest class, weight the classes; above it, the plain loss keeps
# accuracy at the argmax (the operating point is set by thresholds afterwards either way).
RARE_CLASS = 0.1
# Whole-photo configs fine-tune the whole network for FULL_TUNE_EPOCHS: measured on a real defect
# set, it beat training stages 4-6 on cached trunk features by 3.0 points of test accuracy
# (docs/BENCHMARKS.md, bench_real.py). On a CPU it costs a full pass per photo and epoch, about
# 12 photos/s at 288 px on 2 cores, so it is kept while the run fits FULL_TUNE_PASSES photo passes
# at 288 px (about 45 min there); a larger set trains stages 4-6 on cached features instead,
# which passes each photo through the frozen trunk once. A GPU fine-tunes the whole network.
FULL_TUNE_EPOCHS = 15
FULL_TUNE_PASSES = 30_000
CACHED_RECIPE = ["freeze_blocks=4", "epochs=10"]
# A frozen, cached trunk (docs/MODEL.md): an epoch then costs the head only, and the features of
# photos seen before come from the crop cache. A mat-recipe champion trained end to end on a GPU
# host is fine-tuned this way on a CPU host (docs/BENCHMARKS.md has the numbers behind the choice).
CPU_FREEZE_BLOCKS = 6


@dataclass(frozen=True)
class DataProperties:
    """What the recipe depends on, measured on the training split."""

    photos: int
    task: str
    native_side: int  # median shorter side in pixels
    mat_share: float  # sampled photos in which the calibration mat is found
    grey_share: float  # sampled photos whose three channels are equal
    rarest_class_share: float  # the least frequent label pattern's share of the photos


@dataclass(frozen=True)
class Recipe:
    config: Path
    overrides: list[str]
    reasons: list[str] = field(default_factory=list)
    properties: DataProperties | None = None

    def write(self, path: Path) -> None:
        data = {
            "config": self.config.name,
            "overrides": self.overrides,
            "reasons": self.reasons,
            "properties": asdict(self.properties) if self.properties else None,
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read(root: Path, r: Record) -> np.ndarray | None:
    img = cv2.imread(str(root / r.image), cv2.IMREAD_UNCHANGED)
    return None if img is None else np.asarray(img)


def _is_grey(img: np.ndarray) -> bool:
    if img.ndim == 2 or img.shape[2] == 1:
        return True
    c = img[..., :3].astype(np.int16)
    # A few levels of difference: JPEG chroma noise on a grey photo.
    return bool(
        np.abs(c[..., 0] - c[..., 1]).max() <= 3 and np.abs(c[..., 1] - c[..., 2]).max() <= 3
    )


def _has_mat(img: np.ndarray) -> bool:
    grey = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    if grey.dtype != np.uint8:
        grey = cv2.convertScaleAbs(grey, alpha=255.0 / max(float(grey.max()), 1.0))
    side = max(grey.shape)
    if side > 1600:  # the markers stay findable at this size; full phone photos are slow
        scale = 1600 / side
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return detect_mat(np.ascontiguousarray(grey)) is not None


def measure(manifest: Manifest, root: Path, seed: int = 0) -> DataProperties:
    """The data properties of the training split (all photos when no split says train)."""
    records = manifest.split("train") or manifest.records
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(records), size=min(SAMPLE, len(records)), replace=False)
    mats = greys = seen = 0
    for i in picked:
        img = _read(root, records[int(i)])
        if img is None:
            continue
        seen += 1
        greys += _is_grey(img)
        mats += _has_mat(img)
    patterns = Counter(tuple(sorted(r.labels)) for r in records)
    return DataProperties(
        photos=len(records),
        task=manifest.header.task,
        native_side=int(np.median([min(r.width, r.height) for r in records])) if records else 0,
        mat_share=mats / max(seen, 1),
        grey_share=greys / max(seen, 1),
        rarest_class_share=min(patterns.values()) / len(records) if records else 0.0,
    )


def full_tune_passes(photos: int, size: int, epochs: int = FULL_TUNE_EPOCHS) -> int:
    """Photo passes at 288 px that fine-tuning the whole network on `photos` photos costs."""
    return round(photos * epochs * (size / 288) ** 2)


def _budget(photos: int, epochs: int, passes: int) -> str:
    where = "within" if passes <= FULL_TUNE_PASSES else "over"
    return (f"{photos} photos x {epochs} epochs = {passes:,} passes at 288 px, {where} the CPU "
            f"budget of {FULL_TUNE_PASSES:,}")  # fmt: skip


def recipe_for(p: DataProperties, accelerated: bool = False) -> Recipe:
    """The named config and data-derived settings for these properties (pure); `accelerated`:
    a GPU trains, so the whole network fine-tunes whatever the size of the set."""
    if p.mat_share >= 0.5:
        why = f"the calibration mat is in {p.mat_share:.0%} of the sampled photos: piece crop"
        return Recipe(CONFIGS / ON_MAT, [], [why], p)
    grey = p.grey_share >= 0.9
    config = CONFIGS / (GREY_PHOTO if grey else WHOLE_PHOTO)
    reasons = [
        f"no calibration mat in {1 - p.mat_share:.0%} of the sampled photos: the whole photo",
        f"{p.grey_share:.0%} of the sampled photos are grey: "
        + ("no colour augmentation" if grey else "colour augmentation"),
    ]
    # The largest multiple of 32 not above the photos' own resolution: no detail is invented
    # by upscaling, and little is lost; bounded for CPU cost.
    size = int(np.clip(p.native_side // 32 * 32, MIN_SIZE, MAX_SIZE))
    reasons.append(f"photos {p.native_side} px on the shorter side: input {size} px")
    overrides = [f"preprocess.input_size={size}"]
    passes = full_tune_passes(p.photos, size)
    budget = _budget(p.photos, FULL_TUNE_EPOCHS, passes)
    if accelerated:
        reasons.append("a GPU trains: the whole network learns")
    elif passes <= FULL_TUNE_PASSES:
        reasons.append(f"{budget}: the whole network learns")
    else:
        overrides.extend(CACHED_RECIPE)
        reasons.append(f"{budget}: stages 4-6 learn on cached trunk features")
    if p.task == "single_label" and p.rarest_class_share < RARE_CLASS:
        overrides.append("imbalance=pos_weight")
        reasons.append(f"rarest class {p.rarest_class_share:.1%} of the photos: class weights")
    elif p.task == "single_label":
        overrides.append("imbalance=none")
        reasons.append(f"rarest class {p.rarest_class_share:.1%}: no class weights needed")
    return Recipe(config, overrides, reasons, p)


def choose_recipe(manifest_path: Path) -> Recipe:
    """Measure the data set at `manifest_path` and return its recipe."""
    import torch

    from training.dataset import load_manifest

    manifest, root = load_manifest(manifest_path)
    return recipe_for(measure(manifest, root), accelerated=torch.cuda.is_available())


def trunk_on_this_host(cfg: dict[str, Any], manifest: Path | None) -> list[str]:
    """A champion that fine-tuned its whole network: keep that on a GPU, and on a CPU for a
    whole-photo recipe while the data fits its budget (above); otherwise freeze and
    cache the trunk, as `kito train` would choose. Changes `cfg` in place; the notes say how."""
    import torch

    if torch.cuda.is_available():
        return []
    whole_photo = (cfg.get("preprocess") or {}).get("crop") == "none"
    if not whole_photo or manifest is None:
        cfg["freeze_blocks"] = CPU_FREEZE_BLOCKS
        return [f"freeze_blocks 0 -> {CPU_FREEZE_BLOCKS}: frozen, cached trunk"]
    data = Manifest.read(manifest)
    photos = len(data.split("train") or data.records)
    size = int((cfg.get("preprocess") or {}).get("input_size", 224))
    epochs = int(cfg.get("epochs", 30))
    passes = full_tune_passes(photos, size, epochs)
    budget = _budget(photos, epochs, passes)
    if passes <= FULL_TUNE_PASSES:
        return [f"freeze_blocks 0 kept: {budget}"]
    for item in CACHED_RECIPE:
        key, value = item.split("=")
        cfg[key] = int(value)
    return [f"{budget}: {', '.join(CACHED_RECIPE)} (cached trunk)"]
