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
    """The values of constant tensors: initializers directly, the rest by running the graph once.

    A Pad's amounts are computed from the input's fixed height and width, so any input of the
    declared shape gives them.
    """
    import onnx
    import onnxruntime as ort

    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {n: inits[n] for n in names if n in inits}
    rest = [n for n in names if n not in inits]
    if not rest:
        return out
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for n in rest:
        probe.graph.output.append(onnx.ValueInfoProto(name=n))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = np.zeros(shape, np.float32)
    out.update(zip(rest, sess.run(rest, feeds), strict=True))
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
        amounts = [int(v) for v in values[pad.input[1]].reshape(-1)]
        fill = values.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else None
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
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in sess.run(None, {"input": x})]


MAX_REPACK_DIFF = 1e-6  # the same arithmetic: float rounding at most


def repack_package(package: Path, out: Path, samples: int = 8) -> tuple[Any, int, float]:
    """A copy of a package whose graph has its padding folded (`fold_pads`), nothing else new.

    The copy must give the same probabilities and heatmaps as the package on `samples` random
    inputs (largest difference at most MAX_REPACK_DIFF), or nothing is written. Networks,
    temperature, thresholds, name and any surface branch are the package's own; the version
    gains "-folded" and the git commit is new. Returns the new metadata, the Pads folded and the
    largest difference.
    """
    import shutil
    import tempfile

    from qc_model.errors import DataError
    from qc_model.package import MODEL_FILE, SURFACE_FILE, PackageMeta, load_package, read_meta
    from training.export import ExportError, finish_package, git_commit

    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    meta = read_meta(package)
    load_package(package, threads=1)  # the source passes every check first
    size = meta.preprocess.input_size
    x = np.random.default_rng(0).normal(size=(samples, 3, size, size)).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        shutil.copyfile(package / MODEL_FILE, tmp / MODEL_FILE)
        if meta.surface is not None:
            shutil.copyfile(package / SURFACE_FILE, tmp / SURFACE_FILE)
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
        written = finish_package(tmp, PackageMeta.model_validate(new.model_dump()))
        load_package(tmp, threads=1)  # every check the service makes, before it is in place
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written, folded, diff
