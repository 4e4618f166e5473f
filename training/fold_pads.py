"""Fold the zero padding in front of a convolution into the convolution's own pads.

timm's TF-style "same" convolutions export as a `Pad` node (asymmetric: one pixel at the bottom
and right of a stride-2 layer) followed by a `Conv` with no padding. onnxruntime runs the Pad
as its own kernel with layout reorders around it; on an AVX2 CPU the five Pads of
EfficientNet-Lite0 took 3.3 of its 20.5 ms per photo (docs/BENCHMARKS.md, "Folded padding").
An ONNX Conv takes asymmetric pads, so the same arithmetic fits in one node.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _values(model: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The values of the tensors among `names` that do not depend on the graph's input.

    Initializers are read directly; a Pad amount computed by a small constant graph (the
    exporter's form of a fixed "same" padding) is evaluated by running that part alone. A tensor
    computed from the input (padding that follows the input's size) is left out: it has no one
    value to fold.
    """
    import onnx
    import onnxruntime as ort

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    out = {n: onnx.numpy_helper.to_array(inits[n]) for n in names if n in inits}
    producer = {t: node for node in graph.node for t in node.output}
    inputs = {i.name for i in graph.input} - set(inits)
    constant: list[str] = []
    needed: dict[int, Any] = {}
    for name in names:
        if name in out or name not in producer:
            continue
        seen: dict[int, Any] = {}
        stack, ok = [producer[name]], True
        while stack and ok:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen[id(node)] = node
            for t in node.input:
                if t in inputs:
                    ok = False
                elif t in producer:
                    stack.append(producer[t])
        if ok:
            constant.append(name)
            needed.update(seen)
    if not constant:
        return out
    nodes = [n for n in graph.node if id(n) in needed]  # graph order is topological
    used = {t for n in nodes for t in n.input}
    sub = onnx.helper.make_graph(
        nodes,
        "constants",
        [],
        [onnx.ValueInfoProto(name=n) for n in constant],
        [t for t in graph.initializer if t.name in used],
    )
    probe = onnx.helper.make_model(sub, opset_imports=model.opset_import)
    probe.ir_version = model.ir_version
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out.update(zip(constant, (np.asarray(v) for v in sess.run(constant, {})), strict=True))
    return out


def _drop_dead(graph: Any) -> None:
    """Remove nodes and initializers nothing reads any more (the Pads' shape arithmetic)."""
    wanted = {o.name for o in graph.output}
    while True:
        used = wanted | {t for n in graph.node for t in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {t for n in graph.node for t in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def fold_pads(path: Path) -> int:
    """Rewrite the ONNX file at `path` in place; returns how many Pads were folded.

    A Pad is folded only when the result is the same arithmetic: constant mode with value 0
    (or none), no padding of batch or channels, no negative amounts, and a single reader that is
    a Conv taking it as its data input with explicit (not auto) padding.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    candidates = []
    for pad in graph.node:
        if pad.op_type != "Pad" or _attr(pad, "mode", b"constant") not in (b"constant", "constant"):
            continue
        if len(pad.input) > 3 and pad.input[3]:  # explicit axes: not the exporter's form
            continue
        convs = readers.get(pad.output[0], [])
        if len(convs) != 1 or convs[0].op_type != "Conv" or convs[0].input[0] != pad.output[0]:
            continue
        if _attr(convs[0], "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        candidates.append((pad, convs[0]))
    names = [p.input[1] for p, _ in candidates]
    names += [p.input[2] for p, _ in candidates if len(p.input) > 2 and p.input[2]]
    values = _values(model, names)
    folded = 0
    for pad, conv in candidates:
        has_fill = len(pad.input) > 2 and bool(pad.input[2])
        if pad.input[1] not in values or (has_fill and pad.input[2] not in values):
            continue  # padding that follows the input's size: no constant to fold
        amounts = [int(v) for v in values[pad.input[1]].reshape(-1)]
        fill = values[pad.input[2]] if has_fill else None
        if fill is not None and np.any(fill != 0):
            continue
        rank = len(amounts) // 2
        begin, end = amounts[:rank], amounts[rank:]
        if rank < 3 or any(begin[:2]) or any(end[:2]) or min(amounts) < 0:
            continue
        spatial = rank - 2
        own = list(_attr(conv, "pads", [0] * (2 * spatial)))
        new = [own[i] + begin[2 + i] for i in range(spatial)]
        new += [own[spatial + i] + end[2 + i] for i in range(spatial)]
        for a in [a for a in conv.attribute if a.name == "pads"]:
            conv.attribute.remove(a)
        conv.attribute.append(onnx.helper.make_attribute("pads", new))
        conv.input[0] = pad.input[0]
        graph.node.remove(pad)
        folded += 1
    if folded:
        _drop_dead(graph)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return folded


def _outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    from qc_model.package import open_session

    return [np.asarray(o) for o in open_session(path, threads=2).run(None, {"input": x})]


MAX_REPACK_DIFF = 1e-6  # the same arithmetic: float rounding at most


def repack_package(package: Path, out: Path, samples: int = 8) -> tuple[Any, int, float]:
    """A copy of a package whose graph has its padding folded (`fold_pads`), nothing else new.

    The copy must give the same probabilities and heatmaps as the package on `samples` random
    inputs (largest difference at most MAX_REPACK_DIFF), or nothing is written. Networks,
    temperature, thresholds, name and any surface branch are the package's own; the version
    gains "-folded" and the git commit is new. Returns the new metadata, the Pads folded and the
    largest difference.
    """
    from qc_model.errors import DataError
    from qc_model.package import MODEL_FILE, load_package, read_meta
    from training.package_io import (
        ExportError,
        copy_graphs,
        finish_package,
        git_commit,
        staged_package,
    )

    meta = read_meta(package)
    load_package(package, threads=1)  # the source passes every check first
    size = meta.preprocess.input_size
    x = np.random.default_rng(0).normal(size=(samples, 3, size, size)).astype(np.float32)
    with staged_package(out) as tmp:
        copy_graphs(package, tmp, meta)
        folded = fold_pads(tmp / MODEL_FILE)
        if not folded:
            raise DataError(f"{package}: its graph has no padding to fold; nothing to repack")
        before, after = _outputs(package / MODEL_FILE, x), _outputs(tmp / MODEL_FILE, x)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(before, after, strict=True))
        if not diff <= MAX_REPACK_DIFF:
            raise ExportError(
                f"repacked graph differs from {package} by {diff:.2e} (limit "
                f"{MAX_REPACK_DIFF:.0e}); not written"
            )
        new = meta.model_copy(
            update={
                "version": f"{meta.version}-folded",
                "git_commit": git_commit(),
                "metrics": {
                    **meta.metrics,
                    "repack": {"from": meta.version, "pads_folded": folded, "max_diff": diff},
                },
            }
        )
        written = finish_package(tmp, new)
    return written, folded, diff
