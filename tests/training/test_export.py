"""Export: the calibrated graph, parity that can fail, atomic writes, INT8 and its accuracy gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qc_model.manifest import Header, Manifest, Record
from qc_model.mat import DEFAULT_MAT
from qc_model.package import ClassThreshold, PackageMeta, load_package
from qc_model.preprocess import PreprocessConfig, preprocess
from qc_model.taxonomy import TAXONOMY_VERSION
from training.export import CalibratedNet, ExportError, build_package
from training.quantize import quantize_package

CLASSES = ["scratch", "tarnish", "bent"]
SIZE = 32


class TinyNet(nn.Module):
    """DefectNet's forward contract at toy size: (logits (B,K), cam (B,K,h,w))."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        # A stem, then a 1x1 convolution: the trunk INT8 quantizes; the class map stays float.
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU()
        )
        self.fc = nn.Linear(8, len(CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)  # (B, C, h, w)
        cam = torch.einsum("kc,bchw->bkhw", self.fc.weight, f) + self.fc.bias[None, :, None, None]
        return cam.mean(dim=(2, 3)), cam


def _photo(rng: np.random.Generator) -> np.ndarray:
    img = np.full((120, 160, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    cv2.circle(img, (int(rng.integers(50, 110)), int(rng.integers(40, 80))), 20, colour, -1)
    return img


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 photos on a mat-coloured card, 6 train / 6 val, random labels, with a manifest."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        path = root / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), _photo(rng))
        labels = [c for c in CLASSES if rng.random() < 0.4]
        records.append(
            Record(
                id=f"r{i}",
                image=f"images/{i}.png",
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                width=160,
                height=120,
                piece_id=f"p{i}",
                labels=labels,
                split="train" if i < 6 else "val",
                source="synthetic",
            )
        )
    Manifest(header=Header(name="tiny", classes=CLASSES), records=records).write(
        root / "manifest.jsonl"
    )
    return root


def _meta(cfg: PreprocessConfig, temperature: float) -> PackageMeta:
    th = ClassThreshold(threshold=0.5, review_low=0.45, review_high=0.7)
    return PackageMeta(
        name="tiny",
        version="1",
        taxonomy_version=TAXONOMY_VERSION,
        task="multilabel",
        classes=CLASSES,
        preprocess=cfg,
        heatmap_size=(SIZE // 4, SIZE // 4),
        temperature=temperature,
        thresholds={c: th for c in CLASSES},
        onnx_sha256="0" * 64,
    )


def _build(out: Path, dataset: Path, shift: float = 0.0) -> PackageMeta:
    cfg = PreprocessConfig(input_size=SIZE)
    photos = sorted((dataset / "images").glob("*.png"))[:4]
    inputs = np.stack([preprocess(cv2.imread(str(p)), cfg)[0] for p in photos]) + shift
    wrapped = CalibratedNet(TinyNet(), 2.0, "multilabel")
    return build_package(wrapped, _meta(cfg, 2.0), out, photos, inputs.astype(np.float32))


@pytest.fixture(scope="module")
def package(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "tiny"
    _build(out, dataset)
    return out


def test_calibrated_net_outputs() -> None:
    net = TinyNet().eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    probs, heat = CalibratedNet(net, 2.0, "multilabel").eval()(x)
    logits, _ = net(x)
    torch.testing.assert_close(probs, torch.sigmoid(logits / 2.0))
    assert heat.min() >= 0 and heat.amax(dim=(2, 3)).max() <= 1.0
    single, _ = CalibratedNet(net, 0.5, "single_label").eval()(x)
    torch.testing.assert_close(single.sum(dim=1), torch.ones(2))
    torch.testing.assert_close(single, torch.softmax(logits / 0.5, dim=1))


def test_exported_package_has_dynamic_batch_and_parity(package: Path) -> None:
    pkg = load_package(package)
    parity = pkg.meta.metrics["parity"]
    assert parity["samples"] == 4 and parity["max_abs_probs"] <= 1e-4
    for batch in (1, 5):
        probs, heat = pkg.session.run(None, {"input": np.zeros((batch, 3, SIZE, SIZE), np.float32)})
        assert probs.shape == (batch, 3) and heat.shape == (batch, 3, SIZE // 4, SIZE // 4)


def test_parity_failure_writes_nothing(dataset: Path, tmp_path: Path) -> None:
    # The torch side sees different inputs than onnxruntime's preprocessing gives: must fail.
    with pytest.raises(ExportError, match="parity check failed"):
        _build(tmp_path / "bad", dataset, shift=0.5)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten(package: Path, dataset: Path) -> None:
    with pytest.raises(ValueError, match="already exists"):
        _build(package, dataset)


@pytest.mark.parametrize("fmt", ["qoperator", "qdq"])
def test_int8_package(package: Path, dataset: Path, tmp_path: Path, fmt: str) -> None:
    meta = quantize_package(
        package, dataset / "manifest.jsonl", tmp_path / "tiny-int8", max_drop=1.0, fmt=fmt
    )
    assert meta.precision == "int8" and meta.metrics["int8"]["format"] == fmt
    report = meta.metrics["int8"]
    assert report["calibration_photos"] == 6 and report["validation_photos"] == 6
    assert report["macro_f1_drop"] == pytest.approx(
        report["macro_f1_fp32"] - report["macro_f1_int8"]
    )
    assert 0 <= report["mean_abs_dprob"] <= report["max_abs_dprob"] < 0.05
    assert 0 <= report["photos_crossing_a_threshold"] <= 6
    int8 = load_package(tmp_path / "tiny-int8")
    fp32 = load_package(package)
    x = np.random.default_rng(1).normal(size=(4, 3, SIZE, SIZE)).astype(np.float32)
    a = fp32.session.run(["probs"], {"input": x})[0]
    b = int8.session.run(["probs"], {"input": x})[0]
    assert np.abs(a - b).max() < 0.05  # quantized, so close but not equal
    graph = onnx.load(str(tmp_path / "tiny-int8" / "model.onnx")).graph
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    made_by = {out: n for n in graph.node for out in n.output}
    if fmt == "qoperator":
        # Both convolutions, the stem included, are integer QLinearConv nodes ...
        convs = [n for n in graph.node if n.op_type == "QLinearConv"]
        assert len(convs) == 2 and not [n for n in graph.node if n.op_type == "Conv"]
        conv_weights = [weights[n.input[3]] for n in convs]
    else:
        # ... or float Conv nodes whose inputs and weights come through DequantizeLinear.
        convs = [n for n in graph.node if n.op_type == "Conv"]
        assert len(convs) == 2
        assert all(made_by[n.input[0]].op_type == "DequantizeLinear" for n in convs)
        conv_weights = [weights[made_by[n.input[1]].input[0]] for n in convs]
    # 7-bit weights: what keeps u8 x s8 pair sums inside int16 on CPUs without VNNI.
    assert all(w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 64 for w in conv_weights)
    assert max(np.abs(w.astype(int)).max() for w in conv_weights) >= 60  # the range is used
    # The head stays float: probabilities and heatmaps are not rounded to INT8 steps.
    for output in ("probs", "heatmaps"):
        assert made_by[output].op_type not in ("DequantizeLinear", "QLinearSigmoid")
    assert not [n for n in graph.node if n.op_type in ("QLinearSigmoid", "QLinearMul")]


def test_int8_refused_when_it_costs_accuracy(package: Path, dataset: Path, tmp_path: Path) -> None:
    # A negative allowance cannot be met: the gate must refuse and leave no folder behind.
    with pytest.raises(ExportError, match="macro-F1"):
        quantize_package(package, dataset / "manifest.jsonl", tmp_path / "q", max_drop=-1.0)
    assert list(tmp_path.iterdir()) == []


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
        _check_parity(net, tmp_path / "pkg", 64, meta.temperature, "multilabel")
    # An INT8 package holds no float weights.
    int8 = tmp_path / "int8"
    quantize_package(tmp_path / "pkg", manifest, int8, max_drop=100.0)
    with pytest.raises(RecoveryError, match="int8 package"):
        network_from_package(int8)


def test_kito_quantize_writes_an_int8_package_and_refuses_bad_input(
    package: Path, dataset: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    def quantize(pkg: Path, out: str, *extra: str) -> tuple[int, str]:
        args = ["quantize", "--package", str(pkg), "--calibration-manifest"]
        args += [str(dataset / "manifest.jsonl"), "--out", str(tmp_path / out), *extra]
        res = CliRunner().invoke(app, args)
        assert "Traceback" not in res.output
        return res.exit_code, res.output

    code, out = quantize(package, "q", "--max-drop", "1")
    assert code == 0, out
    assert "wrote" in out and "on 6 val photos" in out and "cross a threshold" in out
    assert load_package(tmp_path / "q").meta.precision == "int8"
    # Each refusal names what is wrong, exits 2 and writes nothing.
    code, out = quantize(tmp_path / "q", "qq")
    assert code == 2 and "already int8" in out
    code, out = quantize(package, "q")
    assert code == 2 and "already exists" in out
    code, out = quantize(tmp_path / "none", "n")
    assert code == 2 and "none" in out
    code, out = quantize(package, "f", "--format", "fp16")
    assert code == 2 and "qoperator" in out
    code, _ = quantize(package, "m", "--max-drop", "2")
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]


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
