"""Kito QC's shared core: taxonomy, catalog and manifest schemas, preprocessing, inference, policy.

Importing this package is cheap and never imports torch (ARCHITECTURE.md).
"""

__version__ = "0.1.0"
