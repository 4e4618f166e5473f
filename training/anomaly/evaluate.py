"""Anomaly numbers for `kito eval --package`: AUROC / AP per design and overall, the share of
good photos held and of defective photos caught at the review level, and (with a classifier)
the fused decision: a photo is held when the classifier or the anomaly model holds it.

A package holding only an anomaly model (kito anomaly fit without --package) gets a report of
its own; the split "all" scores every photo of the manifest (an imported test set).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.anomaly import AnomalyModel
from qc_model.errors import DataError
from qc_model.inference import read_image
from qc_model.manifest import Manifest, Record
from training.anomaly.fit import design_of, is_good
from training.metrics import auroc, average_precision, defect_columns
from training.report import html_table, img_tag, plot_anomaly_roc, write_html

SCORES_FILE = "anomaly_scores.npz"  # kito eval --package: per-photo levels beside the classifier


def anomaly_levels(
    model: AnomalyModel, records: Sequence[Record], root: Path, desc: str = "anomaly"
) -> tuple[NDArray[np.float64], list[str | None]]:
    """(levels (N,), NaN where no bank covers the photo's design; the bank that scored each)."""
    levels, _, banks = anomaly_scores(model, records, root, desc)
    return levels, banks


def anomaly_scores(
    model: AnomalyModel, records: Sequence[Record], root: Path, desc: str = "anomaly"
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str | None]]:
    """`anomaly_levels`, with each photo's centred score (log(score) - its bank's log_mu)."""
    if model.from_branch:  # the features come from the package's own branch run
        from training.anomaly.fused import branch_scores_of

        _, levels, centred, _, banks = branch_scores_of(model.folder, list(records), root, desc)
        return levels, centred, banks
    levels, centred = np.full(len(records), np.nan), np.full(len(records), np.nan)
    banks = []
    for i, r in enumerate(tqdm(records, desc=desc, unit="photo", leave=False)):
        result = model.score(read_image(root / r.image), r.design_id)
        banks.append(result.bank if result is not None else None)
        if result is not None:
            levels[i], centred[i] = result.level, result.centred
    return levels, centred, banks


def _rates(held: NDArray[np.bool_], bad: NDArray[np.bool_]) -> dict[str, Any]:
    return {
        "recall": float(held[bad].mean()) if bad.any() else None,
        "false_hold_rate": float(held[~bad].mean()) if (~bad).any() else None,
    }


def _row(name: str, levels: NDArray, bad: NDArray[np.bool_], review: float) -> dict[str, Any]:
    return {
        "group": name,
        "good": int((~bad).sum()),
        "defective": int(bad.sum()),
        "auroc": auroc(levels, bad),
        "ap": average_precision(levels, bad),
        **_rates(levels >= review, bad),
    }


def anomaly_metrics(
    records: Sequence[Record],
    levels: NDArray[np.float64],
    banks: Sequence[str | None],
    review_level: float,
    classifier_held: NDArray[np.bool_] | None = None,
    decisions: dict[str, NDArray[np.bool_]] | None = None,
) -> dict[str, Any]:
    """Overall, per design and per defect class (that class's photos against the good ones),
    over the photos a bank covers. `decisions`: more held-or-not decisions by name (the fused
    rule and the classifier alone, photo by photo as the service decides: anomaly/fused.py)."""
    covered = ~np.isnan(levels)
    recs = [r for r, c in zip(records, covered, strict=True) if c]
    lv = levels[covered]
    bad = np.array([not is_good(r) for r in recs], bool)
    out: dict[str, Any] = {
        "photos": len(records),
        "covered": int(covered.sum()),
        "review_level": review_level,
        "overall": _row("all", lv, bad, review_level),
        "fallback_photos": sum(1 for b in banks if b and b.startswith("family:")),
    }
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(recs):
        groups[design_of(r)].append(i)
    out["by_design"] = [
        _row(d, lv[idx], bad[idx], review_level) for d, idx in sorted(groups.items())
    ]
    labels = sorted({lab for r in recs for lab in r.labels if not is_good(r)})
    out["by_class"] = []
    for lab in labels:
        keep = np.array([is_good(r) or lab in r.labels for r in recs], bool)
        out["by_class"].append(_row(lab, lv[keep], bad[keep], review_level))
    if classifier_held is not None:
        cls = classifier_held[covered]
        out["fused"] = {
            "classifier": _rates(cls, bad),
            "anomaly": _rates(lv >= review_level, bad),
            "fused": _rates(cls | (lv >= review_level), bad),
        }
        for name, h in (decisions or {}).items():
            out["fused"][name] = _rates(h[covered], bad)
    return out


