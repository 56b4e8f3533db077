"""No import cycles among dockline's modules.

The graph is built from the source with ast.  At run time (the test that
matters for a plugin call) an edge is a module-level import: ``if
TYPE_CHECKING:`` blocks are skipped (annotations are strings under ``from
__future__ import annotations``), and so are imports inside functions
(deferred on purpose, to keep start-up cheap).  A second test also counts the
deferred imports: a cycle through them (launch <-> zygote once was one) is a
layering mistake even when it happens to import fine.

Importing ``a.b.c`` runs ``a``, ``a.b`` then ``a.b.c``, so it is an edge to
each of them (except the importer's own packages, already being imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib"
PACKAGE = "dockline"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    """Absolute names of the modules an import statement may load."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        stem = ".".join(base + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    # "from pkg import name" loads the submodule pkg.name when it is one
    return {stem} | {f"{stem}.{alias.name}" for alias in node.names}


def _imports(tree: ast.Module, package: str, deferred: bool) -> set[str]:
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(_targets(node, package))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)  # the body only runs under a type checker
            elif deferred or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                # descend into if/try/with/for/class bodies (and functions,
                # when counting deferred imports)
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit([c for c in children if isinstance(c, ast.stmt)])
                        for handler in children:
                            if isinstance(handler, ast.ExceptHandler):
                                visit(handler.body)
                if isinstance(node, ast.Match):
                    for case in node.cases:
                        visit(case.body)

    visit(tree.body)
    return found


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    paths = sorted((LIB / PACKAGE).rglob("*.py"))
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        edges: set[str] = set()
        for target in _imports(tree, package, deferred):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and not (name + ".").startswith(prefix + "."):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of module names (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = walk(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = walk(node)
            if cycle:
                return cycle
    return None


def test_graph_sees_the_package() -> None:
    runtime, everything = import_graph(), import_graph(deferred=True)
    # known edges, so an empty graph cannot pass the tests below
    assert "dockline.netlink.rtnl" in runtime["dockline.netlink.netns"]
    assert "dockline.netlink.interfaces" in runtime["dockline.netlink.netns"]
    # the zygote imports the netlink package inside a function only
    assert "dockline.netlink" not in runtime["dockline.zygote_server"]
    assert "dockline.netlink" in everything["dockline.zygote_server"]
    # and its client half nothing of dockline's up front
    assert not {m for m in runtime["dockline.zygote"] if m.startswith("dockline")}
    # TYPE_CHECKING-only imports are never edges
    for graph in (runtime, everything):
        assert "dockline.netlink.netns" not in graph["dockline.netlink.interfaces"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_runtime_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle at module level: " + " -> ".join(cycle or [])


def test_no_import_cycle_through_deferred_imports() -> None:
    cycle = find_cycle(import_graph(deferred=True))
    assert cycle is None, "import cycle (counting imports in functions): " + " -> ".join(
        cycle or []
    )


def test_netlink_exports_match_all() -> None:
    # dockline.netlink serves its names lazily from a table; __all__ is
    # spelled out beside it for linters and type checkers: keep them equal.
    import dockline.netlink as netlink

    assert netlink.__all__ == sorted(netlink._EXPORTS)
