"""The benchmark scripts import each other without a circle (design.md, "Benchmarks without import
circles"): a report reads results files and shared constants, never the runner that imports it. The
imports are read from the source (module level and inside functions), nothing is executed."""

from __future__ import annotations

from pathlib import Path

from test_import_rules import imports

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Script name → the other scripts of `folder` it imports, anywhere in its source."""
    scripts = {path.stem: path for path in folder.glob("*.py")}
    return {name: {module.split(".")[0] for module in imports(path)} & scripts.keys() - {name}
            for name, path in scripts.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as the path that closes it (["a", "b", "a"]), or None when there is none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every path from it is checked
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_benchmark_scripts_import_each_other_without_a_circle():
    cycle = find_cycle(import_graph(BENCHMARKS))
    assert cycle is None, "benchmarks/ import circle: " + " → ".join(cycle)


def test_the_graph_holds_imports_inside_functions_aliased_and_from():
    graph = import_graph(BENCHMARKS)
    assert "socket_plus_report" in graph["socket_plus"]  # `from socket_plus_report import report` inside main
    assert "select_auto_report" in graph["select_auto"]
    assert {"socket_plus", "holdout"} <= graph["select_auto"]  # `import socket_plus as sp`, `from holdout import`
    assert graph["socket_plus_report"] == {"results_io", "socket_plus_grid"}
    assert graph["select_auto_report"] == {"select_auto_grid"}
    assert graph["results_io"] == set() and graph["socket_plus_grid"] == set()


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    (tmp_path / "runner.py").write_text("import shared\n\ndef main():\n    from runner_report import report\n")
    (tmp_path / "runner_report.py").write_text("import numpy as np\nfrom shared import ROOT\nimport runner as r\n")
    (tmp_path / "shared.py").write_text("import json\n")
    (tmp_path / "other.py").write_text("import runner, shared\n")
    graph = import_graph(tmp_path)
    assert graph == {"runner": {"shared", "runner_report"}, "runner_report": {"shared", "runner"},
                     "shared": set(), "other": {"runner", "shared"}}
    assert find_cycle(graph) == ["runner", "runner_report", "runner"]
    (tmp_path / "runner_report.py").write_text("from shared import ROOT\n")
    assert find_cycle(import_graph(tmp_path)) is None
