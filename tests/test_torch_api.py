"""The torch version the project claims (pyproject.toml) has every torch function the code calls.

Every ``torch.a.b`` chain (through ``import torch``, ``from torch import nn``, ``import ... as F``)
and every ``from torch.x import y`` in the project's modules must resolve in the installed torch
(CI installs the README's torch==2.13.0); and pyproject's floor must be at least the release that
introduced each function added late in torch's history (``LATE_ADDITIONS``).
"""
import ast
import importlib
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("agent", "learner", "actors", "envs", "configs", "bench")
                 for p in (ROOT / d).rglob("*.py")) + [ROOT / "launch.py"]

# torch functions the code uses that are newer than torch 2.0, with the release that added them.
LATE_ADDITIONS = {
    "torch.nn.utils.get_total_norm": (2, 6),    # pytorch/pytorch#139662, released in 2.6.0
}


def torch_names(path: Path) -> set[str]:
    """Dotted torch names used in ``path``: ``torch.nn.utils.get_total_norm``, ``torch.nn.LSTM`` ..."""
    tree = ast.parse(path.read_text())
    alias: dict[str, str] = {}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torch":
                    alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else "torch"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
                names.add(f"{node.module}.{a.name}")
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts, value = [], node
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in alias:
                names.add(".".join([alias[value.id], *reversed(parts)]))
    return names


def resolve(dotted: str):
    parts = dotted.split(".")
    obj = torch
    for i, part in enumerate(parts[1:], start=1):
        if not hasattr(obj, part):
            try:
                obj = importlib.import_module(".".join(parts[:i + 1]))
                continue
            except ImportError:
                raise AttributeError(f"{'.'.join(parts[:i])} has no attribute {part!r}") from None
        obj = getattr(obj, part)
    return obj


def claimed_floor() -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"torch>=(\d+)\.(\d+)', text)
    assert match, "pyproject.toml must give torch a lower bound (torch>=X.Y)"
    return int(match.group(1)), int(match.group(2))


def test_every_torch_name_used_exists_in_the_installed_torch():
    used = {name: path for path in SOURCES for name in torch_names(path)}
    assert "torch.nn.utils.get_total_norm" in used and "torch.nn.LSTMCell" in used   # the scan sees them
    missing = []
    for name, path in sorted(used.items()):
        try:
            resolve(name)
        except AttributeError as e:
            missing.append(f"{name} ({path.relative_to(ROOT)}): {e}")
    assert not missing, f"torch {torch.__version__} lacks: " + "; ".join(missing)


@pytest.mark.parametrize("name, release", sorted(LATE_ADDITIONS.items()))
def test_pyproject_requires_a_torch_that_has_each_late_addition(name, release):
    floor = claimed_floor()
    used = any(name in torch_names(p) for p in SOURCES)
    assert not used or floor >= release, (f"{name} needs torch>={release[0]}.{release[1]} but pyproject.toml "
                                          f"claims torch>={floor[0]}.{floor[1]}")
