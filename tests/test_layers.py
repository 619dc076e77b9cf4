"""The import layers hold: no module imports from a layer above its own, no two packages import each
other (directly or round a cycle), including imports inside functions, imports only for type checking
and the subprocesses a module starts (``launch.py`` or ``python -m PACKAGE``). Read from the source
with ``ast``; nothing is imported. The layers (docs/DESIGN.md, "Layers"), lowest first:

    base (standard library only) < envs < agent < learner < configs < actors, analysis < evaluation
    < training < launch.py

Packages on one rank (actors, analysis) import neither each other nor anything of their rank.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANKS = {"envs": 0, "agent": 1, "learner": 2, "configs": 3, "actors": 4, "analysis": 4,
         "evaluation": 5, "training": 6, "launch": 7}
# Standard library only, importable from every layer (a lock, the run-level errors, the Ray reaper
# that runs as its own script): they may import only the standard library and each other.
BASE = {"configs.errors", "configs.run_lock", "actors.ray_reaper"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    paths = [ROOT / "launch.py"] + [p for pkg in RANKS if pkg != "launch" for p in (ROOT / pkg).rglob("*.py")]
    return {module_name(p): p for p in paths}


def first_party(name: str) -> bool:
    return name.split(".")[0] in RANKS


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every first-party import anywhere in the file (functions and
    ``if TYPE_CHECKING:`` blocks included) and every subprocess it starts of our code: the
    literal ``"launch.py"`` (as a path) and ``["-m", "PACKAGE"]``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and node.value == "launch.py":
            found.append((node.lineno, "launch"))
        elif isinstance(node, (ast.List, ast.Tuple)):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            found += [(node.lineno, items[i + 1]) for i in range(len(items) - 1)
                      if items[i] == "-m" and isinstance(items[i + 1], str)]
    return [(line, name) for line, name in found if first_party(name)]


def target(name: str, modules: dict[str, Path]) -> str:
    """The module an imported name lives in (``from agent import Agent`` -> ``agent``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def rank(module: str) -> float:
    return -1 if module in BASE else RANKS[module.split(".")[0]]


def edges() -> list[tuple[str, int, str]]:
    modules = source_modules()
    return sorted({(m, line, target(name, modules)) for m, p in modules.items() for line, name in imports(p)})


def test_every_package_has_a_layer():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "scripts", "docs"}
    assert packages == set(RANKS) - {"launch"}, "give the new package a rank in RANKS and docs/DESIGN.md"


def test_no_import_from_a_higher_layer():
    bad = []
    for source, line, dest in edges():
        if source in BASE and dest not in BASE:
            bad.append(f"{source}:{line} imports {dest} (base modules import only the standard library)")
        elif dest.split(".")[0] == source.split(".")[0] or dest in BASE:
            continue
        elif rank(dest) >= rank(source):
            bad.append(f"{source}:{line} imports {dest}, which is not in a lower layer")
    assert not bad, "\n".join(bad)


def package(module: str) -> str:
    return "base" if module in BASE else module.split(".")[0]


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for source, _, dest in edges():
        if package(source) != package(dest):
            graph.setdefault(package(source), set()).add(package(dest))
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            assert cycle is None, f"import cycle between packages: {' -> '.join(cycle)}"


@pytest.mark.parametrize("code, expected", [
    ("def f():\n    from training.run import train\n", [(2, "training.run.train")]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import evaluation.results\n",
     [(3, "evaluation.results")]),
    ("import subprocess\nsubprocess.run(['python', '-m', 'training', 'x=1'])\n", [(2, "training")]),
    ("from pathlib import Path\nLAUNCH = Path(__file__).parent / 'launch.py'\n", [(2, "launch")]),
    ("import os, numpy\n", []),
])
def test_the_scanner_sees_local_typing_and_subprocess_imports(tmp_path, code, expected):
    path = tmp_path / "m.py"
    path.write_text(code)
    assert imports(path) == expected


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
