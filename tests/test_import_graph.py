"""No import circles among the project's own modules.

The graph is read with ``ast`` (nothing is imported): every ``import x`` / ``from x import y`` in
``app.py``, ``cli.py``, ``synth/``, ``constructs/``, ``tiers/`` and ``ops/`` (when present),
including imports inside functions and ``TYPE_CHECKING`` blocks: a function-level import hides a
circle from Python's loader, not from a reader. ``from pkg import name`` counts as an edge to
``pkg.name`` when that is one of our modules, else to ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_FILES = ("app.py", "cli.py")
PACKAGES = ("synth", "constructs", "tiers", "ops")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {module_name(ROOT / f): ROOT / f for f in TOP_FILES if (ROOT / f).is_file()}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts and "scripts" not in path.relative_to(ROOT).parts:
                found[module_name(path)] = path
    return found


def _resolve(base: str, modules: dict[str, Path]) -> str | None:
    """``base`` or its closest enclosing module that is ours (``tiers.models.X`` -> ``tiers.models``)."""
    parts = base.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join(package + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_graph_sees_our_modules() -> None:
    graph = import_graph()
    assert "constructs.release_chart" in graph and "tiers.models" in graph and "app" in graph
    assert "constructs.platform" in graph["constructs.release_chart"]
    assert "tiers.models" in graph["constructs.platform"]
    assert "tiers.models.base" in graph["tiers.models.core"], "the submodules of tiers/models/ are read too"
    assert "synth.pipeline" in graph["synth.run"] and "synth.cache" in graph["synth.plan"], "synth/ is read too"


#: The models' modules by layer: each imports only from layers before it (base <- concerns <- environment).
MODEL_LAYERS = (("base",), ("core", "edge", "lifecycle", "isolation"), ("environment", "fleet"))


def test_the_models_import_one_way() -> None:
    graph = import_graph()
    modules = sorted(m for m in graph if m.startswith("tiers.models."))
    layered = sorted(f"tiers.models.{m}" for layer in MODEL_LAYERS for m in layer)
    assert modules == layered, f"tiers/models/ holds {modules}; list each module in MODEL_LAYERS"
    for i, layer in enumerate(MODEL_LAYERS):
        allowed = {f"tiers.models.{m}" for earlier in MODEL_LAYERS[:i] for m in earlier}
        for m in layer:
            name = f"tiers.models.{m}"
            wrong = sorted(t for t in graph[name] if t.startswith("tiers.models") and t not in allowed)
            assert not wrong, f"{name} imports {wrong}; the models import only from layers before theirs"


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles among our modules (each line: the modules of one circle): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
