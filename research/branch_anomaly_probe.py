"""Do the surface branch's own cell features make a better anomaly model than the ImageNet
trunk at 192 px (issue 27: AUROC 0.55 on the judged seed-2 test renders)?

The service already runs the branch on 96 px tiles over the piece at 5.2 px/mm for every photo.
Its cells' features are read off the same run (extra graph outputs): `concat`, the stride-8
and upsampled stride-16 features the head sees (152-d), and `hidden`, the head's 96-d layer.
Per design, the counted cells (near the piece) of the good photos the gate passes fill a bank
(at most `--bank-rows`, drawn at random); a photo's anomaly is its cells' nearest-neighbour
distances to its design's bank: the highest (`max`) or the mean of the 3 highest (`top3`).
Printed: AUROC of defective vs good judged test photos, per class and over pairs within a
design (training.metrics.stratified_auroc), with the classifier's own margin (max over classes
of logit(p) - logit(threshold)) beside it. With
`--val`, one fused score per layer, margin + w * log(distance / the good val photos' median),
has w and its threshold chosen on the judged val photos for each target recall (w = 0: the
classifier alone), then scored on test. `--save` keeps each test photo's scores.

    python -m research.branch_anomaly_probe --package models/default \
        --good /work/data/anomaly-good-s27-2k --test /work/data/test-s2-600 \
        [--val /work/data/val-s28-400] [--save OUT.npz]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.anomaly_search import nearest_distances
from qc_model.inference import Inferencer, read_image
from qc_model.manifest import Manifest, Record
from qc_model.package_graphs import open_session
from qc_model.surface import counted_cells
from training.judged import gate_passed
from training.metrics import auroc, stratified_auroc

LAYERS = {"concat": "/net/Concat_output_0", "hidden": "/net/head/head.2/Clip_output_0"}
BANK_ROWS = 16384
LAYERS_MAX = {f"{k}:max" for k in LAYERS}
WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)


def feature_session(package: Path) -> Any:
    """The package's branch graph with the LAYERS tensors as extra outputs."""
    m = onnx.load(str(package / "surface.onnx"))
    for name in LAYERS.values():
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.onnx"
        onnx.save(m, str(path))
        return open_session(path, threads=2)


def photo_cells(
    inf: Inferencer, sess: Any, image: NDArray[np.uint8], design: str | None
) -> tuple[dict[str, NDArray[np.float16]], NDArray[np.float32]]:
    """({layer: (n, C) features of the counted cells}, the package's fused probabilities):
    the tiles scored as the service scores them (qc_model.surface.counted_cells), with the
    LAYERS stacked under the class logits."""
    sm = inf.meta.surface
    assert sm is not None
    prep = inf.prepare(image, design=design)
    assert prep.surface is not None
    names = ["cell_logits", *LAYERS.values()]
    widths: list[int] = []  # channels of each output, for splitting the stacked cells

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        outs = sess.run(names, {"crop": x})
        widths[:] = [o.shape[1] for o in outs]
        return np.concatenate(outs, axis=1)

    cells, count = counted_cells(run, prep.surface, prep.surface_piece, sm.config)
    logits, *feats = np.split(cells[:, count], np.cumsum(widths)[:-1])
    probs, _, _ = inf.run_all(prep.tensor[None])
    fused = inf.fuse(probs[0], logits.max(axis=1), design)
    return {k: f.T.astype(np.float16) for k, f in zip(LAYERS, feats, strict=True)}, fused


def collect(
    inf: Inferencer, sess: Any, root: Path, records: list[Record], desc: str
) -> list[tuple[dict[str, NDArray[np.float16]], NDArray[np.float32]]]:
    return [
        photo_cells(inf, sess, read_image(root / r.image), r.design_id)
        for r in tqdm(records, desc=desc)
    ]


def judged(manifest: Path, limit: int | None) -> tuple[Path, list[Record]]:
    m = Manifest.read(manifest)
    root = manifest if manifest.is_dir() else manifest.parent
    records = [r for r in m.records if r.design_id][:limit]
    ok = gate_passed(records, root, 2, f"gate ({manifest.name})")
    return root, [r for r, k in zip(records, ok, strict=True) if k]


def fused_choice(
    m: NDArray[np.float64],
    a: NDArray[np.float64],
    bad: NDArray[np.bool_],
    target: float,
    weights: tuple[float, ...] = WEIGHTS,
) -> tuple[float, float, float]:
    """(w, t, false-hold) of `m + w * a >= t` with recall >= target and the fewest good photos
    held; weights (0.0,): the classifier alone."""
    best = (0.0, 0.0, 2.0)
    for w in weights:
        s = m + w * a
        for t in np.unique(s[bad]):
            held = s >= t
            if held[bad].mean() >= target and (f := float(held[~bad].mean())) < best[2]:
                best = (w, float(t), f)
    return best


