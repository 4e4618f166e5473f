"""Which epoch becomes best.pt: the lowest val loss, or the task's own val metric."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train import _rows, make_dataset, run

from training.checkpoint_io import load_trained
from training.train import selection_rank


def test_rank_by_loss_or_by_the_tasks_metric_with_loss_breaking_ties() -> None:
    a = {"val_loss": 0.30, "val_accuracy": 0.90}
    b = {"val_loss": 0.32, "val_accuracy": 0.92}
    c = {"val_loss": 0.31, "val_accuracy": 0.92}
    assert min((a, b, c), key=lambda r: selection_rank(r, "loss")) is a
    assert min((a, b, c), key=lambda r: selection_rank(r, "metric")) is c
    ml = [{"val_loss": 0.2, "val_map": 0.5}, {"val_loss": 0.3, "val_map": 0.6}]
    assert min(ml, key=lambda r: selection_rank(r, "metric")) is ml[1]
    # No val metric (no val split, or no class present for mAP): the loss decides.
    assert selection_rank({"train_loss": 0.4}, "metric") == (0.4, 0.4)
    assert selection_rank({"val_loss": 0.2, "val_map": None}, "metric") == (0.2, 0.2)


@pytest.mark.parametrize("select_by", ["loss", "metric"])
def test_best_pt_is_the_epoch_the_setting_names(tmp_path: Path, select_by: str) -> None:
    manifest = make_dataset(tmp_path / "single", n=24, task="single_label")
    out = run(manifest, tmp_path / "run", "epochs=4", f"select_by={select_by}")
    rows = _rows(out)
    picked = min(rows, key=lambda r: selection_rank(r, select_by))
    best = load_trained(out / "best.pt")
    assert best.epoch == picked["epoch"]
    assert best.config["select_by"] == select_by
