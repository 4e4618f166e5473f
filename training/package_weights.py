"""Torch weights recovered from a model package's ONNX graph.

A champion trained on another host (the bundled model was fine-tuned on a GPU host) is
registered as its package: the ONNX graph and its metadata, not its training checkpoint. Its
weights are all in the graph, though, so `kito retrain` can still fine-tune from them rather
than start again from ImageNet. The exporter folded every BatchNorm into the convolution before
it (W' = W·γ/σ, b' = β − γ·μ/σ): each convolution gets W' back and its BatchNorm becomes the
identity plus the folded bias (running mean 0, running variance 1, γ = √(1 + eps), β = b'), which
is the same function in eval mode. The running statistics are not recoverable from the graph, so
a network rebuilt this way trains with its BatchNorm statistics frozen (`bn_stats: frozen`, the
trained layers' γ and β still learn): batch statistics would replace the recovered identity with
another function on the first step.

The rebuilt network is checked against the graph it came from, run by onnxruntime, before the
checkpoint is written: probabilities must agree to 1e-4, as export parity requires. An INT8
package (`kito quantize`, QOperator or QDQ) gives its weights back dequantized, each within
its quantization step of the FP32 weights it was made from, so that an INT8 champion (the
service's default on a CPU with VNNI) is still fine-tuned from rather than replaced by ImageNet
weights; its parity is checked to 0.05, the INT8 graph computing in integers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qc_model.errors import DataError
from qc_model.network import DefectNet, build_model
from qc_model.package import read_meta
from training.atomic import write_atomic

PARITY_TOL = 1e-4
# An INT8 graph's weights come back dequantized, and the graph itself computes in integers: the
# float network rebuilt from them agrees with it as kito quantize's INT8 agrees with FP32.
INT8_PARITY_TOL = 0.05
FORMAT = "kito-package-weights-1"


class RecoveryError(DataError):
    """A package whose graph does not give back the network's weights."""


