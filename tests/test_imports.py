"""The package's internal imports form no cycle (DESIGN.md: dependencies point one way).

Function-level imports count too: a lazy import that closes a loop still ties the two modules together (each
needs the other to work), it only hides the loop from the interpreter. ``if TYPE_CHECKING:`` imports count as
well; none of ours close a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jat_policy

ROOT = Path(jat_policy.__file__).parent
PACKAGE = "jat_policy"


def _module_name(path: Path) -> str:
    parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """jat_policy modules imported anywhere in ``path``; ``from pkg import name`` counts ``pkg.name`` if a module."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            # `from pkg import submodule` needs the submodule, not pkg's own code (pkg may be mid-import)
            found.update(submodules if len(submodules) == len(node.names) else {base, *submodules})
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_sees_known_edges():
    graph = _graph()
    assert "jat_policy.data.storage" in graph["jat_policy.data.loading"]
    assert "jat_policy.score_reference" in graph["jat_policy.tasks"]


def test_no_import_cycles():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_tasks_is_a_standard_library_leaf():
    assert _graph()["jat_policy.tasks"] <= {"jat_policy.score_reference"}
    assert _graph()["jat_policy.score_reference"] == set()
