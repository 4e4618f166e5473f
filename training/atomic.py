"""Files that readers see whole or not at all: written aside in the same folder, then renamed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[str], object], suffix: str = ".tmp") -> None:
    """`write(tmp_path)` fills a temporary file beside `path`, which then replaces `path` in one
    rename. Several ranks (torchrun) may write the same cache entry; the last rename wins and no
    reader sees a half-written file. `suffix` matters to writers that choose a format by it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
