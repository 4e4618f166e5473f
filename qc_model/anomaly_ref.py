"""A model package's pointer to its anomaly model (package.json's `anomaly` entry), checked.

package.json records anomaly.json's checksum; anomaly.json records those of the graph and the
banks; so the package's own checksum chain covers every file the anomaly model reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from qc_model.anomaly import ANOMALY_META, AnomalyError, AnomalyModel
from qc_model.manifest import checksum_mismatch


class AnomalyRef(BaseModel):
    """The package's anomaly model (anomaly.json and the files it names, qc_model.anomaly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meta_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # of anomaly.json
    designs: list[str] = Field(default_factory=list)  # designs with a bank of their own
    fallback: list[str] = Field(default_factory=list)  # designs scored with their family's


def open_anomaly(folder: Path, ref: AnomalyRef, threads: int) -> AnomalyModel:
    """The package's anomaly model, once anomaly.json matches the package's checksum."""
    path = folder / ANOMALY_META
    if not path.is_file():
        raise AnomalyError(
            f"{folder}: package.json names an anomaly model, {ANOMALY_META} is missing"
        )
    if why := checksum_mismatch(path, ref.meta_sha256, "package.json"):
        raise AnomalyError(why)
    return AnomalyModel(folder, threads)
