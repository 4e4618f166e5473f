"""Folding "same" padding into convolutions: the same outputs, fewer nodes, and what is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from tiny_package import build_tiny_package
from torch import nn

from qc_model.package import MODEL_FILE, load_package, read_meta
from training.export import export_onnx, finish_package
from training.fold_pads import fold_pads


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in sess.run(None, {"input": x})]


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _pad_conv_model(
    path: Path, pads: list[int], value: float | None = 0.0, mode: str = "constant", readers: int = 1
) -> None:
    """input -> Pad -> Conv(3x3, stride 2, pads 1) [-> a second reader of the Pad]."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(pads, np.int64), "pads"),
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
    ]
    pad_inputs = ["input", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "value"))
        pad_inputs.append("value")
    nodes = [
        helper.make_node("Pad", pad_inputs, ["padded"], mode=mode, name="pad"),
        helper.make_node("Conv", ["padded", "w"], ["probs"], strides=[2, 2], pads=[1, 1, 1, 1]),
    ]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", 4, "h", "w"])]
    if readers == 2:
        nodes.append(helper.make_node("Relu", ["padded"], ["heatmaps"]))
        outputs.append(
            helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["b", "c", "h2", "w2"])
        )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_an_asymmetric_zero_pad_joins_the_convolution_with_the_same_outputs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.onnx"
    _pad_conv_model(path, [0, 0, 0, 0, 0, 0, 1, 1])  # one pixel at the bottom and the right
    x = np.random.default_rng(1).normal(size=(2, 3, 16, 16)).astype(np.float32)
    before = _run(path, x)
    assert fold_pads(path) == 1
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node] == ["Conv"]
    conv = graph.node[0]
    assert list(helper.get_attribute_value(conv.attribute[-1])) == [1, 1, 2, 2]
    assert conv.input[0] == "input" and [t.name for t in graph.initializer] == ["w"]
    np.testing.assert_allclose(_run(path, x)[0], before[0], atol=1e-6)


@pytest.mark.parametrize(
    ("pads", "value", "mode", "readers"),
    [
        ([0, 0, 0, 0, 0, 0, 1, 1], 1.0, "constant", 1),  # pads with ones: not a Conv's zeros
        ([0, 0, 1, 1, 0, 0, 1, 1], None, "reflect", 1),  # mirrored edges
        ([0, 1, 0, 0, 0, 0, 0, 0], 0.0, "constant", 1),  # a channel added
        ([0, 0, 0, 0, 0, 0, 1, 1], 0.0, "constant", 2),  # something else reads the padded map
    ],
)
def test_padding_a_convolution_cannot_take_is_left_alone(
    tmp_path: Path, pads: list[int], value: float | None, mode: str, readers: int
) -> None:
    path = tmp_path / "m.onnx"
    _pad_conv_model(path, pads, value, mode, readers)
    before = path.read_bytes()
    assert fold_pads(path) == 0
    assert path.read_bytes() == before


class _SameNet(nn.Module):
    """Two TF-style "same" strided convolutions (as in tf_efficientnet_lite0), two outputs."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers.conv2d_same import Conv2dSame

        torch.manual_seed(0)
        self.a = Conv2dSame(3, 8, 3, stride=2)
        self.b = Conv2dSame(8, 8, 5, stride=2, groups=8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.b(torch.relu(self.a(x)))
        return f.mean(dim=(2, 3)), f


def test_export_writes_same_padding_inside_the_convolutions(tmp_path: Path) -> None:
    net = _SameNet().eval()
    export_onnx(net, 32, tmp_path / "m.onnx")
    assert "Pad" not in _ops(tmp_path / "m.onnx") and _ops(tmp_path / "m.onnx").count("Conv") == 2
    x = np.random.default_rng(2).normal(size=(3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in net(torch.from_numpy(x))]
    for got, ref in zip(_run(tmp_path / "m.onnx", x), want, strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-5)


def _unfold(package: Path) -> None:
    """Give a package's first padded Conv an explicit Pad in front, as older exports had."""
    path = package / MODEL_FILE
    model = onnx.load(str(path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    pads = list(next(helper.get_attribute_value(a) for a in conv.attribute if a.name == "pads"))
    assert any(pads)
    for a in [a for a in conv.attribute if a.name == "pads"]:
        conv.attribute.remove(a)
    conv.attribute.append(helper.make_attribute("pads", [0, 0, 0, 0]))
    model.graph.initializer.append(
        numpy_helper.from_array(np.array([0, 0, *pads[:2], 0, 0, *pads[2:]], np.int64), "old_pads")
    )
    pad = helper.make_node("Pad", [conv.input[0], "old_pads"], ["old_padded"], mode="constant")
    conv.input[0] = "old_padded"
    model.graph.node.insert(0, pad)
    onnx.save(model, str(path))
    finish_package(package, read_meta(package))


def test_kito_repack_folds_an_older_package_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    old = build_tiny_package(tmp_path / "old")
    _unfold(old)
    assert "Pad" in _ops(old / MODEL_FILE)
    res = CliRunner().invoke(app, ["repack", "--package", str(old), "--out", str(tmp_path / "new")])
    assert res.exit_code == 0, res.output
    assert "1 Pads folded" in res.output
    new = load_package(tmp_path / "new")  # every check the service makes
    assert "Pad" not in _ops(tmp_path / "new" / MODEL_FILE)
    was = read_meta(old)
    assert new.meta.version == f"{was.version}-folded" and new.meta.name == was.name
    assert new.meta.thresholds == was.thresholds and new.meta.temperature == was.temperature
    assert new.meta.metrics["repack"]["pads_folded"] == 1
    size = was.preprocess.input_size
    x = np.random.default_rng(3).normal(size=(4, 3, size, size)).astype(np.float32)
    for a, b in zip(_run(old / MODEL_FILE, x), _run(tmp_path / "new" / MODEL_FILE, x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Refusals exit 2 with the reason and write nothing.
    for args, reason in [
        (["--package", str(tmp_path / "new"), "--out", str(tmp_path / "again")], "no padding"),
        (["--package", str(old), "--out", str(tmp_path / "new")], "already exists"),
        (["--package", str(tmp_path / "none"), "--out", str(tmp_path / "n")], "none"),
    ]:
        res = CliRunner().invoke(app, ["repack", *args])
        assert res.exit_code == 2 and reason in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("-photos")) == [
        "new",
        "old",
    ]


def test_padding_computed_from_the_input_size_is_not_folded(tmp_path: Path) -> None:
    # Pads that follow the input's size (a branch graph with dynamic height and width) have no
    # single value: they stay a Pad, and the graph is left as it was.
    zeros = numpy_helper.from_array(np.zeros(4, np.int64), "zeros")
    w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Mul", ["shape", "zeros"], ["half"]),
        helper.make_node("Concat", ["half", "half"], ["pads"], axis=0),
        helper.make_node("Pad", ["input", "pads"], ["padded"], mode="constant"),
        helper.make_node("Conv", ["padded", "w"], ["probs"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", 2, "h2", "w2"])],
        [zeros, w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    before = (tmp_path / "m.onnx").read_bytes()
    assert fold_pads(tmp_path / "m.onnx") == 0
    assert (tmp_path / "m.onnx").read_bytes() == before
