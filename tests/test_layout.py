"""The package's shape: imports run one way, from the faces down to the ground floor.

The floors (CONTRIBUTING.md) are, from the bottom: ground (settings, errors, contract and the
small shared vocabularies), storage (the lake), data (raw log to pages), core (pure analysis,
models, the generative model), decide (business, simulator environments, serving), compose
(pipeline, report) and faces (the CLI and the web app). A module may import its own floor and
the floors below; nothing may import upwards, and no two modules import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "microsub"

#: Floor of each module, by the longest matching prefix of its dotted name.
FLOORS = {
    "microsub": 0,
    "microsub.config": 0,
    "microsub.errors": 0,
    "microsub.contract": 0,
    "microsub.progress": 0,
    "microsub.plain": 0,
    "microsub.fmt": 0,
    "microsub.lake": 1,
    "microsub.data": 2,
    # the log writer runs the core's generative model; nothing below the core imports it
    "microsub.data.synth": 3,
    "microsub.analysis": 3,
    "microsub.models": 3,
    "microsub.sim": 3,
    "microsub.sim.dynamics": 3,
    "microsub.sim.params": 3,
    "microsub.sim.env": 4,
    "microsub.sim.vector": 4,
    "microsub.sim.policies": 4,
    "microsub.sim.evaluate": 4,
    "microsub.sim.study": 4,
    "microsub.sim.store": 4,
    "microsub.business": 4,
    "microsub.serve": 4,
    "microsub.pipeline": 5,
    "microsub.report": 5,
    "microsub.cli": 6,
    "microsub.__main__": 6,
    "microsub.serve.app": 6,
}
FLOOR_NAMES = ["ground", "storage", "data", "core", "decide", "compose", "faces"]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(name: str) -> int:
    best = max((p for p in FLOORS if name == p or name.startswith(p + ".")), key=len)
    return FLOORS[best]


def imports(path: Path) -> set[str]:
    """microsub modules imported by ``path`` (type-checking-only imports excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("microsub"))
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("microsub")
        ):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                known = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py")
                package = PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                found.add(candidate if known.exists() or package.exists() else node.module)
    return found


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_floor() -> None:
    for name in GRAPH:
        assert 0 <= floor(name) < len(FLOOR_NAMES), name


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_run_downwards(name: str) -> None:
    upward = [
        f"{name} ({FLOOR_NAMES[floor(name)]}) imports {target} ({FLOOR_NAMES[floor(target)]})"
        for target in sorted(GRAPH[name])
        if floor(target) > floor(name)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over module imports (a package's __init__
    # importing its own modules is not a cycle back from them unless they import it)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
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

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_package_imports_nothing_at_import_time() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
