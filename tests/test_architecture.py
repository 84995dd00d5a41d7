"""The architecture, checked from the code: data flows one way (docs/architecture.md).

Imports are read from every module's syntax tree (function-level imports included, which is how
optional dependencies are loaded late), so nothing here lists files by hand: a new module is
checked the day it is added.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nbf_ros"

RUNTIME = ("types", "errors", "config", "geometry", "body", "render", "nets", "fitting", "detection",
           "keypoints", "tracking", "inference", "ros")
"""What the node runs: image -> boxes -> landmarks/features -> initial body -> fit -> messages."""
OFFLINE = ("data", "training", "evaluation", "testing", "apps")
"""The synthetic-data generator, training, benchmark metrics, test doubles and entry points:
they may use the runtime, never the other way round."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The first-level unit of an ``nbf_ros`` module: 'nbf_ros.fitting.fitter' -> 'fitting'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(path: Path) -> set[str]:
    """Every ``nbf_ros`` module that ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "nbf_ros" or m.startswith("nbf_ros.")}


def import_graph() -> dict[str, set[str]]:
    """First-level unit -> the units it imports (itself excluded)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit(module_name(path))
        graph[source]  # every unit appears, also one that imports nothing
        graph[source].update(u for u in map(unit, imported_modules(path)) if u and u != source)
    return dict(graph)


def test_every_unit_is_classified():
    units = set(import_graph()) - {""}
    assert units <= set(RUNTIME) | set(OFFLINE), sorted(units - set(RUNTIME) - set(OFFLINE))


@pytest.mark.parametrize("runtime_unit", RUNTIME)
def test_runtime_never_imports_offline_code(runtime_unit):
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if unit(module_name(path)) != runtime_unit:
            continue
        bad = sorted(m for m in imported_modules(path) if unit(m) in OFFLINE)
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {', '.join(bad)}")
    assert not offenders, "\n".join(offenders)


def test_units_form_no_cycle():
    """Between first-level units, imports go one way (a cycle would make two units one)."""
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_node_and_pipeline_do_not_load_the_generator_or_training(untrained_config):
    """Importing the node and building the real pipeline (what ``configure`` does) loads no
    generator, training, benchmark or entry-point module (checked in a fresh interpreter)."""
    _, config_path = untrained_config
    code = (
        "import sys\n"
        "import nbf_ros.ros.node\n"
        "from nbf_ros.config import load_config\n"
        "from nbf_ros.inference.pipeline import Pipeline\n"
        f"Pipeline.from_config(load_config({config_path!r}))\n"
        f"offline = {OFFLINE!r}\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('nbf_ros.') and m.split('.')[1] in offline)\n"
        "print(','.join(loaded))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"
