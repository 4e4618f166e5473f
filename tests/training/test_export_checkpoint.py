"""Export from a real checkpoint (DefectNet, the checkpoint format) end to end with kito eval,
the CLI's one-line refusals, a package's network recovered for fine-tuning, and test-time
augmentation kept in the graph."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from export_data import CLASSES
from torch import nn

from qc_model.preprocess import PreprocessConfig, preprocess
from training.quantize import quantize_package


def test_export_from_a_real_checkpoint(dataset: Path, tmp_path: Path) -> None:
    """kito export's path end to end: M1's DefectNet and checkpoint format, small input size."""
    from qc_model.inference import Inferencer
    from qc_model.network import build_model
    from training.calibrate import apply_temperature, logits_from_probs
    from training.checkpoint_io import save_checkpoint
    from training.config import TrainConfig
    from training.export import export_package
    from training.predict import predict_manifest

    cfg = TrainConfig(preprocess=PreprocessConfig(input_size=64), freeze_blocks=0)
    torch.manual_seed(0)
    model = build_model(num_classes=len(CLASSES), weights="none").eval()
    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(
        ckpt,
        model,
        cfg,
        classes=CLASSES,
        task="multilabel",
        epoch=1,
        dataset_versions={"train": "v0"},
        metrics={},
    )
    manifest = dataset / "manifest.jsonl"
    meta = export_package(ckpt, manifest, tmp_path / "lite0", parity_samples=3)
    assert meta.metrics["parity"]["samples"] == 3
    assert meta.metrics["parity"]["max_abs_probs"] <= 1e-4
    assert meta.dataset_versions["train"] == "v0" and meta.dataset_versions["calibration"]
    assert meta.training["epoch"] == 1 and meta.preprocess.input_size == 64
    assert set(meta.thresholds) == set(CLASSES)
    assert meta.metrics["val"]["photos"] == 6 and meta.metrics["val"]["any_defect"]["n"] == 6
    # Serving's path agrees with the torch evaluation path on every val photo, calibrated.
    raw, _, records = predict_manifest(model, manifest, "val", preprocess=cfg.preprocess)
    expected = apply_temperature(
        logits_from_probs(raw, "multilabel"), meta.temperature, "multilabel"
    )
    preds = Inferencer(tmp_path / "lite0").predict([dataset / r.image for r in records])
    got = np.array([list(p.probs.values()) for p in preds])
    np.testing.assert_allclose(got, expected, atol=1e-4)

    # kito eval's path on the same checkpoint (the tiny set has no test split: score val).
    from training.evaluate import evaluate

    result = evaluate(ckpt, manifest, tmp_path / "eval", split="val")
    assert result.metrics["scores"]["photos"] == 6
    assert result.metrics["calibration"]["temperature"] == pytest.approx(meta.temperature)
    assert (tmp_path / "eval" / "index.html").is_file()

    # kito eval --package: the package as serving runs it, at its own thresholds.
    from training.evaluate import evaluate_package
    from training.metrics import best_f1, macro_f1

    rep = evaluate_package(tmp_path / "lite0", manifest, tmp_path / "eval-pkg", split="val")
    m = rep.metrics
    assert m["model_version"] == f"{meta.name}@{meta.version}" and m["scores"]["photos"] == 6
    assert m["thresholds"] == {c: meta.thresholds[c].model_dump() for c in CLASSES}
    y = np.array([[int(c in r.labels) for c in CLASSES] for r in records])
    cut = [meta.thresholds[c].threshold for c in CLASSES]
    assert m["scores"]["macro_f1"] == pytest.approx(macro_f1(got, y, cut))
    assert m["scores"]["per_class"][0]["threshold"] == pytest.approx(cut[0])
    # Each class at its best threshold on these photos: a bound on macro-F1, reached there.
    best = [best_f1(got[:, k], y[:, k].astype(bool)) for k in range(len(CLASSES))]
    assert m["scores"]["best_f1"] == pytest.approx([b.f1 for b in best])
    present = [b.f1 for b, k in zip(best, range(len(CLASSES)), strict=True) if y[:, k].any()]
    assert m["scores"]["macro_f1_ceiling"] == pytest.approx(np.mean(present))
    assert m["scores"]["macro_f1"] <= m["scores"]["macro_f1_ceiling"] + 1e-9
    assert macro_f1(got, y, [b.threshold for b in best]) == pytest.approx(np.mean(present))
    for name in ("index.html", "metrics.json", "reliability.png", "pr_curves.png"):
        assert (tmp_path / "eval-pkg" / name).is_file(), name
    page = (tmp_path / "eval-pkg" / "index.html").read_text()
    assert "the package&#x27;s thresholds" in page
    assert "macro-F1 ceiling" in page and "best F1 (any threshold)" in page


def test_cli_refuses_bad_input_in_one_line(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    args = ["export", "--checkpoint", str(tmp_path / "none.pt")]
    args += ["--calibration-manifest", str(dataset), "--out", str(tmp_path / "pkg")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "checkpoint not found" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--manifest",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    both = ["eval", "--checkpoint", "c.pt", "--package", str(tmp_path), "--manifest", "m"]
    result = CliRunner().invoke(app, [*both, "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "exactly one of --checkpoint and --package" in result.output
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--package",
            str(tmp_path / "no-pkg"),
            "--manifest",
            str(dataset),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_package_gives_back_its_network_for_fine_tuning(dataset: Path, tmp_path: Path) -> None:
    """kito retrain's start when the champion has no checkpoint: the weights from its graph."""
    from qc_model.inference import Inferencer
    from qc_model.network import build_model
    from training.checkpoint_io import save_checkpoint
    from training.config import TrainConfig
    from training.export import export_package
    from training.package_weights import (
        RecoveryError,
        _check_parity,
        checkpoint_from_package,
        network_from_package,
    )

    cfg = TrainConfig(preprocess=PreprocessConfig(input_size=64), freeze_blocks=0)
    torch.manual_seed(1)
    model = build_model(num_classes=len(CLASSES), weights="none").eval()
    with torch.no_grad():  # BatchNorm statistics far from the identity, so folding matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(ckpt, model, cfg, classes=CLASSES, task="multilabel", epoch=0,
                    dataset_versions={"train": "v0"}, metrics={})  # fmt: skip
    manifest = dataset / "manifest.jsonl"
    meta = export_package(ckpt, manifest, tmp_path / "pkg", parity_samples=2)

    net = network_from_package(tmp_path / "pkg")
    assert net.pool == "avg"
    # The rebuilt network through serving's preprocessing gives the package's probabilities.
    photos = sorted((dataset / "images").glob("*.png"))[:4]
    x = torch.stack(
        [torch.from_numpy(preprocess(cv2.imread(str(p)), meta.preprocess)[0]) for p in photos]
    )
    with torch.no_grad():
        ours = torch.sigmoid(net(x)[0] / meta.temperature).numpy()
        original = torch.sigmoid(model(x)[0] / meta.temperature).numpy()
    served = np.array(
        [list(p.probs.values()) for p in Inferencer(tmp_path / "pkg").predict(photos)]
    )
    np.testing.assert_allclose(ours, served, atol=1e-4)
    np.testing.assert_allclose(ours, original, atol=1e-4)

    # As a checkpoint: `weights: PATH` starts from it, and frozen statistics keep it exact in
    # train mode (dropout off), where batch statistics would not.
    weights = checkpoint_from_package(tmp_path / "pkg", tmp_path / "w" / "champion.pt")
    for bn_stats, same in (("frozen", True), ("train", False)):
        torch.manual_seed(0)
        start = build_model(num_classes=len(CLASSES), weights=weights,
                            drop_rate=0.0, bn_stats=bn_stats).train()  # fmt: skip
        with torch.no_grad():
            train_mode = torch.sigmoid(start(x)[0] / meta.temperature).numpy()
        assert np.allclose(train_mode, served, atol=1e-4) == same, bn_stats

    # The check can fail: a network that is not the graph's is refused.
    with torch.no_grad():
        net.classifier.bias.add_(0.5)
    with pytest.raises(RecoveryError, match="differs from the graph"):
        _check_parity(net, tmp_path / "pkg", 64, meta.temperature, "multilabel", 1e-4)
    # An INT8 package gives its weights back dequantized: each within its quantization step of
    # the FP32 package's, and the rebuilt network close to the FP32 one (an INT8 champion is
    # still fine-tuned from, not replaced by ImageNet weights).
    exact = network_from_package(tmp_path / "pkg").state_dict()
    convs = [k for k, v in exact.items() if v.ndim == 4]
    assert convs
    for fmt in ("qoperator", "qdq"):  # integer convolutions, or float ones fed dequantized
        int8 = tmp_path / f"int8-{fmt}"
        quantize_package(tmp_path / "pkg", manifest, int8, max_drop=100.0, fmt=fmt)
        back = network_from_package(int8)
        for k in convs:
            w, q = exact[k], back.state_dict()[k]
            step = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 63  # 7-bit per-channel steps
            assert bool(((q - w).abs() <= 0.51 * step + 1e-7).all()), (fmt, k)
        with torch.no_grad():
            rebuilt = torch.sigmoid(back(x)[0] / meta.temperature).numpy()
        assert np.abs(rebuilt - ours).max() < 0.05, fmt


def test_export_keeps_dihedral_test_time_augmentation(dataset: Path, tmp_path: Path) -> None:
    """A whole-photo recipe's eight-view mean is part of the graph: the package scores what
    kito eval scored (parity), and the checkpoint restores the setting."""
    from qc_model.network import build_model
    from training.checkpoint_io import load_trained, save_checkpoint
    from training.config import TrainConfig
    from training.export import export_package

    pre = PreprocessConfig(input_size=64, crop="none")
    cfg = TrainConfig(preprocess=pre, freeze_blocks=4, dihedral_tta=True)
    torch.manual_seed(0)
    model = build_model(num_classes=len(CLASSES), weights="none", freeze_blocks=4).eval()
    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(
        ckpt, model, cfg, classes=CLASSES, task="multilabel", epoch=1,
        dataset_versions={"train": "v0"}, metrics={},
    )  # fmt: skip
    assert load_trained(ckpt).model.dihedral_tta
    meta = export_package(ckpt, dataset / "manifest.jsonl", tmp_path / "tta", parity_samples=3)
    assert meta.metrics["parity"]["samples"] == 3
    assert meta.metrics["parity"]["max_abs_probs"] <= 1e-4
    assert meta.training["config"]["dihedral_tta"] is True
