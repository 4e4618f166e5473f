"""The project's user-facing input errors, gathered so the CLI and the service can map them."""

from __future__ import annotations

from qc_model.catalog import CatalogError
from qc_model.manifest import ManifestError


class DataError(ValueError):
    """Input data that cannot be used as given (empty data set, unknown label, missing file)."""


USER_ERRORS: tuple[type[Exception], ...] = (
    CatalogError,
    ManifestError,
    DataError,
    FileNotFoundError,
)
