"""Training configuration: a YAML file plus `--set key=value` overrides, validated by pydantic."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qc_model.errors import DataError
from qc_model.preprocess import PreprocessConfig


class AugmentConfig(BaseModel):
    """Phone-capture imitation applied to the crop (training only); probabilities per photo."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    blur: float = Field(default=0.3, ge=0, le=1)  # defocus or hand shake
    noise: float = Field(default=0.3, ge=0, le=1)  # small-sensor noise in dim rooms
    jpeg: float = Field(default=0.5, ge=0, le=1)  # messaging apps recompress hard
    colour: float = Field(default=0.6, ge=0, le=1)  # white balance, exposure, contrast
    perspective: float = Field(
        default=0.4, ge=0, le=1
    )  # the phone is never quite parallel to the mat
    shadow: float = Field(default=0.3, ge=0, le=1)  # hand or phone shadow over part of the piece
    flip_rotate: bool = True  # a piece has no preferred orientation on the mat
    # Frozen-trunk runs: flip / quarter-turn each cached feature map at random (training only),
    # a new view each epoch without another pass of the trunk.
    feature_flip: bool = False


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backbone: str = "tf_efficientnet_lite0"
    weights: str = "imagenet"  # "imagenet" | "none" | path to a checkpoint.pt
    # Stages frozen (and cached): see docs/MODEL.md for the speed / accuracy trade-off.
    freeze_blocks: int = Field(default=6, ge=0)
    # Cached views per photo when the trunk is frozen: 1 clean + (cache_views - 1) augmented.
    cache_views: int = Field(default=4, ge=1, le=32)
    # "visual": train on the defects a crop can show; spec defects (size, colour, pair) are
    # measured against the catalog instead. "all": every class in the manifest.
    label_set: Literal["visual", "all"] = "visual"
    # BatchNorm statistics while training: "train" (batch statistics, the usual) or "frozen"
    # (running statistics, as in eval; gamma and beta still learn). kito retrain freezes them when
    # it starts from weights recovered from a package, whose statistics the graph does not hold.
    bn_stats: Literal["train", "frozen"] = "train"
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    warmup_epochs: float = Field(default=1.0, ge=0)
    schedule: Literal["cosine", "onecycle"] = "cosine"
    drop_rate: float = Field(default=0.2, ge=0, lt=1)
    imbalance: Literal["pos_weight", "sampler", "none"] = "pos_weight"
    max_pos_weight: float = Field(default=20.0, ge=1)
    # Single-label cross-entropy only: share of the target spread over the other classes.
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    # Which validation number picks best.pt: "loss" (lowest val loss), or "metric" (the task's
    # own: accuracy single-label, mAP multi-label; the lower loss breaks a tie).
    select_by: Literal["loss", "metric"] = "loss"
    # Evaluation and the exported model average the eight flips / quarter turns of the trunk's
    # output (qc_model.network.DefectNet.dihedral_tta): photos with no preferred orientation.
    dihedral_tta: bool = False
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(default=0, ge=0)  # torch CPU threads; 0 = torch's default
    workers: int = Field(
        default=0, ge=0
    )  # DataLoader workers for the uncached (full fine-tune) path
    cache_dir: str = ""  # crops cache; "" = $KITO_CACHE_DIR or ~/.cache/kito
    # Keep frozen-trunk features on disk under cache_dir, per photo: the next run (a retrain on
    # the same base data) computes the trunk only for photos it has not seen.
    feature_cache: bool = True
    preprocess: PreprocessConfig = Field(default_factory=lambda: PreprocessConfig())
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig())

    def crop_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


def default_cache_dir() -> Path:
    """Where piece crops are cached: $KITO_CACHE_DIR, else ~/.cache/kito."""
    return Path(os.environ.get("KITO_CACHE_DIR", Path.home() / ".cache" / "kito"))


# Options that lost their ablation and left TrainConfig (research/README.md), with the value
# that is now the only behaviour (None: any value, it only tuned a removed option). Old run
# configs and packages set them, so that value is dropped with a warning; any other is refused,
# since ignoring it would train something other than what was asked.
REMOVED: dict[str, tuple[object, str]] = {
    "pool": ("avg", "lse never beat avg in a finished run; the surface branch finds small defects"),
    "pool_r": (None, "it tuned the removed pool: lse"),
    "cam_loss": (0, "the per-cell loss did not help the defect network; the surface branch "
                 "learns where defects are"),
}  # fmt: skip


def drop_removed(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`data` without the removed options that ask for today's behaviour (a warning names each);
    a DataError for one that asks for the behaviour that left."""
    kept = dict(data)
    for key, (now, why) in REMOVED.items():
        if key not in kept:
            continue
        value = kept.pop(key)
        same = now is None or value == now
        if not same:
            raise DataError(
                f"{source}: setting '{key}: {value}' was removed ({why}); only {now!r} "
                "remains: delete the setting"
            )
        warnings.warn(
            f"{source}: setting '{key}' was removed ({why}); ignored, delete it",
            UserWarning,
            stacklevel=3,
        )
    return kept


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise DataError(f"--set {item!r}: expected key=value, e.g. --set epochs=5")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise DataError(f"--set {item!r}: empty key")
    # YAML scalars: 5 -> int, 1e-3 -> float, true -> bool, anything else stays a string.
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key.strip().split("."), value


def load_config(path: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read YAML (or defaults when None), apply dotted overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise DataError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DataError(f"{path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise DataError(f"{path}: expected a mapping of settings at the top level")
        data = loaded or {}
    for item in overrides:
        keys, value = _parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise DataError(f"--set {item!r}: {k} is not a section")
        node[keys[-1]] = value
    source = str(path) if path else "config"
    try:
        return TrainConfig.model_validate(drop_removed(data, source))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise DataError(f"{source}: setting '{where}': {err['msg']}") from None


def dump_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
