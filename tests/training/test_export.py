"""Export: the calibrated graph, parity that can fail, atomic writes.

INT8 and its accuracy gate: test_export_int8.py; export from a real checkpoint, kito eval and
the way back from a package to a network: test_export_checkpoint.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from export_data import SIZE, TinyNet, build_tiny

from qc_model.package import load_package
from training.export import CalibratedNet, ExportError


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
        build_tiny(tmp_path / "bad", dataset, shift=0.5)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten(package: Path, dataset: Path) -> None:
    with pytest.raises(ValueError, match="already exists"):
        build_tiny(package, dataset)
