"""Labels a photo can show: a synthetic data set relabelled by what its photos show.

    kito data visible data/test-s2-2k --out data/test-s2-2k-visible.jsonl --workers 2

The renderer draws a defect on the piece whatever the capture makes of it, and labels the
photo with it. Some of those defects change no pixel a person would notice: a faint line
across an engraved band, pits under a soft focus. QC staff label what they see in the photo;
a model cannot do better. Such labels also set a floor on the false-hold rate that no scorer
can get under: thresholds that catch a target share of the defective photos must catch most of
the invisible ones too, and those score like good photos (`hold_floor`).

Every visual defect label is measured with its twin (training.visibility: the photo rendered
again without that defect; the number of pixels the defect changes by CIE76 ΔE >= 6, or the
`delta_e` given). A label whose defect changes fewer than `min_px` pixels is *unseen* and
leaves the record's labels and masks. A photo all of whose labels are unseen shows a defective
piece as if it were good: it is neither, and leaves the manifest. Each kept record carries
`meta["visible_px"]` (per visual label, before relabelling) and `meta["unseen"]`. The header's
recipe says what was changed. The result is an ordinary manifest: merge, attach and eval read
it like any other.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record, relocated
from qc_model.taxonomy import VISUAL_DEFECTS
from training.visibility import VISIBLE_DE, label_visibility

MIN_VISIBLE_PX = 5  # the model card's "visible" since 2026-11-26: ≥ 5 pixels at ΔE ≥ 6


@dataclass
class Relabelled:
    """What relabelling changed: counts per class and the photos dropped."""

    photos: int = 0
    defective: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    unseen: Counter[str] = field(default_factory=Counter)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.photos} photos, {self.defective} with a visual defect label; "
            f"{len(self.dropped)} show none of their defects and are left out"
        ]
        for c in VISUAL_DEFECTS:
            if self.labels[c]:
                lines.append(f"  {c}: {self.unseen[c]} of {self.labels[c]} labels unseen")
        return "\n".join(lines)


def relabel(
    records: list[Record], visible: dict[tuple[str, str], int], min_px: int = MIN_VISIBLE_PX
) -> tuple[list[Record], Relabelled]:
    """`records` with labels (and masks) that change fewer than `min_px` pixels removed, and
    without the photos left with none of the labels they had. `visible` maps (record id,
    label) to its visible pixels and must cover every visual label."""
    kept, stats = [], Relabelled(photos=len(records))
    for r in records:
        visual = [lab for lab in r.labels if lab in VISUAL_DEFECTS]
        if not visual:
            kept.append(r)
            continue
        stats.defective += 1
        missing = [lab for lab in visual if (r.id, lab) not in visible]
        if missing:
            raise DataError(f"{r.id}: no visibility measured for {missing}")
        px = {lab: visible[(r.id, lab)] for lab in visual}
        unseen = sorted(lab for lab, n in px.items() if n < min_px)
        stats.labels.update(visual)
        stats.unseen.update(unseen)
        labels = [lab for lab in r.labels if lab not in unseen]
        if not labels:
            stats.dropped.append(r.id)
            continue
        kept.append(
            r.model_copy(
                update={
                    "labels": labels,
                    "masks": {k: v for k, v in r.masks.items() if k not in unseen},
                    "meta": r.meta | {"visible_px": px, "unseen": unseen},
                }
            )
        )
    return kept, stats


def hold_floor(defective: int, unseen_only: int, target_recall: float) -> float:
    """The false-hold rate a scorer that cannot see the `unseen_only` photos (of `defective`)
    must pay to reach `target_recall`, if it scores them like good photos and finds every
    other defective photo: the share of them it must still hold. 0 when the others suffice."""
    if defective <= 0 or not 0 <= unseen_only <= defective:
        raise DataError("need 0 <= unseen-only photos <= defective photos, and some defective")
    need = math.ceil(target_recall * defective - 1e-9) - (defective - unseen_only)
    return max(0, need) / unseen_only if unseen_only else 0.0


def visible_manifest(
    data: Path,
    out: Path,
    min_px: int = MIN_VISIBLE_PX,
    workers: int = 1,
    delta_e: float = VISIBLE_DE,
) -> tuple[Manifest, Relabelled]:
    """Measure every visual label of synthetic set `data` and write the relabelled manifest
    at `out` (paths rewritten as `kito data merge` does, so `out` must lie above `data`). A
    label is seen when its defect changes at least `min_px` pixels by ΔE >= `delta_e`."""
    if min_px < 1:
        raise DataError(f"min_px must be at least 1, got {min_px}")
    if not delta_e > 0:
        raise DataError(f"delta_e must be above 0, got {delta_e}")
    relocated(data, out, [])  # refuses an `out` not above `data` before any rendering
    rows = label_visibility(data, workers, delta_e)
    source = Manifest.read(data / "manifest.jsonl")
    visible = {(row["id"], row["label"]): int(row["visible_px"]) for row in rows}
    kept, stats = relabel(source.records, visible, min_px)
    recipe: dict[str, Any] = {
        "command": "visible",
        "built_from": [{"manifest": str(data), "version": source.header.version}],
        "visible_de": delta_e,
        "min_px": min_px,
        "labels": dict(stats.labels),
        "unseen": dict(stats.unseen),
        "dropped": stats.dropped,
    }
    header = source.header.model_copy(update={"name": out.stem, "version": "", "recipe": recipe})
    m = Manifest(header=header, records=relocated(data, out, kept)).write(out)
    return m, stats
