"""research.visibility_report: a package's recall binned by what the photo shows of each defect,
and the pixels per mm each design gets."""

from __future__ import annotations

import numpy as np
import pytest

from qc_model.manifest import Record
from research.visibility_report import resolution_by_design, summarise


def test_summary_bins_recall_by_visibility_and_counts_only_gate_passed_photos() -> None:
    def rec(i: int, labels: list[str]) -> Record:
        return Record(
            id=f"s-{i}", image=f"{i}.jpg", piece_id=f"p{i}", labels=labels, split="test",
            source="synthetic", sha256=f"{i:064x}", width=8, height=8,
        )  # fmt: skip

    records = [rec(0, ["scratch"]), rec(1, ["scratch"]), rec(2, []), rec(3, [])]
    probs = np.array([[0.9], [0.1], [0.8], [0.2]])
    rows = [
        {"id": "s-0", "label": "scratch", "visible_px": 50},
        {"id": "s-1", "label": "scratch", "visible_px": 0},
    ]
    gate = np.array([True, False, True, True])
    s = summarise(records, probs, [0.5], ["scratch"], rows, gate)
    bins = s["classes"]["scratch"]["by_visible_px"]
    assert bins["0-0"] == {"n": 1, "class_recall": 0.0}
    assert bins["20-99"] == {"n": 1, "class_recall": 1.0}
    assert s["any_defect"]["all_photos"] == {
        "defective": 2, "good": 2, "recall": 0.5, "false_hold": 0.5,
    }  # fmt: skip
    assert s["any_defect"]["gate_passed"]["recall"] == 1.0  # the missed photo was retaken
    assert s["gate_pass_rate"] == 0.75


def test_resolution_by_design_takes_the_coarser_of_photo_and_input() -> None:
    def rec(i: int, design: str, box: list[int], ppm: float, labels: list[str]) -> Record:
        meta = {"px_per_mm": ppm, "pieces": [{"bbox_px": box}, {"bbox_px": None}]}
        return Record(
            id=f"s-{i}", image=f"{i}.jpg", piece_id=f"p{i}", labels=labels, split="test",
            source="synthetic", sha256=f"{i:064x}", width=8, height=8, design_id=design, meta=meta,
        )  # fmt: skip

    # A stud: 25 px at 2.5 px/mm is 10 mm, its crop 12 mm, so the input has 224 / 12 px per mm
    # and the photo's 2.5 is the limit. A necklace: 500 px is 200 mm, a 240 mm crop, and the
    # input's 224 / 240 is the limit.
    records = [
        rec(0, "stud", [10, 10, 35, 20], 2.5, ["scratch"]),
        rec(1, "stud", [10, 10, 35, 20], 2.5, []),
        rec(2, "necklace", [0, 0, 500, 300], 2.5, ["scratch"]),
        rec(3, "necklace", [0, 0, 500, 300], 2.5, ["scratch"]),
    ]
    probs = np.array([[0.9], [0.1], [0.8], [0.7]])
    r = resolution_by_design(records, probs, ["scratch"], 224, 0.1)
    assert r["stud"]["photo_px_per_mm"] == 2.5
    assert r["stud"]["input_px_per_mm"] == pytest.approx(224 / 12)
    assert r["stud"]["effective_px_per_mm"] == 2.5
    assert r["necklace"]["effective_px_per_mm"] == pytest.approx(224 / 240)
    assert r["stud"]["auroc"] == {"scratch": 1.0} and r["stud"]["positives"] == {"scratch": 1}
    assert r["necklace"]["auroc"] == {"scratch": None}  # no good necklace to compare with
