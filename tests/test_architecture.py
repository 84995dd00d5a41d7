"""The architecture, checked from the code: data flows one way (docs/architecture.md).

Imports are read from every module's syntax tree by ``tools/import_graph.py`` (function-level
imports included, which is how optional dependencies are loaded late), so nothing here lists
files by hand: a new module is checked the day it is added.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from import_graph import (OFFLINE, PACKAGE, RUNTIME, import_graph, imported_modules,  # noqa: E402
                          markdown_table, module_name, unit)


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


def test_architecture_page_shows_the_current_import_table():
    """docs/architecture.md carries the table ``python tools/import_graph.py`` prints today."""
    page = (REPO / "docs" / "architecture.md").read_text()
    assert markdown_table(import_graph()) in page, "re-run: python tools/import_graph.py"
