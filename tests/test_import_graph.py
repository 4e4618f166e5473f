"""The import graph of the product packages: no circles, and none of ARCHITECTURE.md's forbidden
arrows. Read from the source with `ast`, imports inside functions included: an import moved into
a function still makes a circle, it only hides it until that function runs."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("qc_model", "training", "serving", "kito")
# ARCHITECTURE.md, "Arrows that must never exist": importer package -> imported top-level names.
FORBIDDEN = {
    "qc_model": ("training", "serving"),
    "serving": ("training", "torch"),
}
# qc_model may import torch only in the one module that defines the network.
TORCH_IN_QC_MODEL = {"qc_model.network"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    out = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imported_names(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(every dotted name the module imports, the line), at any depth: module level, functions,
    `if TYPE_CHECKING:` blocks. `from a import b` gives `a.b`: a submodule, or a name in `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The product module an imported dotted name lives in (itself, or the nearest enclosing
    module: `qc_model.gate.check_photo` -> `qc_model.gate`); None outside the product."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {product module it imports: the first line that does}."""
    modules = product_modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, path in modules.items():
        for target, line in imported_names(name, path):
            found = resolve(target, modules)
            if found is not None and found != name:
                graph[name].setdefault(found, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle per strongly connected component (Tarjan), as [a, b, ..., a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle(graph, set(c)) for c in components]


def _circle(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A shortest circle through the component's first module (breadth-first)."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if w in component and w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no circle found in {sorted(component)}")


def describe(graph: dict[str, dict[str, int]], circle: list[str]) -> str:
    return (
        " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(circle))
        + f" -> {circle[-1]}"
    )


def test_no_import_circles_among_product_modules() -> None:
    graph = import_graph()
    found = [describe(graph, c) for c in cycles(graph)]
    assert not found, "import circles:\n" + "\n".join(found)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_arrows(package: str) -> None:
    bad = []
    for name, path in product_modules().items():
        if name.split(".")[0] != package:
            continue
        for target, line in imported_names(name, path):
            top = target.split(".")[0]
            if top in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            if package == "qc_model" and top == "torch" and name not in TORCH_IN_QC_MODEL:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports torch outside the network")
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_checks_see_circles_and_arrows(tmp_path: Path) -> None:
    """The detector on a graph with a known circle, and the reader on known imports."""
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from serving.core import audit\n")
    assert {n for n, _ in imported_names("pkg.m", src)} == {"os", "serving.core.audit"}
    modules = product_modules()
    assert resolve("qc_model.gate.check_photo", modules) == "qc_model.gate"
    assert resolve("numpy.linalg", modules) is None
    graph = import_graph()
    assert "qc_model.gate" in graph and "serving.app" in graph and "kito.cli" in graph
    assert "serving.core.errors" in graph["serving.app"]
