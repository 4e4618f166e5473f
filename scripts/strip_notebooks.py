#!/usr/bin/env python3
"""Strip outputs, execution counts and run metadata from notebooks (committed copies stay clean).

    .venv/bin/python scripts/strip_notebooks.py            # every notebooks/**/*.ipynb, in place
    .venv/bin/python scripts/strip_notebooks.py --check    # exit 1 listing any unstripped file
    .venv/bin/python scripts/strip_notebooks.py a.ipynb b.ipynb

Numbers in a committed notebook would be stale the moment the code changes, and outputs make
diffs unreadable; the test suite executes the notebooks instead (tests/notebooks/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# Cell metadata written by a run (nbclient timings, the UI's scroll state); tags are kept.
RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def strip(nb: nbformat.NotebookNode) -> bool:
    """Strip `nb` in place; True when anything was removed."""
    changed = False
    for cell in nb.cells:
        for key in RUN_METADATA:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type != "code":
            continue
        if cell.outputs or cell.execution_count is not None:
            cell.outputs, cell.execution_count = [], None
            changed = True
    if "widgets" in nb.metadata:
        del nb.metadata["widgets"]
        changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/**/*.ipynb)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if any needs it")
    args = p.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").rglob("*.ipynb"))
    dirty = []
    for path in paths:
        if not path.is_file():
            print(f"{path}: no such notebook", file=sys.stderr)
            return 2
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, path)
    for path in dirty:
        print(f"{'not stripped' if args.check else 'stripped'}: {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
