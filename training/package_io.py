"""A model package on disk, as every command that writes one builds it: staged in a hidden
folder and renamed into place only once it loads as the service loads it (`staged_package`),
its metadata embedded and checksummed (`finish_package`), its graphs copied from another
package (`copy_graphs`, `network_alone`). Used by kito export, quantize, repack, thresholds
and surface attach."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qc_model.errors import DataError
from qc_model.identity import REFS_FILE
from qc_model.manifest import sha256_file
from qc_model.package import (
    MODEL_FILE,
    ONNX_META_KEY,
    SURFACE_FILE,
    PackageMeta,
    load_package,
    read_meta,
    write_package_json,
)


class ExportError(DataError):
    """An export that must not produce a package (parity failed, quantization lost accuracy)."""


def embed_metadata(path: Path, meta: PackageMeta) -> None:
    """Write the package metadata into the ONNX file's metadata_props (in place), and declare
    the output shapes the graph is known to produce.

    timm's TF-style "same" padding computes pads from the input shape at run time, so the
    exporter leaves the heatmap's height and width symbolic; the input size is fixed, so they
    are not, and the loader checks them.
    """
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, meta.embedded_json()
    model.producer_name = "kito-qc"
    k, (h, w) = len(meta.classes), meta.heatmap_size
    shapes = {"probs": [None, k], "heatmaps": [None, k, h, w]}
    for out in model.graph.output:
        if out.name not in shapes:  # the embedding (training.identity_graph) declares its own
            continue
        for dim, value in zip(out.type.tensor_type.shape.dim, shapes[out.name], strict=True):
            if value is not None:
                dim.dim_value = value
    onnx.save(model, str(path))


def finish_package(folder: Path, meta: PackageMeta) -> PackageMeta:
    """Validate the metadata (callers pass `model_copy`s, which run no validators), embed it,
    then checksum the final bytes and write package.json."""
    meta = PackageMeta.model_validate(meta.model_dump())
    embed_metadata(folder / MODEL_FILE, meta)
    meta = meta.model_copy(update={"onnx_sha256": sha256_file(folder / MODEL_FILE)})
    meta = PackageMeta.model_validate(meta.model_dump())
    write_package_json(folder, meta)
    return meta


def network_alone(package: Path, folder: Path) -> PackageMeta:
    """The package's defect network without its surface branch, written into `folder`: the
    graph and metadata only (the fusion's data version goes with the branch)."""
    meta = read_meta(package)
    shutil.copyfile(package / MODEL_FILE, folder / MODEL_FILE)
    copy_references(package, folder, meta)
    versions = {k: v for k, v in meta.dataset_versions.items() if k != "fusion"}
    update = {"surface": None, "dataset_versions": versions}
    return finish_package(folder, meta.model_copy(update=update))


@contextmanager
def staged_package(out: Path) -> Iterator[Path]:
    """A hidden folder beside `out` to build a new package in.

    When the block ends without an error and the package passes every check the service makes
    (load_package), the folder becomes `out`. Otherwise it is removed, so nothing half-written
    is left.
    """
    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        yield tmp
        load_package(tmp, threads=1)
        # mkdtemp makes the folder private (0700); a package is read by the service's user too.
        tmp.chmod(0o777 & ~_umask())
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def copy_graphs(package: Path, dest: Path, meta: PackageMeta) -> None:
    """The package's ONNX graphs (the network, and the surface branch if it has one), and its
    design references (the network's embeddings, valid while the network computes the same)."""
    shutil.copyfile(package / MODEL_FILE, dest / MODEL_FILE)
    if meta.surface is not None:
        shutil.copyfile(package / SURFACE_FILE, dest / SURFACE_FILE)
    copy_references(package, dest, meta)


def copy_references(package: Path, dest: Path, meta: PackageMeta) -> None:
    if meta.identity is not None:
        shutil.copyfile(package / REFS_FILE, dest / REFS_FILE)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
