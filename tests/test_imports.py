"""The package's import graph: no import circles inside sim2real/, no private names imported across modules.

Walks every module's imports with `ast` (top-level and inside functions alike: a lazy import still
ties two modules together). No package is exempt, the scene generator (`sim2real/synth/`) included.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sim2real"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against the importer)."""
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


@cache  # every test walks the same files: parse each once per session
def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import statement in a module."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(_resolve(name, node), a.name, node.lineno) for a in node.names]
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the sim2real modules it imports (`from pkg import module` counts as the module)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name in MODULES:
        for module, attr, _ in _imports(name):
            target = f"{module}.{attr}" if attr and f"{module}.{attr}" in MODULES else module
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_lazy_imports() -> None:
    """A function-level import counts: evaluate.cli imports predict inside `evaluate_main`."""
    assert "sim2real.evaluate.predict" in _graph()["sim2real.evaluate.cli"]


def test_no_import_cycle_inside_the_package() -> None:
    cycles = _cycles(_graph())
    assert not cycles, f"import circles: {cycles}"


def test_no_private_name_imported_from_another_module() -> None:
    bad = [f"{MODULES[name].relative_to(REPO)}:{line} imports {attr} from {module}"
           for name in MODULES for module, attr, line in _imports(name)
           if attr and attr.startswith("_") and not attr.startswith("__") and module != name]
    assert not bad, "private names used across modules (make them public where they belong):\n" + "\n".join(bad)


def test_the_generator_is_a_straight_line() -> None:
    """synth/: render uses shading and the camera; neither shading nor the camera reaches back."""
    graph = _graph()
    assert {"sim2real.synth.shading", "sim2real.synth.camera"} <= graph["sim2real.synth.render"]
    assert "sim2real.synth.render" not in graph["sim2real.synth.camera"] | graph["sim2real.synth.shading"]
    assert "sim2real.synth.camera" not in graph["sim2real.synth.shading"]


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
