"""INT8 with 8-bit weights: made and served only on a CPU with VNNI, and recorded as needing one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import qc_model.package as package_module
import training.quantize as quantize_module
from qc_model.cpu import cpu_flags, cpu_simd, has_vnni
from qc_model.errors import DataError
from qc_model.package import PackageError, load_package
from training.quantize import quantize_package


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n\nflags : x\n")
    flags = cpu_flags(info)
    assert flags == {"fpu", "sse", "avx2", "avx512f", "avx512_vnni"}  # the first CPU's
    assert has_vnni(flags) and cpu_simd(flags) == "avx2 avx512f avx512_vnni"
    assert not has_vnni({"avx2", "avx512f"}) and cpu_simd({"avx2"}) == "avx2"
    assert has_vnni({"avx_vnni"}) and has_vnni({"amx_int8"})
    assert cpu_simd(set()) == "no AVX2"
    # Unreadable: nothing claimed, so an 8-bit package is not served on a guess.
    assert cpu_flags(tmp_path / "missing") is None
    assert not has_vnni(set())


def _int8_weights(model: Path) -> list[np.ndarray]:
    graph = onnx.load(str(model)).graph
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    return [weights[n.input[3]] for n in graph.node if n.op_type == "QLinearConv"]


def test_8_bit_weights_use_the_full_range_and_need_vnni_to_load(
    package: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize_module, "has_vnni", lambda: True)
    monkeypatch.setattr(package_module, "has_vnni", lambda: True)
    out = tmp_path / "q8"
    meta = quantize_package(package, dataset / "manifest.jsonl", out, max_drop=1.0, weight_bits=8)
    assert meta.precision == "int8" and meta.requires_vnni
    assert meta.metrics["int8"]["weight_bits"] == 8
    weights = _int8_weights(out / "model.onnx")
    assert weights and max(np.abs(w.astype(int)).max() for w in weights) > 64  # not 7-bit
    assert json.loads((out / "package.json").read_text())["requires_vnni"] is True
    assert load_package(out).meta.requires_vnni
    # The same package on a CPU without VNNI: refused, saying why and what to serve instead.
    monkeypatch.setattr(package_module, "has_vnni", lambda: False)
    with pytest.raises(PackageError, match="VNNI") as err:
        load_package(out)
    assert "FP32" in str(err.value) and "--weight-bits 7" in str(err.value)


def test_7_bit_packages_load_anywhere_and_keep_their_metadata_as_before(
    package: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package_module, "has_vnni", lambda: False)
    out = tmp_path / "q7"
    meta = quantize_package(package, dataset / "manifest.jsonl", out, max_drop=1.0)
    assert not meta.requires_vnni and meta.metrics["int8"]["weight_bits"] == 7
    assert "requires_vnni" not in json.loads((out / "package.json").read_text())
    assert load_package(out).meta.precision == "int8"


def test_8_bit_weights_are_refused_on_a_cpu_without_vnni(
    package: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize_module, "has_vnni", lambda: False)
    with pytest.raises(DataError, match=r"saturate.*--weight-bits 7"):
        quantize_package(package, dataset / "manifest.jsonl", tmp_path / "q", weight_bits=8)
    with pytest.raises(DataError, match="7 or 8"):
        quantize_package(package, dataset / "manifest.jsonl", tmp_path / "q", weight_bits=6)
    assert list(tmp_path.iterdir()) == []
