"""SurfaceTrainConfig: every setting of `kito surface train`, in one validated model."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class SurfaceTrainConfig(BaseModel):
    """How a surface branch is trained (training.surface.train.train_surface).

    The ranges are the command line's. `arch`, `mine_every` and `mine_photos` are checked by
    train_surface itself, before anything is read, so that a wrong value is a DataError (a
    one-line message and exit code 2 from `kito`) naming the choices, as it always was.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The classes to learn (default: the manifest's visual defects).
    classes: list[str] | None = None
    # The scale to train and serve at (default: the median the mat gives on the train photos).
    px_per_mm: float | None = None
    steps: int = Field(default=5000, ge=1)  # optimizer steps
    batch: int = Field(default=32, ge=1)  # patches per step
    patch: int = Field(default=96, ge=16)  # patch side in px, a multiple of the 8 px cells
    lr: float = Field(default=1e-3, ge=0)
    pos_weight: float = Field(default=5.0, ge=0)  # weight of defect cells in the BCE
    limit: int = Field(default=0, ge=0)  # the first N training photos (0: all)
    workers: int = Field(default=1, ge=0)  # processes that make the crops (<= 1: this one)
    seed: int = 0
    cache: Path | None = None  # the crops' folder (default: <out>/samples)
    # Train and score on the photos the photo gate passes (training.judged). A defect mask on
    # a photo too blurred or too far to show the defect teaches the branch to call plain metal
    # a defect; the service never asks about such a photo anyway.
    judged_only: bool = False
    # Negatives: this share of the patches without an aimed defect are centred on the piece
    # rather than anywhere in the crop.
    piece_fraction: float = Field(default=0.5, ge=0, le=1)
    # With mine_every > 0, every that many steps the branch is scored on mine_photos training
    # crops as the service scores them, and hard_fraction of the negatives are then centred on
    # its most confident wrong cells (mining.mine_hard_negatives): a link crossing or an edge
    # that reads as a scratch.
    hard_fraction: float = Field(default=0.5, ge=0, le=1)
    mine_every: int = 1000
    mine_photos: int = 400
    # The network (network.ARCHS); "s8" leaves out the backbone's stride-16 stages (half the
    # training time, weaker on every surface class: docs/MODEL.md, "Surface branch").
    arch: str = "s8+s16"

    def settings(self) -> dict[str, float | int | str]:
        """What a checkpoint records of how it was trained (surface.pt's info["settings"])."""
        return {
            "steps": self.steps,
            "batch": self.batch,
            "patch": self.patch,
            "lr": self.lr,
            "pos_weight": self.pos_weight,
            "seed": self.seed,
            "piece_fraction": self.piece_fraction,
            "hard_fraction": self.hard_fraction,
            "mine_every": self.mine_every,
            "mine_photos": self.mine_photos,
            "arch": self.arch,
        }