def _constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _dequantized(node: Any, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight, bias) of a QLinearConv in float: (w - w_zero) * w_scale per output channel, and
    the int32 bias times x_scale * w_scale (how onnxruntime's quantizer wrote them)."""
    x_scale, w, w_scale, w_zero = (values.get(node.input[i]) for i in (1, 3, 4, 5))
    if x_scale is None or w is None or w_scale is None or w_zero is None:
        raise RecoveryError(f"convolution {node.name!r} has a computed weight or scale")
    shape = (-1, 1, 1, 1)
    weight = (w.astype(np.float32) - np.reshape(w_zero, shape).astype(np.float32)) * np.reshape(
        w_scale, shape
    ).astype(np.float32)
    bias = None
    if len(node.input) > 8 and node.input[8]:
        if node.input[8] not in values:
            raise RecoveryError(f"convolution {node.name!r} has a computed bias")
        bias = (values[node.input[8]].astype(np.float64) * float(x_scale) * w_scale).astype(
            np.float32
        )
    return weight, bias


def _dequantize_linear(node: Any, values: dict[str, np.ndarray]) -> np.ndarray:
    """A DequantizeLinear of constants, computed: (x - zero_point) * scale along its axis."""
    import onnx

    x = values[node.input[0]].astype(np.float64)
    scale = values[node.input[1]].astype(np.float64)
    zero = (
        values[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
    )
    if scale.ndim == 1 and x.ndim > 1:  # per channel along `axis` (ONNX's default: 1)
        axis = next(
            (onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1
        )
        shape = [1] * x.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = np.reshape(zero, shape) if np.ndim(zero) else zero
    return ((x - zero) * scale).astype(np.float32)


def _conv_params(path: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of every convolution of the graph, in graph order (the forward order).
    An INT8 graph's QLinearConv weights come back dequantized: FP32's to within their step."""
    import onnx

    graph = onnx.load(str(path)).graph
    values = _constants(graph)
    # A QDQ graph's weights and biases reach their Conv through a DequantizeLinear: the same
    # dequantized values as a QLinearConv's.
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in values for i in node.input if i):
            values[node.output[0]] = _dequantize_linear(node, values)
    params = []
    for node in graph.node:
        if node.op_type == "ConvInteger":
            raise RecoveryError(f"{path}: a dynamically quantized graph; not a package's INT8")
        if node.op_type == "QLinearConv":
            try:
                params.append(_dequantized(node, values))
            except RecoveryError as exc:
                raise RecoveryError(f"{path}: {exc}") from None
            continue
        if node.op_type != "Conv":
            continue
        weight = values.get(node.input[1])
        if weight is None:
            raise RecoveryError(f"{path}: convolution {node.name!r} has a computed weight")
        bias = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        params.append((weight, bias))
    return params


def _conv_bn_pairs(net: DefectNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every backbone convolution with the BatchNorm that follows it, in forward order."""
    mods = [m for m in net.backbone.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    pairs = []
    for conv, bn in zip(mods[0::2], mods[1::2], strict=False):
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            raise RecoveryError(f"{net.backbone_name}: a convolution without its BatchNorm")
        if bn.num_features != conv.out_channels:
            raise RecoveryError(f"{net.backbone_name}: BatchNorm does not follow its convolution")
        pairs.append((conv, bn))
    if 2 * len(pairs) != len(mods):
        raise RecoveryError(f"{net.backbone_name}: convolutions and BatchNorms do not pair up")
    return pairs


def network_from_package(package: Path) -> DefectNet:
    """The package's network in torch, eval mode, with the graph's weights (checked)."""
    meta = read_meta(package)
    cfg = dict(meta.training.get("config") or {})
    backbone = str(cfg.get("backbone", "tf_efficientnet_lite0"))
    net = build_model(
        backbone,
        num_classes=len(meta.classes),
        task=meta.task,
        weights="none",
        # Written before `pool` left TrainConfig, a run may hold lse: rebuilt as it was trained.
        pool=str(cfg.get("pool", "avg")),
        pool_r=float(cfg.get("pool_r", 4.0)),
        dihedral_tta=bool(cfg.get("dihedral_tta", False)),
    ).eval()
    params = _conv_params(package / "model.onnx")
    pairs = _conv_bn_pairs(net)
    if len(params) != len(pairs) + 1:  # + the class-map convolution (the classifier)
        raise RecoveryError(
            f"{package}: the graph has {len(params)} convolutions, {backbone} with a class map "
            f"needs {len(pairs) + 1}"
        )
    with torch.no_grad():
        for (conv, bn), (w, b) in zip(pairs, params, strict=False):
            if tuple(w.shape) != tuple(conv.weight.shape) or b is None:
                raise RecoveryError(
                    f"{package}: a convolution of shape {tuple(w.shape)} where {backbone} has "
                    f"{tuple(conv.weight.shape)} (with a folded bias)"
                )
            conv.weight.copy_(torch.from_numpy(w.copy()))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
            bn.bias.copy_(torch.from_numpy(b.copy()))
        w, b = params[-1]
        cls = net.classifier
        if tuple(w.shape) != (cls.out_features, cls.in_features, 1, 1) or b is None:
            raise RecoveryError(f"{package}: the class-map convolution has shape {tuple(w.shape)}")
        cls.weight.copy_(torch.from_numpy(w.reshape(cls.out_features, cls.in_features).copy()))
        cls.bias.copy_(torch.from_numpy(b.copy()))
    tol = PARITY_TOL if meta.precision == "fp32" else INT8_PARITY_TOL
    _check_parity(net, package, meta.preprocess.input_size, meta.temperature, meta.task, tol)
    return net


def _check_parity(
    net: DefectNet, package: Path, size: int, temperature: float, task: str, tol: float
) -> None:
    import onnxruntime as ort

    gen = torch.Generator().manual_seed(0)
    # Normalised inputs: smooth fields plus noise, so every channel and class is exercised.
    low = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    x = nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 0.2 * torch.randn(4, 3, size, size, generator=gen)).clamp(-1, 1)
    with torch.no_grad():
        logits, _ = net(x)
        z = logits / temperature
        ours = torch.sigmoid(z) if task == "multilabel" else torch.softmax(z, dim=1)
    sess = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    theirs = sess.run(["probs"], {"input": x.numpy()})[0]
    diff = float(np.abs(ours.numpy() - theirs).max())
    if not diff <= tol:
        raise RecoveryError(
            f"{package}: the rebuilt network differs from the graph by {diff:.2e} in probability "
            f"(at most {tol:g})"
        )


def checkpoint_from_package(package: Path, out: Path) -> Path:
    """Write the package's weights as a checkpoint that `weights: PATH` can start from."""
    net = network_from_package(package)
    meta = read_meta(package)
    state = {"format": FORMAT, "model": net.state_dict(), "package": meta.version}
    write_atomic(out, lambda tmp: torch.save(state, tmp))
    return out
