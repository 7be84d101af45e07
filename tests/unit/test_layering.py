"""The house's rules, checked: no import circles between the package's modules, and the engine
imports nothing from the web, the stores, the buses or the frameworks (it takes its collaborators
through its constructors; tests/integration/test_packaging.py checks it imports without Flask)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "spiral_web"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package this file imports when it is loaded: top-level imports only
    (not those inside functions, which run later, nor those under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            target = (
                (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            )
            found.add(target or "")
            found.update(f"{target}.{a.name}" for a in node.names)  # `from . import x`
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in files and m != name}
        for name, path in files.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk meets, as the path that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # a package's __init__ importing its own modules is not a circle
    return [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c[1:])]


def test_the_walk_finds_a_circle_and_forgives_a_package_importing_its_modules():
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p.a"}, "q": {"q.x"}, "q.x": set()}
    assert _cycles(graph) == [["p.a", "p.b", "p.a"]]


def test_no_module_imports_itself_through_others():
    real = _cycles(_graph())
    assert real == [], " | ".join(" -> ".join(c) for c in real)


def test_the_engine_depends_on_nothing_outside_it():
    outside = ("flask", "flask_sock", "gevent", "werkzeug", "redis", "psycopg", "gunicorn")
    layers = ("spiral_web.web", "spiral_web.store", "spiral_web.bus", "spiral_web.services")
    for path in (PACKAGE / "engine").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(outside), f"{path.name} imports {name}"
            assert not name.startswith(layers), f"{path.name} imports {name}"
