"""The package's layers, read from its source: no import circle, and no library module that imports a command line.

Only imports that run when a module loads count (module level, outside `if TYPE_CHECKING:`); an import inside
a function is a deliberate late dependency. Importing facedyn.a.b also loads the package facedyn.a.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "facedyn"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _load_time_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.extend(f"{node.module}.{alias.name}" for alias in node.names)
                names.append(node.module)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])

    visit(tree.body)
    return names


def imports_of(module: str) -> set[str]:
    """The facedyn modules that loading `module` loads directly (with their parent packages)."""
    found = set()
    for name in _load_time_imports(ast.parse(MODULES[module].read_text())):
        while name and name not in MODULES:  # `from package import name`: name may be an attribute
            name = name.rpartition(".")[0]
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    found.discard(module)
    return {m for m in found if m in MODULES and not module.startswith(m + ".")}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_no_import_circle() -> None:
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module)


def test_the_library_never_imports_a_command_line() -> None:
    offenders = {module: sorted(t for t in targets if t.startswith("facedyn.cli"))
                 for module, targets in GRAPH.items()
                 if not module.startswith("facedyn.cli") and not module.endswith("__main__")}
    assert not {m: t for m, t in offenders.items() if t}


def test_the_layers_below_know_nothing_of_those_above() -> None:
    # (lower, higher): nothing in `lower` imports `higher`
    for lower, higher in (("facedyn.utils", "facedyn."), ("facedyn.data", "facedyn.videos"),
                          ("facedyn.flow", "facedyn.data"), ("facedyn.flow", "facedyn.videos"),
                          ("facedyn.data", "facedyn.training"), ("facedyn.model", "facedyn.training"),
                          ("facedyn.runs", "facedyn.training"), ("facedyn.training", "facedyn.sweep"),
                          ("facedyn.training", "facedyn.crossval"), ("facedyn.training", "facedyn.inference")):
        for module, targets in GRAPH.items():
            if module.startswith(lower):
                wrong = sorted(t for t in targets if t.startswith(higher) and not t.startswith(lower))
                assert not wrong, f"{module} imports {wrong}"