def anomaly_sections(a: dict[str, Any], curves: list[tuple[str, NDArray, NDArray]], out: Path):
    """(heading, html) sections for the HTML report, with the ROC plot."""
    png = plot_anomaly_roc(curves, out / "anomaly_roc.png")
    o = a["overall"]
    note = (
        f"<p>{a['covered']} of {a['photos']} photos have a bank for their design "
        f"({a['fallback_photos']} scored with their family's). Held: level &ge; "
        f"{a['review_level']:.3f}. Overall AUROC {o['auroc']:.3f}, AP {o['ap']:.3f}.</p>"
    )
    sections = [
        ("Anomaly model", note + img_tag(png)),
        ("Anomaly model by design", html_table(a["by_design"])),
    ]
    if a["by_class"]:
        sections.append(("Anomaly model by defect class", html_table(a["by_class"])))
    if "fused" in a:
        rows = [{"decision": k, **v} for k, v in a["fused"].items()]
        sections.append(
            ("Classifier, anomaly model and both (held if either holds)", html_table(rows))
        )
    return sections


def roc_curves(records: Sequence[Record], levels: NDArray) -> list[tuple[str, NDArray, NDArray]]:
    covered = ~np.isnan(levels)
    recs = [r for r, c in zip(records, covered, strict=True) if c]
    lv, bad = levels[covered], np.array([not is_good(r) for r in recs], bool)
    curves = [("all", lv, bad)]
    designs = sorted({design_of(r) for r in recs})
    if len(designs) > 1:
        for d in designs[:8]:
            idx = np.array([design_of(r) == d for r in recs], bool)
            curves.append((d, lv[idx], bad[idx]))
    return curves


def evaluate_anomaly(
    package: Path, manifest_path: Path, out: Path, split: str = "test"
) -> dict[str, Any]:
    """A folder with only an anomaly model: metrics.json and index.html of its numbers."""
    from training.predict import resolve_root

    model = AnomalyModel(package, threads=2)
    manifest = Manifest.read(manifest_path)
    records = manifest.records if split == "all" else manifest.split(split)
    if not records:
        raise DataError(f"{manifest_path}: no photos in split '{split}'")
    levels, banks = anomaly_levels(model, records, resolve_root(manifest_path, None))
    if np.isnan(levels).all():
        raise DataError(f"{package}: no bank covers the designs of the photos in '{split}'")
    a = anomaly_metrics(records, levels, banks, model.meta.review_level)
    metrics = {
        "package": str(package),
        "manifest": str(manifest_path),
        "manifest_version": manifest.header.version,
        "split": split,
        "anomaly": a,
    }
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_safe(metrics), indent=2, allow_nan=False)
    (out / "metrics.json").write_text(text + "\n", encoding="utf-8")
    summary = {k: metrics[k] for k in ("package", "manifest", "split")}
    sections = anomaly_sections(a, roc_curves(records, levels), out)
    write_html(out / "index.html", f"Kito QC anomaly evaluation: {split}", summary, sections)
    return metrics


