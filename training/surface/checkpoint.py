"""surface.pt: a trained branch, its classes, its SurfaceConfig and what its training reported."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qc_model.errors import DataError
from qc_model.surface import SurfaceConfig
from training.surface.network import build_surface_net, net_arch

SURFACE_FORMAT = "kito-surface/1"


def save_surface(
    path: Path, model: Any, classes: Sequence[str], cfg: SurfaceConfig, info: dict[str, Any]
) -> None:
    import torch

    from training.atomic import write_atomic

    state = {
        "format": SURFACE_FORMAT,
        "arch": net_arch(model),
        "model": model.state_dict(),
        "classes": list(classes),
        "config": cfg.model_dump(mode="json"),
        "info": info,
    }
    write_atomic(path, lambda tmp: torch.save(state, tmp), suffix=".pt")


def load_surface(path: Path) -> tuple[Any, list[str], SurfaceConfig, dict[str, Any]]:
    import torch

    if not path.is_file():
        raise DataError(f"{path}: no such surface checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so, not a traceback
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != SURFACE_FORMAT:
        raise DataError(f"{path}: not a surface checkpoint (kito surface train writes them)")
    classes = list(state["classes"])
    model = build_surface_net(len(classes), weights="none", arch=state.get("arch", "s8"))
    model.load_state_dict(state["model"])
    return model.eval(), classes, SurfaceConfig.model_validate(state["config"]), state["info"]
