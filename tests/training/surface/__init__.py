"""tests of training.surface (a package so that its conftest and helpers import as
surface.*, with tests/training on the path for tiny_package)."""
