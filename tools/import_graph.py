"""Print which first-level units of ``nbf_ros`` import which, read from the code.

Every module's syntax tree is walked (function-level imports included: that is how optional
dependencies are imported late), so the table is the code's, not anyone's memory of it.
``docs/architecture.md`` holds its output, and ``tests/test_architecture.py`` checks both the
rules (runtime never imports offline code, no cycles) and that the page is up to date.

    python tools/import_graph.py          # the markdown table of docs/architecture.md
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbf_ros"

RUNTIME = ("types", "errors", "config", "geometry", "engines", "body", "render", "nets", "detection",
           "tracking", "keypoints", "fitting", "inference", "ros")
"""What the node runs: image -> boxes -> landmarks/features -> initial body -> fit -> messages."""
OFFLINE = ("data", "evaluation", "training", "testing", "apps")
"""The synthetic-data generator, benchmark metrics, training, test doubles and entry points: they
may use the runtime, never the other way round."""


def module_name(path: Path) -> str:
    """'nbf_ros/fitting/fitter.py' -> 'nbf_ros.fitting.fitter' (a package is its __init__)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The first-level unit of an ``nbf_ros`` module: 'nbf_ros.fitting.fitter' -> 'fitting'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(path: Path) -> set[str]:
    """Every ``nbf_ros`` module (or name in one) that the file at ``path`` imports, anywhere."""
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
            if node.level:  # relative import: resolve against this module's package
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "nbf_ros" or m.startswith("nbf_ros.")}


def python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def import_graph() -> dict[str, set[str]]:
    """First-level unit -> the units it imports (itself excluded; '' is the package root)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in python_files():
        source = unit(module_name(path))
        graph[source].update(u for u in map(unit, imported_modules(path)) if u and u != source)
    return dict(graph)


def markdown_table(graph: dict[str, set[str]]) -> str:
    """One row per unit, runtime units first in data-flow order, then the offline ones."""
    rows = ["| unit | kind | imports (nbf_ros units) |", "|---|---|---|"]
    for name in (*RUNTIME, *OFFLINE):
        kind = "runtime" if name in RUNTIME else "offline"
        deps = ", ".join(sorted(graph.get(name, ()))) or "-"
        rows.append(f"| `{name}` | {kind} | {deps} |")
    return "\n".join(rows)


def main() -> int:
    print(markdown_table(import_graph()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
