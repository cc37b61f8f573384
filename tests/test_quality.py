"""ruff and mypy stay clean, and the import floors hold (imports run one way, down)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "recipe_opt"

# Floor of each subpackage; a module may import recipe_opt modules on its own floor or below.
FLOORS = {
    "recipe": 0,
    "exceptions": 0,
    "_files": 0,  # atomic writes
    "_yaml": 0.5,  # YAML + pydantic helpers for the config floor
    "registry": 0.5,  # objectives, samplers, selection policies: every name once
    "space": 1,
    "config": 1,
    "data": 1,
    "train": 2,
    "evaluate": 2,
    "lineage": 2,
    "demo": 3,
    "study": 3,
    "report": 4,
    "export": 4,  # recipe, config, data, exceptions; no torch, optuna or transformers
    "cli": 5,
    "__init__": 0,
    "__main__": 6,
}


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recipe_opt."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("recipe_opt."))
    return found


def test_imports_run_down_the_floors() -> None:
    violations = []
    for path in sorted(PKG.rglob("*.py")):
        unit = _unit(path)
        for target in _imports(path):
            if target != unit and FLOORS[target] >= FLOORS[unit] and unit != "__init__":
                violations.append(f"{path.relative_to(REPO)} ({unit}) imports {target}")
    assert not violations, violations
    assert _imports(PKG / "recipe.py") == set(), "recipe must import nothing of ours"


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(), reason="ruff not installed"
)
def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    r = subprocess.run([ruff, "check", "recipe_opt", "tests", "bench"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_mypy_clean() -> None:
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
