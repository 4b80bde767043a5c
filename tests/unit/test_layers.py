"""The package's layers, checked: who may import whom, no cycles, small modules.

| layer | may import |
|---|---|
| `bot.domain` | itself only |
| `bot.store` | the domain |
| `bot.rasa_ext` | the domain, the store |
| `bot.console` | the domain, the store |
| `actions` | the domain, the store |
| `bot.tools` | anything; nothing at runtime imports it |

`bot.profile` (which deployment profile runs) imports nothing and may be imported
by every layer. Function-level imports count like the others.

In `tests/`, no module imports a conftest: shared helpers live in `tests/support/`,
a conftest holds fixtures and hooks only.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 500

#: Each layer, and the layers (besides itself and `bot.profile`) it may import.
ALLOWED: dict[str, set[str]] = {
    "bot.domain": set(),
    "bot.store": {"bot.domain"},
    "bot.rasa_ext": {"bot.domain", "bot.store"},
    "bot.console": {"bot.domain", "bot.store"},
    "actions": {"bot.domain", "bot.store"},
    "bot.tools": {"bot.domain", "bot.store", "bot.rasa_ext", "bot.console", "actions"},
}
SHARED = {"bot.profile"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("bot", "actions"):
        for path in (ROOT / package).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> Iterator[tuple[int, str]]:
    """(line, project module) for every import in `module`, at any depth."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # `from package import module` needs the module; a name needs its module.
            names = [n if n in MODULES else base for n in submodules]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target and target != module and target not in ("bot", "actions"):
                yield node.lineno, target


def test_every_module_belongs_to_a_layer() -> None:
    strays = [m for m in MODULES if layer_of(m) is None and m not in SHARED | {"bot", "actions"}]
    assert strays == []


def wrong_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports against the direction of the layers."""
    wrong = []
    for module, targets in sorted(graph.items()):
        layer = layer_of(module)
        if layer is None:
            continue
        for target in sorted(targets):
            target_layer = layer_of(target)
            if target in SHARED or target_layer == layer:
                continue
            if target_layer not in ALLOWED[layer]:
                wrong.append(f"{module} imports {target}")
    return wrong


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, as the path that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


GRAPH = {module: {target for _, target in imports_of(module)} for module in MODULES}


def test_imports_follow_the_layers() -> None:
    assert wrong_imports(GRAPH) == []


def test_the_shared_modules_import_nothing_of_the_project() -> None:
    assert [target for module in SHARED for target in GRAPH[module]] == []


def test_no_import_cycles() -> None:
    assert cycles_in(GRAPH) == []


def test_tools_are_imported_by_nothing_at_runtime() -> None:
    users = [
        m
        for m, targets in GRAPH.items()
        if layer_of(m) != "bot.tools"
        for t in targets
        if layer_of(t) == "bot.tools"
    ]
    assert users == []


def test_the_checks_catch_a_wrong_direction_and_a_cycle() -> None:
    graph = {
        "bot.domain.policy": {"bot.store.models"},
        "actions.offers": {"bot.tools.stack", "actions.routing"},
        "actions.routing": {"actions.offers"},
        "bot.store.models": {"bot.domain.vocabulary", "bot.profile"},
    }
    assert wrong_imports(graph) == [
        "actions.offers imports bot.tools.stack",
        "bot.domain.policy imports bot.store.models",
    ]
    assert cycles_in(graph) == [["actions.offers", "actions.routing", "actions.offers"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines"


# --- the tests' own modules ----------------------------------------------------------------

TESTS = ROOT / "tests"


def conftest_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import of a conftest in `source`, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names = [base, *(f"{base.rstrip('.')}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.rpartition(".")[2] == "conftest"]
    return sorted(set(found))


def python_files_in_tests() -> list[Path]:
    """Every Python file under `tests/` (the Botium tests' Node.js modules left out)."""
    found = []
    for folder, subfolders, files in os.walk(TESTS):
        subfolders[:] = [name for name in subfolders if name != "node_modules"]
        found += [Path(folder, name) for name in files if name.endswith(".py")]
    return sorted(found)


def test_no_test_module_imports_a_conftest() -> None:
    imports = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in python_files_in_tests()
        for line, name in conftest_imports(path.read_text(encoding="utf-8"))
    ]
    assert imports == []


def test_the_conftest_check_catches_every_form_of_import() -> None:
    source = """
import tests.e2e.conftest
from tests.e2e.conftest import RestClient
from tests.e2e import conftest
from .conftest import query


def later():
    from conftest import API_TOKEN
from tests.support.records import query
import tests.support.conftest_free
"""
    assert [line for line, _ in conftest_imports(source)] == [2, 3, 4, 5, 9]
