"""research.ceiling: the best F1 over every threshold bounds macro-F1, and thresholds fitted
on the photos themselves reach the target recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from research.ceiling import ceiling, main, perfect_classes
from training.metrics import best_f1, binary_counts, macro_f1

CLASSES = ["scratch", "bent", "pitting", "tarnish"]


def _scores(seed: int, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(CLASSES))) < [0.05, 0.08, 0.06, 0.1]
    logits = rng.normal(-2.0, 1.0, y.shape) + np.array([0.8, 2.5, 1.2, 3.0]) * y
    # Round so that ties between defective and good photos occur, as they do in float32 scores.
    return np.round(1 / (1 + np.exp(-logits)), 2), y


def _brute_force(s: np.ndarray, y: np.ndarray) -> float:
    return max(binary_counts(s >= t, y).f1 for t in np.unique(s))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_best_f1_is_the_highest_f1_over_every_threshold(seed: int) -> None:
    p, y = _scores(seed)
    for k in range(len(CLASSES)):
        b = best_f1(p[:, k], y[:, k])
        assert b.f1 == pytest.approx(_brute_force(p[:, k], y[:, k]), abs=1e-12)
        # The threshold it names gives that F1, with that precision and recall.
        c = binary_counts(p[:, k] >= b.threshold, y[:, k])
        assert (c.f1, c.precision, c.recall) == pytest.approx((b.f1, b.precision, b.recall))


def test_tied_scores_cannot_be_split() -> None:
    # One good and one defective photo share the top score: holding only the defective one is
    # not a threshold, so the best F1 is 2/3 (both held), not 1.
    b = best_f1(np.array([0.9, 0.9, 0.1]), np.array([True, False, False]))
    assert b.f1 == pytest.approx(2 / 3)
    assert b.threshold == 0.9
    assert best_f1(np.array([0.3, 0.2]), np.array([False, False])).f1 == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_ceiling_bounds_macro_f1_at_every_threshold_choice(seed: int) -> None:
    p, y = _scores(seed)
    rng = np.random.default_rng(seed + 10)
    c = ceiling(p, y, CLASSES, [0.5] * len(CLASSES), 0.97)
    assert c["macro_f1"] == pytest.approx(macro_f1(p, y, [0.5] * len(CLASSES)))
    for _ in range(200):
        assert (
            macro_f1(p, y, list(rng.uniform(0, 1, len(CLASSES)))) <= c["macro_f1_ceiling"] + 1e-12
        )
    best = [best_f1(p[:, k], y[:, k]).threshold for k in range(len(CLASSES))]
    assert macro_f1(p, y, best) == pytest.approx(c["macro_f1_ceiling"])


def test_thresholds_fitted_on_the_photos_reach_the_target_there() -> None:
    p, y = _scores(4)
    c = ceiling(p, y, CLASSES, [0.99] * len(CLASSES), 0.97)
    points = c["operating_points"]
    assert points["package thresholds"]["recall"] < 0.97  # 0.99 holds almost nothing
    for name in ("common level fitted on these photos", "greedy search fitted on these photos"):
        assert points[name]["recall"] >= 0.97
    # Seven (here four) free thresholds hold no more good photos than one common level.
    greedy = points["greedy search fitted on these photos"]["false_hold"]
    assert greedy <= points["common level fitted on these photos"]["false_hold"]
    assert [r["class"] for r in c["classes"]] == CLASSES
    assert [r["support"] for r in c["classes"]] == [int(v) for v in y.sum(axis=0)]


def test_perfect_classes_replaces_only_the_named_columns_with_their_labels() -> None:
    p, y = _scores(5)
    q = perfect_classes(p, y, [1, 3])
    assert np.array_equal(q[:, [1, 3]], y[:, [1, 3]].astype(float))
    assert np.array_equal(q[:, [0, 2]], p[:, [0, 2]])
    assert not np.shares_memory(q, p)


def test_solving_an_already_perfect_class_changes_nothing() -> None:
    p, y = _scores(6)
    p[:, 1] = y[:, 1]  # bent is already scored by its labels
    c = ceiling(p, y, CLASSES, [0.5] * len(CLASSES), 0.97)
    fitted = min(
        c["operating_points"][k]["false_hold"]
        for k in ("common level fitted on these photos", "greedy search fitted on these photos")
    )
    rows = {r["class"]: r for r in c["classes"]}
    assert rows["bent"]["false_hold_if_solved"] == pytest.approx(fitted)
    # Bent costs nothing once the others are solved; scratch's weak scores do.
    assert rows["bent"]["false_hold_if_only_unsolved"] == 0.0
    assert rows["scratch"]["false_hold_if_only_unsolved"] > 0.0
    # Solving the weakest class helps here (it need not in general: see _fitted_false_hold).
    assert rows["scratch"]["false_hold_if_solved"] < fitted


def test_the_tables_come_from_saved_scores_and_a_bad_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pv, yv = _scores(7)
    pt, yt = _scores(8)
    f = tmp_path / "scores.npz"
    np.savez(
        f,
        classes=np.array(CLASSES),
        thresholds=np.array([0.3] * len(CLASSES)),
        target_recall=0.97,
        val_probs=pv,
        val_y=yv,
        val_judged=np.ones(len(pv), bool),
        test_probs=pt,
        test_y=yt,
        test_judged=np.arange(len(pt)) % 2 == 0,
    )
    main(["--scores", str(f), "--plot", str(tmp_path / "ceiling.png")])
    out = capsys.readouterr().out
    assert (tmp_path / "ceiling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"judged val photos: {len(pv)}" in out
    assert f"judged test photos: {len(pt) // 2}" in out
    expected = ceiling(pt[::2], yt[::2], CLASSES, [0.3] * len(CLASSES), 0.97)["macro_f1_ceiling"]
    assert f"ceiling over all thresholds {expected:.3f}" in out
    (tmp_path / "bad.npz").write_bytes(b"not numpy")
    with pytest.raises(SystemExit, match=r"error: .*bad\.npz: not scores saved by --save"):
        main(["--scores", str(tmp_path / "bad.npz")])
    with pytest.raises(SystemExit) as exc:  # neither scores nor a package to score
        main(["--val", "somewhere"])
    assert exc.value.code == 2
    assert "give PACKAGE --val DATA --test DATA, or --scores FILE" in capsys.readouterr().err
