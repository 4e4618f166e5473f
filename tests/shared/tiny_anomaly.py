"""A tiny anomaly model for tests: an 8 x 8 average-pool "extractor" written with onnx.helper
(no torch), banks given as arrays, anomaly.json with the right checksums.

A feature is then the mean colour of an 8 x 8 patch in [-1, 1], so a test can reason about
distances: a bank of grey patches is far from a bright square and near a grey photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.anomaly import (
    ANOMALY_BANKS,
    ANOMALY_META,
    ANOMALY_ONNX,
    FEATURES_INPUT,
    FEATURES_OUTPUT,
    AnomalyConfig,
    AnomalyMeta,
    BankMeta,
    bank_key,
)
from qc_model.manifest import sha256_file


def write_pool_extractor(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(FEATURES_INPUT, TensorProto.FLOAT, ["b", 3, "h", "w"])
    y = helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, ["b", 3, "gh", "gw"])
    node = helper.make_node(
        "AveragePool", [FEATURES_INPUT], [FEATURES_OUTPUT], kernel_shape=[8, 8], strides=[8, 8]
    )
    graph = helper.make_graph([node], "pool", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def grey_bank(value: float = 0.0, n: int = 16, seed: int = 0) -> NDArray[np.float32]:
    """Features of a grey photo (value in [-1, 1]) with a little noise."""
    rng = np.random.default_rng(seed)
    return (value + rng.normal(0, 0.01, (n, 3))).astype(np.float32)


def bank_meta(n: int, log_mu: float = np.log(0.02), log_sigma: float = 0.3) -> BankMeta:
    return BankMeta(photos=12, patches=n, calibration_photos=5, log_mu=log_mu, log_sigma=log_sigma)


def write_tiny_anomaly(
    folder: Path,
    designs: dict[str, NDArray[np.float32]],
    families: dict[str, NDArray[np.float32]] | None = None,
    family_of: dict[str, str] | None = None,
    top_k: int = 1,
) -> AnomalyMeta:
    folder.mkdir(parents=True, exist_ok=True)
    write_pool_extractor(folder / ANOMALY_ONNX)
    families = families or {}
    arrays = {bank_key("design", d): b for d, b in designs.items()}
    arrays |= {bank_key("family", f): b for f, b in families.items()}
    np.savez(folder / ANOMALY_BANKS, **{k: v.astype(np.float16) for k, v in arrays.items()})
    meta = AnomalyMeta(
        config=AnomalyConfig(max_side=64, top_k=top_k, piece_margin=0),
        feature_dim=3,
        onnx_sha256=sha256_file(folder / ANOMALY_ONNX),
        banks_sha256=sha256_file(folder / ANOMALY_BANKS),
        designs={d: bank_meta(len(b)) for d, b in designs.items()},
        families={f: bank_meta(len(b)) for f, b in families.items()},
        family_of=family_of or {},
    )
    (folder / ANOMALY_META).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    return meta


def grey_photo(value: int = 128, size: int = 64) -> NDArray[np.uint8]:
    return np.full((size, size, 3), value, np.uint8)
