"""The package's shape: data flows one way, no import cycles, no module too large to read.

    cli -> execute (plan -> isolation | measure -> fold -> write) -> engine -> models / data / machine
    reporting reads results and config only; predict reads saved models and picture files.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "trainspeed"

# Lowest first: a module may import from its own level or below, never from above.
LEVELS = [
    {"errors", "faults", "timing", "stats", "flops", "cases", "config", "progress", "eta", "output", "schema", "rows",
     "data_parallel", "energy", "prices",
     "dataset_info", "stopping"},
    {"results"},
    {"machine", "data", "inference", "image_files"},
    {"models", "losses", "optimizers", "layers", "saved"},
    {"engine", "keras_engine", "prediction"},
    {"budget", "measure", "after_training", "distributed"},
    {"fold", "plan", "resume"},
    {"isolation", "launch"},
    {"execute", "rank_run"},
    {"reporting"},
    {"cli", "__init__", "__main__"},  # the command and the public API (imported lazily) are the top
]
# What the report may read: results and settings, never training (and so never torch).
REPORT_MAY_IMPORT = {"reporting", "results", "cases", "config", "stats", "errors", "output", "energy", "prices",
                     "data_parallel"}
MAX_LINES = 350


def modules() -> dict[str, Path]:
    return {".".join(path.relative_to(PACKAGE).with_suffix("").parts): path for path in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(name: str, path: Path) -> set[str]:
    """The trainspeed modules `name` imports, at the top or inside functions (not for type checking)."""
    package = list(path.relative_to(PACKAGE).parent.parts)
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("trainspeed"):
                target = node.module.removeprefix("trainspeed").lstrip(".")
            else:
                target = None
            if target is not None:
                for alias in node.names:
                    candidate = f"{target}.{alias.name}" if target else alias.name
                    found.add(candidate if candidate in modules() else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {module for module in found if module and module != name}


def level(module: str) -> int:
    top = module.split(".")[0]
    return next(index for index, names in enumerate(LEVELS) if top in names)


GRAPH = {name: imports_of(name, path) for name, path in modules().items()}


def test_every_module_has_a_level():
    for name in GRAPH:
        level(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_one_above_it(name):
    above = [target for target in GRAPH[name] if level(target) > level(name)]
    assert not above, f"{name} (level {level(name)}) imports {above}"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n.startswith("reporting")))
def test_the_report_reads_results_and_config_only(name):
    outside = [target for target in GRAPH[name] if target.split(".")[0] not in REPORT_MAY_IMPORT]
    assert not outside, f"{name} imports {outside}"


def test_no_import_cycles():
    state: dict[str, str] = {}

    def walk(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                walk(target, path + [target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            walk(name, [name])


def test_the_checker_sees_imports_inside_functions():
    assert "measure" in GRAPH["isolation"] and "engine.graph" in GRAPH["engine.layout"]
    assert "machine.describe" not in GRAPH["reporting.terminal"]  # imported for type checking only


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_is_too_long_to_read(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def _imports_without_torch(modules: str) -> None:
    code = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0, done.stderr


def test_importing_the_report_does_not_import_torch():
    _imports_without_torch("trainspeed.reporting.build, trainspeed.reporting.terminal, trainspeed.cli")


def test_a_keras_cases_process_does_not_import_torch():
    # Keras on TensorFlow or JAX runs as a Keras user runs it: without torch's libraries and threads.
    _imports_without_torch("trainspeed.isolation, trainspeed.keras_engine.measure, trainspeed.plan")
