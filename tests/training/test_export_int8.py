"""Export to INT8: the quantized package (QOperator and QDQ), its accuracy gate, and
`kito quantize`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_data import SIZE

from qc_model.package import load_package
from training.export import ExportError
from training.quantize import quantize_package


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
