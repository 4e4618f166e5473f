"""Class balance and split sizes of a manifest, as a rich table."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from qc_model.manifest import GOOD, Manifest
from qc_model.taxonomy import SPLITS


def stats_table(manifest: Manifest) -> Table:
    h = manifest.header
    # Pipeline order (train, val, test, holdout), unassigned last; not alphabetical.
    order = [*SPLITS, "-"]
    splits = sorted({r.split or "-" for r in manifest.records}, key=order.index)
    table = Table(
        title=f"{h.name} (version {h.version}, {h.task}, {len(manifest.records)} photos, "
        f"{len({r.piece_id for r in manifest.records})} pieces)"
    )
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    table.add_column("all", justify="right")
    per_split = {s: Counter[str]() for s in splits}
    for r in manifest.records:
        per_split[r.split or "-"].update(r.labels or [GOOD])
    classes = [GOOD, *h.classes] if h.task == "multilabel" else list(h.classes)
    for c in classes:
        row = [per_split[s][c] for s in splits]
        table.add_row(c, *map(str, row), str(sum(row)))
    sizes = [sum(1 for r in manifest.records if (r.split or "-") == s) for s in splits]
    table.add_section()
    table.add_row("photos", *map(str, sizes), str(len(manifest.records)))
    return table
