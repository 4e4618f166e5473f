"""How much of one defect class would the fused review rule still hold if the classifier did
not know the class? A proxy for issue 27's unseen-class test, without retraining anything.

Reads the per-photo scores `kito eval --package` keeps (`anomaly_scores.npz`: probabilities,
centred anomaly scores, gate flags) and the package's fused rule, drops the class's column from
the classifier's margin, and applies the rule again photo by photo (training.anomaly.fused).
Both networks still learnt the class (the branch from its masks, so its cell features know it
too): a proxy that flatters the anomaly model, not the issue's test.

    python -m research.unseen_class_proxy --package models/default \
        --scores REPORT/anomaly_scores.npz --manifest data/eval-s2k-s28.jsonl --drop broken_link
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.anomaly import AnomalyModel
from qc_model.manifest import Manifest
from training.anomaly.fused import ClassifierScores, classifier_scores, held_fused


def without(c: ClassifierScores, names: list[str], drop: str) -> ClassifierScores:
    """The classifier's scores with class `drop` taken out of the margin and the fail bands."""
    keep = [i for i, n in enumerate(names) if n != drop]
    return ClassifierScores(c.probs[:, keep], c.low[keep], c.high[keep])


def rates(held: NDArray[np.bool_], rows: NDArray[np.bool_]) -> float:
    return float(held[rows].mean()) if rows.any() else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, default=Path("models/default"))
    ap.add_argument("--scores", type=Path, required=True, help="anomaly_scores.npz of kito eval")
    ap.add_argument("--manifest", type=Path, required=True, help="the manifest evaluated")
    ap.add_argument("--drop", nargs="+", default=["broken_link"])
    a = ap.parse_args(argv)
    rule = AnomalyModel(a.package, threads=1).meta.fused
    if rule is None:
        raise SystemExit(f"{a.package}: no fused rule (kito anomaly thresholds --fused)")
    z = np.load(a.scores)
    classes = [str(c) for c in z["classes"]]
    cs = classifier_scores(a.package, z["probs"], classes)
    names = [c for c in classes if c in _defects(a.package)]  # classifier_scores' columns
    records = {r.id: r for r in Manifest.read(a.manifest).records}
    labels = [set(records[str(i)].labels) for i in z["ids"]]
    judged = z["passed"].astype(bool) & ~np.isnan(z["centred"])
    good = judged & np.array([not (lab & set(names)) for lab in labels])
    args = (z["centred"], rule.weight, rule.threshold, z["levels"], rule.guard)
    full = held_fused(cs, *args)
    print(
        f"rule: margin + {rule.weight:g} x centred >= {rule.threshold:.3f}, level guard "
        f"{rule.guard}; {good.sum()} good photos"
    )
    print("| dropped class | judged photos | held, class known | held, class dropped |")
    print("| --- | ---: | ---: | ---: |")
    for drop in a.drop:
        if drop not in names:
            raise SystemExit(f"{drop}: not one of the classifier's defect classes {names}")
        rest = without(cs, names, drop)
        held = held_fused(rest, *args)
        has = judged & np.array([drop in lab for lab in labels])
        only = judged & np.array([lab & set(names) == {drop} for lab in labels])
        for name, rows in ((drop, has), (f"{drop} alone", only), ("(good photos)", good)):
            print(f"| {name} | {rows.sum()} | {rates(full, rows):.3f} | {rates(held, rows):.3f} |")


def _defects(package: Path) -> set[str]:
    from qc_model.package import read_meta
    from qc_model.verdict import defect_classes

    meta = read_meta(package)
    return set(defect_classes(meta.task, meta.classes))


if __name__ == "__main__":
    main()
