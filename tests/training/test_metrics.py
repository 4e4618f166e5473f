"""Metrics against hand-computed values and brute-force definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from training.metrics import (
    any_defect,
    as_onehot,
    auroc,
    average_precision,
    binary_counts,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_metrics,
    pr_curve,
    stratified_auroc,
)


def test_ap_and_auroc_by_hand() -> None:
    s = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([1, 0, 1, 0])
    assert average_precision(s, y) == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert auroc(s, y) == pytest.approx(0.75)
    precision, recall, thr = pr_curve(s, y)
    np.testing.assert_allclose(thr, s)
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3, 0.5])


def test_ties_and_degenerate_inputs() -> None:
    assert auroc(np.full(6, 0.3), np.array([1, 0, 1, 0, 0, 1])) == pytest.approx(0.5)
    # All tied: one threshold, precision = prevalence.
    assert average_precision(np.full(4, 0.3), np.array([1, 0, 0, 0])) == pytest.approx(0.25)
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([1, 1])))
    assert np.isnan(average_precision(np.array([0.1, 0.2]), np.array([0, 0])))


def test_against_brute_force_definitions() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + 0.4 * y, 2)  # rounding makes ties
    pos, neg = s[y], s[~y]
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in itertools.product(pos, neg)]
    assert auroc(s, y) == pytest.approx(np.mean(pairs))
    # AP as the sum over distinct thresholds of recall gain x precision at that threshold.
    ap = 0.0
    prev_recall = 0.0
    for t in np.unique(s)[::-1]:
        sel = s >= t
        recall = (sel & y).sum() / y.sum()
        ap += (recall - prev_recall) * (sel & y).sum() / sel.sum()
        prev_recall = recall
    assert average_precision(s, y) == pytest.approx(ap)


def test_stratified_auroc_counts_same_design_pairs_only() -> None:
    rng = np.random.default_rng(3)
    groups = np.array(["chain"] * 200 + ["beads"] * 200)
    y = np.r_[rng.random(200) < 0.5, rng.random(200) < 0.05]  # metal is scratched more often
    # A score that knows the material, not the defect: high plain AUROC, chance within a design.
    by_material = np.r_[np.full(200, 0.8), np.full(200, 0.1)] + rng.normal(0, 0.01, 400)
    assert auroc(by_material, y) > 0.75
    assert stratified_auroc(by_material, y, groups) == pytest.approx(0.5, abs=0.1)
    # Against the definition: the share of same-group (positive, negative) pairs ranked right.
    s = np.round(rng.random(400) + 0.5 * y, 2)
    pairs = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for g in ("chain", "beads")
        for a, b in itertools.product(s[(groups == g) & y], s[(groups == g) & ~y])
    ]
    assert stratified_auroc(s, y, groups) == pytest.approx(np.mean(pairs))
    # A group with only positives adds no pairs; no group with both is undefined.
    more = np.r_[s, 0.99, 0.01], np.r_[y, True, True], [*groups, "ring", "ring"]
    assert stratified_auroc(*more) == pytest.approx(stratified_auroc(s, y, groups))
    assert np.isnan(stratified_auroc(s[:3], np.ones(3), ["a", "a", "b"]))


def test_per_class_counts_and_f1() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.7], [0.2, 0.8], [0.4, 0.3]])
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    rows = per_class_metrics(probs, targets, [0.5, 0.5], ["a", "b"])
    a, b = rows
    assert a.confusion == ((1, 1), (1, 1))  # tn, fp / fn, tp
    assert (a.precision, a.recall, a.f1) == (0.5, 0.5, 0.5)
    assert (b.precision, b.recall, b.f1) == (1.0, 1.0, 1.0)
    assert a.support == 2 and b.support == 2
    assert macro_f1(probs, targets, [0.5, 0.5]) == pytest.approx(0.75)
    # Exactly at the threshold counts as positive.
    assert per_class_metrics(probs, targets, [0.9, 0.8], ["a", "b"])[0].confusion[1][1] == 1


def test_any_defect_recall_and_false_holds() -> None:
    classes = ["scratch", "bent"]
    probs = np.array([[0.9, 0.0], [0.0, 0.2], [0.6, 0.0], [0.1, 0.1], [0.0, 0.7]])
    targets = np.array([[1, 0], [0, 1], [0, 0], [0, 0], [0, 0]])
    r = any_defect(probs, targets, [0.5, 0.5], classes)
    assert (r.defective, r.good, r.held) == (2, 3, 3)
    assert r.recall == pytest.approx(0.5)
    assert r.false_hold_rate == pytest.approx(2 / 3)


def test_single_label_good_class_is_not_a_defect() -> None:
    classes = ["good", "scratch"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    r = any_defect(probs, np.array([0, 1, 1]), [0.5, 0.35], classes)
    assert (r.defective, r.good) == (2, 1)
    assert r.recall == 1.0 and r.false_hold_rate == 0.0
    assert as_onehot(np.array([1, 0]), 2).tolist() == [[0, 1], [1, 0]]
    m = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    assert m.tolist() == [[1, 1], [0, 1]]


def test_ece() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(200_000)
    y = rng.random(p.size) < p  # calibrated by construction
    assert expected_calibration_error(p[:, None], y[:, None], "multilabel") < 0.01
    overconfident = np.full((1000, 1), 0.9)
    half = (np.arange(1000) % 2)[:, None]
    assert expected_calibration_error(overconfident, half, "multilabel") == pytest.approx(0.4)
    c = binary_counts(np.array([1, 0]), np.array([0, 0]))
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)


def _records(n: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    from qc_model.manifest import Record

    designs = ["hoop-a", "cuff-b"]
    captures = [[], ["motion_blur"], ["no_mat", "shadow"]]
    return [
        Record(
            id=f"r{i}",
            image=f"i/{i}.png",
            sha256="0" * 64,
            width=10,
            height=10,
            piece_id=f"p{i}",
            design_id=designs[i % 2],
            capture=captures[int(rng.integers(0, 3))],
            source="synthetic",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("task", ["multilabel", "single_label"])
def test_evaluation_report(task: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from training.evaluate import evaluate_predictions

    rng = np.random.default_rng(0)
    classes = (
        ["scratch", "tarnish", "bent"] if task == "multilabel" else ["good", "scratch", "bent"]
    )

    def fake(n: int):  # type: ignore[no-untyped-def]
        if task == "multilabel":
            y = (rng.random((n, 3)) < 0.3).astype(np.int64)
            z = 3.0 * (2 * y - 1) + rng.normal(0, 2.5, (n, 3))
            return 1 / (1 + np.exp(-z)), y
        y = rng.integers(0, 3, n)
        z = rng.normal(0, 2.0, (n, 3)) + 4.0 * np.eye(3)[y]
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), y

    raw_val, y_val = fake(400)
    raw, y = fake(300)
    if task == "multilabel":
        y[:, 2] = 0  # a class absent from the scored split: AUROC/AP undefined
    res = evaluate_predictions(
        raw_val, y_val, raw, y, _records(300, rng), classes, task, tmp_path, {"split": "test"}
    )
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m == res.metrics
    s = m["scores"]
    assert [r["name"] for r in s["per_class"]] == classes
    if task == "multilabel":
        assert s["per_class"][2]["auroc"] is None and s["per_class"][2]["ap"] is None
    assert s["any_defect"]["recall"] > 0.85  # thresholds were chosen on val for recall 0.97
    assert 0 <= s["any_defect"]["false_hold_rate"] <= 1
    assert {r["group"] for r in s["by_design"]} == {"hoop-a", "cuff-b"}
    assert {"(clean)", "motion_blur", "no_mat", "shadow"} == {r["group"] for r in s["by_capture"]}
    assert sum(r["photos"] for r in s["by_design"]) == 300
    if task == "single_label":
        assert np.asarray(s["confusion"]).sum() == 300 and 0.5 < s["accuracy"] <= 1
    for png in ("pr_curves", "reliability", "thresholds", "confusion"):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000
    page = (tmp_path / "index.html").read_text()
    assert "By capture condition" in page
    if task == "multilabel":  # one more plot: AUROC within each design
        inside = s["within_design"]
        assert inside["designs"] == ["cuff-b", "hoop-a"] and inside["classes"] == classes
        assert np.array(inside["positives"]).sum(axis=0).tolist() == y.sum(axis=0).tolist()
        assert inside["stratified"][2] is None and inside["auroc"][0][2] is None  # no positives
        assert 0.8 < inside["stratified"][0] <= 1  # the fake scores follow the labels
        assert (tmp_path / "within_design_auroc.png").stat().st_size > 1000
        assert page.count("data:image/png;base64,") == 5 and "auroc within design" in page
    else:
        # One more plot: the ROC of defective vs good (training.single_label_metrics).
        assert "within_design" not in s and page.count("data:image/png;base64,") == 5
        assert (tmp_path / "roc.png").stat().st_size > 1000
