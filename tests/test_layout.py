"""The package's shape: imports never run in a circle, the core layers need
no Jupyter, and README's layout table names every module of the tree.

shared layers (ARCHITECTURE.md): clock, bus, storage, raft, service, cluster,
checks, viz, grading, cli; each imports only the ones above it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

from tests.conftest import ROOT

PACKAGE = ROOT / "raftkit"
JUPYTER = {"IPython", "ipywidgets", "ipykernel", "jupyterlab", "nbformat", "nbclient", "anywidget",
           "matplotlib", "networkx", "traitlets"}
CORE = ["clock", "bus", "storage", "messages", "raft", "service", "kv", "cluster", "kvcluster", "state",
        "config", "errors", "trace", "safety", "lincheck", "seqmodel", "histfile", "chaos",
        "isolation", "isolation.host", "isolation.process", "isolation.sandbox", "isolation.uidsandbox",
        "isolation.wire", "isolation.kvhost", "isolation.kvprocess"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports, at the top or inside a function:
    raftkit modules by full name, others by their top-level package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from . import lincheck` names a module, not a value
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m if m in MODULES else m.split(".")[0] for m in found}


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for name in MODULES:
        graph.add_node(name)
        graph.add_edges_from((name, m) for m in imports(name) if m in MODULES and m != name)
    return graph


def test_no_import_cycles():
    """An import cycle means two layers each need the other: one of them is
    in the wrong place (STYLE.md: data types below behaviour)."""
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles inside raftkit: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def test_the_graph_sees_imports_inside_functions():
    """The cycle test is only as good as its graph: a lazy import counts."""
    graph = import_graph()
    assert graph.has_edge("raftkit.cluster", "raftkit.viz.draw")  # Cluster.draw imports on use
    assert graph.has_edge("raftkit.viz.draw", "raftkit.state")
    assert graph.has_edge("raftkit.grading.battery.ex7_kv", "raftkit.lincheck")  # `from ... import lincheck`


def test_core_layers_import_no_jupyter_package():
    """clock .. checks run in a plain interpreter (ARCHITECTURE.md)."""
    for name in CORE:
        jupyter = imports(f"raftkit.{name}") & JUPYTER
        assert not jupyter, f"raftkit.{name} imports {sorted(jupyter)}; core layers import no Jupyter package"


def layout_table() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return section.split("\n\n", 2)[1]


def test_readme_layout_names_every_module_once():
    """README's layout table is the map a newcomer reads: every module and
    subpackage of raftkit/ is in it exactly once, and nothing else is."""
    named = re.findall(r"`(raftkit/[\w/.]+)`", layout_table())
    expected = {f"raftkit/{p.name}" for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    expected |= {f"raftkit/{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    twice = sorted({n for n in named if named.count(n) > 1})
    assert not twice, f"README's layout table names these more than once: {twice}"
    assert set(named) == expected, (
        f"README's layout table is out of date: missing {sorted(expected - set(named))}, "
        f"names what is not there {sorted(set(named) - expected)}")
