"""The shape of the package: no import cycles, small modules, an engine that stands on its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vexpress_cli"
MAX_LINES = 450
# A module may exceed the limit only when it is one network's definition.
NETWORK_DEFINITIONS = PACKAGE / "engine" / "networks"
# The web app is a front end beside the CLI: it calls the jobs like any library user.
UI_MUST_NOT_IMPORT = ("typer", "rich", "click", "vexpress_cli.cli", "vexpress_cli.engine")
ENGINE_MUST_NOT_IMPORT = ("typer", "rich", "click", "vexpress_cli.cli", "vexpress_cli.jobs", "vexpress_cli.settings",
                          "vexpress_cli.plugins")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def type_checking_blocks(tree: ast.AST) -> set[ast.AST]:
    """Import nodes under ``if TYPE_CHECKING:``: read by type checkers only, never run."""
    blocks = [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    return {inner for block in blocks for statement in block.body for inner in ast.walk(statement)}


def imported_names(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (lazy imports inside functions count)."""
    names = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = type_checking_blocks(tree)
    for node in ast.walk(tree):
        if node in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def package_imports(path: Path) -> set[str]:
    """The vexpress_cli modules a module imports."""
    found = set()
    for name in imported_names(path):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found - {module_name(path)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        trail.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_even_through_lazy_imports():
    graph = {name: package_imports(path) for name, path in MODULES.items()}
    assert find_cycle(graph) is None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_over_the_line_limit_unless_it_defines_a_network():
    long = {name: lines for name, path in MODULES.items()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and NETWORK_DEFINITIONS not in path.parents}
    assert long == {}


def test_engine_modules_import_nothing_of_the_front_ends():
    engine = {name: path for name, path in MODULES.items() if name.startswith("vexpress_cli.engine")}
    offending = {name: sorted(imported for imported in imported_names(path)
                              if imported.startswith(ENGINE_MUST_NOT_IMPORT))
                 for name, path in engine.items()}
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_web_app_imports_nothing_of_the_engine_or_the_cli():
    ui = {name: path for name, path in MODULES.items() if name.startswith("vexpress_cli.ui")}
    offending = {name: sorted(imported for imported in imported_names(path) if imported.startswith(UI_MUST_NOT_IMPORT))
                 for name, path in ui.items()}
    assert len(ui) > 1 and {name: found for name, found in offending.items() if found} == {}
