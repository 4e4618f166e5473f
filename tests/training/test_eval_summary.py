"""`kito eval` on whatever a split holds: single-label numbers, and no crash on the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kito.cli import app
from qc_model.manifest import Header, Manifest, Record
from training.eval_summary import summary_lines
from training.evaluate import evaluate_predictions
from training.metrics import auroc
from training.single_label_metrics import single_label_scores


def _records(n: int) -> list[Record]:
    return [
        Record(id=f"r{i}", image=f"i/{i}.png", sha256="0" * 64, width=8, height=8,
               piece_id=f"p{i}", source="imported")
        for i in range(n)
    ]  # fmt: skip


def _softmax(y: np.ndarray, k: int, rng: np.random.Generator, sep: float = 2.5) -> np.ndarray:
    z = rng.normal(0, 1.5, (len(y), k)) + sep * np.eye(k)[y]
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _run(tmp_path: Path, classes: list[str], y_val: np.ndarray, y: np.ndarray, task: str):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    k = len(classes)
    if task == "single_label":
        raw_val, raw = _softmax(y_val, k, rng), _softmax(y, k, rng)
    else:
        raw_val = 1 / (1 + np.exp(-(3.0 * (2 * y_val - 1) + rng.normal(0, 2, y_val.shape))))
        raw = 1 / (1 + np.exp(-(3.0 * (2 * y - 1) + rng.normal(0, 2, y.shape))))
    res = evaluate_predictions(
        raw_val, y_val, raw, y, _records(len(y)), classes, task, tmp_path, {"split": "test"}
    )
    assert json.loads((tmp_path / "metrics.json").read_text()) == res.metrics
    assert (tmp_path / "index.html").is_file()
    return res.metrics, summary_lines(res.metrics, "test", tmp_path)


def test_single_label_reports_accuracy_auroc_and_operating_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    classes = ["defective", "good"]
    y_val, y = rng.integers(0, 2, 300), (rng.random(200) < 0.3).astype(np.int64)
    m, lines = _run(tmp_path, classes, y_val, y, "single_label")
    one = m["scores"]["single_label"]
    conf = np.asarray(one["confusion"])
    assert conf.sum() == 200 and one["accuracy"] == pytest.approx(np.trace(conf) / 200)
    recalls = conf.diagonal() / conf.sum(axis=1)
    assert one["balanced_accuracy"] == pytest.approx(recalls.mean())
    assert [r["name"] for r in one["per_class"]] == classes
    assert one["per_class"][0]["support"] == int((y == 0).sum())
    assert one["good_class"] == "good" and 0.5 < one["auroc_defective"] <= 1
    op = one["operating_point"]
    assert set(op["thresholds"]) == {"defective"} and 0 <= op["false_hold_rate"] <= 1
    assert op["recall"] == m["scores"]["any_defect"]["recall"]
    assert (tmp_path / "roc.png").stat().st_size > 1000
    assert "ROC" in (tmp_path / "index.html").read_text()
    assert "accuracy" in lines[1] and "AUROC defective vs good" in lines[1]


def test_auroc_is_of_one_minus_p_good() -> None:
    """Three classes: the defect score is 1 - p(good), both defect classes together."""
    classes = ["chip", "crack", "good"]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.1, 0.6], [0.05, 0.05, 0.9]])
    y = np.array([0, 2, 1, 2])  # defective, good, defective, good
    one = single_label_scores(probs, y, classes, [0.5, 0.5, 0.5])
    score = 1 - probs[:, 2]  # 0.9, 0.6, 0.4, 0.1
    assert one["auroc_defective"] == pytest.approx(auroc(score, y != 2)) == pytest.approx(0.75)
    assert one["accuracy"] == pytest.approx(0.5)  # rows 0 and 3 are right at the top class
    assert one["balanced_accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)
    op = one["operating_point"]  # held: row 0 (chip 0.7), row 1 (crack 0.5)
    assert (op["recall"], op["false_hold_rate"], op["held"]) == (0.5, 0.5, 2)
    assert op["accuracy"] == pytest.approx(0.5) and op["thresholds"] == {"chip": 0.5, "crack": 0.5}


@pytest.mark.parametrize("task", ["single_label", "multilabel"])
def test_a_split_without_defective_photos(tmp_path: Path, task: str) -> None:
    rng = np.random.default_rng(3)
    if task == "single_label":
        classes, y_val, y = ["defective", "good"], rng.integers(0, 2, 200), np.ones(50, np.int64)
    else:
        classes = ["scratch", "bent"]
        y_val = (rng.random((200, 2)) < 0.3).astype(np.int64)
        y = np.zeros((50, 2), np.int64)
    m, lines = _run(tmp_path, classes, y_val, y, task)
    assert m["scores"]["any_defect"]["recall"] is None
    assert "any-defect recall n/a (no defective photos)" in lines[0]
    if task == "single_label":
        assert m["scores"]["single_label"]["auroc_defective"] is None
        assert "(needs both good and defective photos)" in lines[1]


def test_a_split_of_one_defect_class_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    y_val, y = rng.integers(0, 2, 200), np.zeros(40, np.int64)
    m, lines = _run(tmp_path, ["defective", "good"], y_val, y, "single_label")
    assert m["scores"]["any_defect"]["false_hold_rate"] is None
    assert "false-hold n/a (no good photos)" in lines[0]
    assert m["scores"]["single_label"]["per_class"][1]["recall"] is None  # no good support


def test_single_label_without_a_good_class(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    m, lines = _run(tmp_path, ["chip", "crack"], rng.integers(0, 2, 200), rng.integers(0, 2, 60),
                    "single_label")  # fmt: skip
    assert m["scores"]["single_label"]["good_class"] is None
    assert "operating_point" not in m["scores"]["single_label"]
    assert "--good-label" in lines[1] and "false-hold n/a (no good photos)" in lines[0]
    assert "--good-label" in (tmp_path / "index.html").read_text()


def test_summary_of_missing_numbers_says_n_a(tmp_path: Path) -> None:
    """The crash this replaces: macro_f1 None (a single-label split) formatted with :.3f."""
    metrics = {
        "calibration": {"temperature": None},
        "scores": {"photos": 3, "macro_f1": None,
                   "any_defect": {"defective": 3, "good": 0, "recall": 1.0,
                                  "false_hold_rate": None}},
        "judged": {"scores": {"photos": 2, "macro_f1": None,
                              "any_defect": {"defective": 0, "good": 2, "recall": None,
                                             "false_hold_rate": 0.5}}},
    }  # fmt: skip
    lines = summary_lines(metrics, "test", tmp_path)
    assert lines[0].startswith("test: 3 photos, macro-F1 n/a, any-defect recall 1.000")
    assert "T n/a" in lines[0] and "n/a (no defective photos)" in lines[1]
    empty = {"scores": {"photos": 0}}
    assert summary_lines(empty, "test", tmp_path)[0].startswith("test: no photos to score")


def test_cli_eval_of_an_empty_split_is_one_line_exit_2(tmp_path: Path) -> None:
    records = [r.model_copy(update={"split": "val", "labels": ["good"]}) for r in _records(2)]
    header = Header(name="t", task="single_label", classes=["defective", "good"])
    Manifest(header=header, records=records).write(tmp_path / "manifest.jsonl")
    res = CliRunner().invoke(
        app, ["eval", "--checkpoint", str(tmp_path / "none.pt"), "--manifest", str(tmp_path),
              "--out", str(tmp_path / "r"), "--split", "test"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "no photos in split 'test'" in res.output and "Traceback" not in res.output