def scored(
    inf: Inferencer,
    sess: Any,
    path: Path,
    limit: int | None,
    banks: dict[str, dict[str, NDArray[np.float32]]],
) -> tuple[list[Record], dict[str, NDArray[np.float64]]]:
    """A set's judged photos and their scores: each layer's highest cell distance and top-3
    mean (NaN where no bank covers the design), and the classifier's margin."""
    root, records = judged(path, limit)
    cells = collect(inf, sess, root, records, path.name)
    out: dict[str, NDArray[np.float64]] = {}
    for layer in LAYERS:
        top = np.full((len(records), 2), np.nan)
        for i, (r, c) in enumerate(zip(records, cells, strict=True)):
            bank = banks[layer].get(r.design_id or "")
            if bank is not None:
                dist = np.sort(nearest_distances(c[0][layer].astype(np.float32), bank))[::-1]
                top[i] = dist[0], dist[:3].mean()
        out[f"{layer}:max"], out[f"{layer}:top3"] = top[:, 0], top[:, 1]
    probs = np.stack([c[1] for c in cells])
    thr = np.array([inf.meta.thresholds[k].review_low for k in inf.classes])
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    t = np.clip(thr, 1e-7, 1 - 1e-7)
    out["classifier margin"] = (np.log(p / (1 - p)) - np.log(t / (1 - t))).max(axis=1)
    return records, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, default=Path("models/default"))
    ap.add_argument("--good", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--val", type=Path, default=None)
    ap.add_argument("--target-recall", type=float, nargs="+", default=[0.95, 0.97])
    ap.add_argument("--bank-rows", type=int, default=BANK_ROWS, help="per design, drawn at random")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--save", type=Path, default=None)
    a = ap.parse_args(argv)
    inf = Inferencer(a.package, threads=2)
    sess = feature_session(a.package)
    groot, good = judged(a.good, a.limit)
    good = [r for r in good if not r.labels]  # no defect of any kind in a bank
    gcells = collect(inf, sess, groot, good, "good photos")
    rng = np.random.default_rng(0)
    banks: dict[str, dict[str, NDArray[np.float32]]] = {k: {} for k in LAYERS}
    for layer in LAYERS:
        for d in sorted({r.design_id or "" for r in good}):
            rows = [c[0][layer] for r, c in zip(good, gcells, strict=True) if r.design_id == d]
            bank = np.concatenate(rows).astype(np.float32)
            if len(bank) > a.bank_rows:
                bank = bank[rng.choice(len(bank), a.bank_rows, replace=False)]
            banks[layer][d] = bank
    test, scores = scored(inf, sess, a.test, a.limit, banks)
    # Defective: a label the classifier scores (a wrong size or colour is the spec checks' job).
    bad = np.array([bool(set(r.labels) & set(inf.classes)) for r in test])
    print(f"\n{len(good)} good bank photos, {len(test)} judged test photos ({bad.sum()} defective)")
    classes = list(inf.classes)
    print("| score | all | " + " | ".join(classes) + " | within design |")
    print("| --- " * (len(classes) + 3) + "|")
    dids = np.array([r.design_id for r in test])
    for name, s in scores.items():
        ok = ~np.isnan(s)
        row = [auroc(s[ok], bad[ok])]
        for cl in classes:
            has = np.array([cl in r.labels for r in test])
            sel = ok & (has | ~bad)  # the class's photos against the good ones
            row.append(auroc(s[sel], has[sel]))
        row.append(stratified_auroc(s[ok], bad[ok], list(dids[ok])))
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    if a.val is not None:
        val, vs = scored(inf, sess, a.val, a.limit, banks)
        vbad = np.array([bool(set(r.labels) & set(inf.classes)) for r in val])
        m0 = scores["classifier margin"]
        print(
            f"\nheld at the package's thresholds (test): recall {(m0 >= 0)[bad].mean():.3f}, "
            f"false-hold {(m0 >= 0)[~bad].mean():.3f}"
        )
        print(f"chosen on {len(val)} judged val photos ({vbad.sum()} defective), on test:")
        print("| target recall | score | w | test recall | test false-hold |")
        print("| --- | --- | ---: | ---: | ---: |")
        for target in a.target_recall:
            for name in ("classifier margin", *sorted(LAYERS_MAX)):
                if name in LAYERS_MAX:  # log distance, 0 at the good val photos' median
                    centre = np.median(np.log(vs[name])[~vbad])
                    va, ta = np.log(vs[name]) - centre, np.log(scores[name]) - centre
                    choice = fused_choice(vs["classifier margin"], np.nan_to_num(va), vbad, target)
                else:
                    va, ta = np.zeros(len(val)), np.zeros(len(test))
                    choice = fused_choice(vs["classifier margin"], va, vbad, target, (0.0,))
                w, t, _ = choice
                held = scores["classifier margin"] + w * np.nan_to_num(ta) >= t
                r, f = held[bad].mean(), held[~bad].mean()
                print(f"| {target} | {name} | {w:g} | {r:.3f} | {f:.3f} |")
    if a.save:
        labels = np.array([[cl in r.labels for cl in classes] for r in test])
        arrays: dict[str, Any] = {k.replace(":", "__"): v for k, v in scores.items()}
        arrays.update(ids=np.array([r.id for r in test]), designs=dids, labels=labels)
        np.savez(a.save, **arrays)


if __name__ == "__main__":
    main()
