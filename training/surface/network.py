"""The branch network: the first stages of tf_efficientnet_lite0 and a head, one logit per
class per 8 x 8 pixel cell (torch is imported on use, as in the rest of the package)."""

from __future__ import annotations

from typing import Any

from qc_model.errors import DataError
from qc_model.surface import SurfaceConfig

STAGES = 3  # stem + stages 0-2: stride 8


# The branch's architectures (`kito surface train --arch`); a checkpoint records its own.
#   s8:      stem + stages 0-2 of the backbone (stride 8, 40 channels), 3x3 + 1x1 head.
#   s8+s16:  the same plus stages 3-4 (stride 16, 112 channels), upsampled 2x and concatenated
#            with stage 2 before the head: more channels and a wider view at the same 8 px cells.
ARCHS = ("s8", "s8+s16")


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise DataError(f"unknown branch architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def build_surface_net(k: int, weights: str = "imagenet", arch: str = "s8") -> Any:
    """The branch network (ARCHS): (B, 3, H, W) -> (B, K, H / 8, W / 8) cell logits."""
    import torch
    from torch import nn

    from qc_model.network import build_model

    check_arch(arch)
    net: Any = build_model(num_classes=k, weights=weights).backbone
    low_channels = net.blocks[STAGES - 1][-1].conv_pwl.out_channels
    low = [net.conv_stem, net.bn1, *list(net.blocks)[:STAGES]]
    if arch == "s8":
        model: Any = nn.Sequential(*low, _head(low_channels, 64, k))
    else:
        high = nn.Sequential(net.blocks[STAGES], net.blocks[STAGES + 1])  # both at stride 16
        high_channels = high[-1][-1].conv_pwl.out_channels
        model = _two_scale(nn.Sequential(*low), high, _head(low_channels + high_channels, 96, k))
    with torch.no_grad():
        stride = 64 // model(torch.zeros(1, 3, 64, 64)).shape[-1]
    if stride != SurfaceConfig().stride:
        raise DataError(f"branch {arch} has stride {stride}, the service needs 8")
    return model


def _head(channels: int, width: int, k: int) -> Any:
    from torch import nn

    head = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU6(inplace=True),
        nn.Conv2d(width, k, 1),
    )
    nn.init.constant_(head[-1].bias, -4.0)  # most cells hold no defect
    return head


def _two_scale(low: Any, high: Any, head: Any) -> Any:
    """The s8+s16 network (torch is imported here, as everywhere in this module, on use)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class TwoScale(nn.Module):
        """Stride-8 features plus the next stage's, brought back to stride 8, into one head."""

        def __init__(self, low: nn.Module, high: nn.Module, head: nn.Sequential) -> None:
            super().__init__()
            self.low, self.high, self.head = low, high, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f8 = self.low(x)
            f16 = F.interpolate(self.high(f8), scale_factor=2.0, mode="nearest")
            # An odd stride-8 side gives a stride-16 side rounded up: cut the extra row/column.
            f16 = f16[:, :, : f8.shape[2], : f8.shape[3]]
            return self.head(torch.cat([f8, f16], dim=1))

    return TwoScale(low, high, head)


def net_arch(model: Any) -> str:
    """The ARCHS name of a branch network built by build_surface_net."""
    return "s8+s16" if hasattr(model, "high") else "s8"