def package_anomaly(
    package: Path,
    records: Sequence[Record],
    root: Path,
    probs: NDArray,
    classes: Sequence[str],
    out: Path,
    passed: NDArray[np.bool_] | None = None,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A full package's anomaly numbers beside its classifier's (probs at its thresholds):
    metrics and report sections for training.evaluate.evaluate_package. With `passed` (the
    photo gate's flags), the same numbers again for the judged photos under "judged": the
    service runs the anomaly model on no other photo."""
    from qc_model.package import read_meta

    meta = read_meta(package)
    model = AnomalyModel(package, threads=2)
    levels, centred, banks = anomaly_scores(model, records, root)
    cols = defect_columns(classes)
    thr = np.array([meta.thresholds[c].threshold for c in classes])
    held = (np.asarray(probs)[:, cols] >= thr[cols]).any(axis=1)
    review = model.meta.review_level
    # Per photo, for studies of other operating points (research/matched_recall.py,
    # research/unseen_class_proxy.py).
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / SCORES_FILE,
        ids=np.array([r.id for r in records]),
        levels=levels,
        probs=np.asarray(probs, np.float32),
        thresholds=thr,
        classes=np.array(list(classes)),
        passed=passed if passed is not None else np.ones(len(records), bool),
        centred=centred,
    )
    rule, fusion = None, None
    if (f := model.meta.fused) is not None:
        from training.anomaly.fused import classifier_scores, decisions_of

        fusion = (classifier_scores(package, probs, list(classes)), f.weight)
        rule = decisions_of(fusion[0], centred, f, levels)
    a = anomaly_metrics(records, levels, banks, review, held, rule)
    if not a["covered"]:
        return a, [("Anomaly model", "<p>No bank covers the designs of these photos.</p>")]
    sections = anomaly_sections(a, roc_curves(records, levels), out)
    if passed is not None and passed.any():
        keep = np.flatnonzero(passed)
        judged = anomaly_metrics(
            [records[i] for i in keep],
            levels[keep],
            [banks[i] for i in keep],
            review,
            held[keep],
            {k: h[keep] for k, h in rule.items()} if rule is not None else None,
        )
        a["judged"] = judged
        if rule is not None and fusion is not None and judged["covered"]:  # at one recall
            from training.anomaly.fused import FUSED_RULE, matched_recall

            sel = keep[~np.isnan(centred[keep])]
            bad = np.array([not is_good(records[i]) for i in sel], bool)
            cs, w = fusion[0].subset(sel), fusion[1]
            judged["fused"] |= matched_recall(cs, centred[sel], w, bad, rule[FUSED_RULE][sel])
        if judged["covered"]:
            sections += [(f"{h} (judged photos)", html) for h, html in _judged_tables(judged)]
    return a, sections


def _judged_tables(a: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("Anomaly model by defect class", html_table([a["overall"], *a["by_class"]]))]
    if "fused" in a:
        rows = [{"decision": k, **v} for k, v in a["fused"].items()]
        out.append(("Classifier, anomaly model and both", html_table(rows)))
    return out


def summary_line(a: dict[str, Any]) -> str:
    o = a["overall"]
    line = (
        f"anomaly: {a['covered']} photos, AUROC {_fmt(o['auroc'])}, AP {_fmt(o['ap'])}, "
        f"held at level {a['review_level']:.3f}: {_fmt(o['recall'])} of defective, "
        f"{_fmt(o['false_hold_rate'])} of good"
    )
    if "fused" in a:
        f = a["fused"]["fused"]
        line += f"; fused recall {_fmt(f['recall'])}, false-hold {_fmt(f['false_hold_rate'])}"
    j = a.get("judged")
    if j and "fused" in j:
        f, c = j["fused"]["fused"], j["fused"]["classifier"]
        line += (
            f"; judged: AUROC {_fmt(j['overall']['auroc'])}, classifier recall "
            f"{_fmt(c['recall'])} / false-hold {_fmt(c['false_hold_rate'])}, fused "
            f"{_fmt(f['recall'])} / {_fmt(f['false_hold_rate'])}"
        )
        for name, r in j["fused"].items():
            if name not in ("classifier", "anomaly", "fused"):
                line += f"; {name} {_fmt(r['recall'])} / {_fmt(r['false_hold_rate'])}"
    return line


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float):
        return None if obj != obj else obj
    return obj
