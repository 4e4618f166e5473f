"""qc_model.identity: the descriptor, the design distances and ratio, and the references file's
checks (a wrong checksum, shape or value is a clear IdentityError, never a wrong answer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qc_model.identity import (
    DesignReferences,
    IdentityError,
    IdentityRef,
    descriptor,
    design_distances,
    load_refs,
    mismatch_ratio,
    save_refs,
)
from qc_model.manifest import sha256_file

D = 4


def test_descriptor_is_unit_embedding_then_log_sizes() -> None:
    d = descriptor(np.array([3.0, 4.0, 0.0, 0.0]), (50.0, 20.0), 0.5)
    assert d.shape == (D + 2,)
    assert np.allclose(d[:D], [0.6, 0.8, 0.0, 0.0])
    assert np.allclose(d[D:], 0.5 * np.log([50.0, 20.0]))
    # Sizes below 1 mm count as 1 mm (log 0), never as a negative or infinite feature.
    assert np.allclose(descriptor(np.ones(D), (0.2, 0.0), 1.0)[D:], 0.0)


def test_ratio_names_the_nearest_other_design() -> None:
    refs = {
        "A": np.array([[0.0, 0.0], [0.0, 1.0]], np.float32),
        "B": np.array([[10.0, 0.0], [10.0, 1.0]], np.float32),
        "C": np.array([[20.0, 0.0]], np.float32),
    }
    q = np.array([1.0, 0.0], np.float32)
    dist = design_distances(refs, q, k=1)
    assert dist == pytest.approx({"A": 1.0, "B": 9.0, "C": 19.0})
    ratio, nearest = mismatch_ratio(dist, "A")
    assert (ratio, nearest) == (pytest.approx(1 / 9), "B")
    ratio, nearest = mismatch_ratio(dist, "B")
    assert (ratio, nearest) == (pytest.approx(9.0), "A")
    # k larger than a design's references: the mean over all of them.
    assert design_distances(refs, q, k=5)["A"] == pytest.approx((1.0 + np.sqrt(2.0)) / 2)


def _refs_package(folder: Path, rows: dict[str, np.ndarray], **overrides: object) -> IdentityRef:
    save_refs(folder / "design_refs.npz", rows)
    fields: dict[str, object] = {
        "refs_sha256": sha256_file(folder / "design_refs.npz"),
        "designs": sorted(rows),
        "dims": D,
        "threshold": 1.2,
        "false_flag": 0.01,
        "min_refs": 2,
        "k": 1,
        "size_weight": 1.0,
    }
    fields.update(overrides)
    return IdentityRef.model_validate(fields)


def _rows(centre: np.ndarray, size_mm: float, n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(int(size_mm))
    return np.stack(
        [descriptor(centre + 0.01 * rng.normal(size=D), (size_mm, size_mm), 1.0) for _ in range(n)]
    )


def test_check_flags_a_photo_that_looks_like_another_design(tmp_path: Path) -> None:
    a, b = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    ref = _refs_package(tmp_path, {"A": _rows(a, 30.0), "B": _rows(b, 50.0)})
    refs = DesignReferences(tmp_path, ref)
    right = refs.check(a, (30.0, 30.0), "A")
    assert right is not None and not right.flagged and right.nearest == "B"
    wrong = refs.check(b, (50.0, 50.0), "A")
    assert wrong is not None and wrong.flagged and wrong.nearest == "B" and wrong.ratio > 1.2
    assert wrong.as_json()["likely_design"] == "B"
    # No size on the mat, or a design without references: not checked.
    assert refs.check(a, (0.0, 0.0), "A") is None
    assert refs.check(a, (30.0, 30.0), "UNKNOWN") is None
    assert not refs.covers("UNKNOWN")


def test_too_few_references_are_not_checked(tmp_path: Path) -> None:
    a, b = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    ref = _refs_package(tmp_path, {"A": _rows(a, 30.0, n=2), "B": _rows(b, 50.0)}, min_refs=3)
    refs = DesignReferences(tmp_path, ref)
    assert not refs.covers("A") and refs.covers("B")
    assert refs.check(b, (50.0, 50.0), "A") is None


def test_a_changed_references_file_is_refused(tmp_path: Path) -> None:
    a, b = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    ref = _refs_package(tmp_path, {"A": _rows(a, 30.0), "B": _rows(b, 50.0)})
    save_refs(tmp_path / "design_refs.npz", {"A": _rows(b, 30.0), "B": _rows(a, 50.0)})
    with pytest.raises(IdentityError, match=r"design_refs\.npz"):
        DesignReferences(tmp_path, ref)
    (tmp_path / "design_refs.npz").unlink()
    with pytest.raises(IdentityError, match="is missing"):
        DesignReferences(tmp_path, ref)


def test_a_design_named_but_absent_is_refused(tmp_path: Path) -> None:
    a, b = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    ref = _refs_package(
        tmp_path, {"A": _rows(a, 30.0), "B": _rows(b, 50.0)}, designs=["A", "B", "C"]
    )
    with pytest.raises(IdentityError, match="no references for C"):
        DesignReferences(tmp_path, ref)


def test_bad_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    save_refs(path, {"A": np.ones((3, D + 1))})
    with pytest.raises(IdentityError, match=r"design A: expected finite \(n, 6\)"):
        load_refs(path.read_bytes(), D)
    save_refs(path, {"A": np.full((3, D + 2), np.inf)})
    with pytest.raises(IdentityError, match="finite"):
        load_refs(path.read_bytes(), D)
    with pytest.raises(IdentityError, match="not a references file"):
        load_refs(b"not an npz", D)


def test_references_need_two_designs() -> None:
    with pytest.raises(ValueError, match="designs"):
        IdentityRef(refs_sha256="0" * 64, designs=["A"], dims=D, threshold=1.0, false_flag=0.01)
