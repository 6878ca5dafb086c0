"""The import contract: vaekit's layers import only downward, with no circles (pyproject's
[tool.importlinter], drawn in docs/architecture.md), and no private name is used outside its module."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vaekit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(vaekit.__file__).resolve().parent  # the vaekit these tests import, wherever it lies


def _lint_imports(source: Path) -> subprocess.CompletedProcess:
    """lint-imports with pyproject.toml's contracts over the vaekit package found in `source`."""
    pytest.importorskip("importlinter", reason="import-linter is not installed: pip install 'vaekit[test]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
               "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contract_holds():
    result = _lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contract_catches_an_upward_import_and_a_circle(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "vaekit", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    vae = tmp_path / "vaekit" / "vae.py"
    vae.write_text(vae.read_text() + "\nfrom .apps import images  # noqa: E402 (the core reaching an application)\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "vaekit.vae is not allowed to import vaekit.apps" in result.stdout
    assert "No cycles are allowed in vaekit" in result.stdout


def test_the_picture_in_docs_architecture_is_the_contract():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    picture = (ROOT / "docs" / "architecture.md").read_text().split("```")[1].strip().splitlines()
    drawn = [set(re.findall(r"(\w+)(?:\.py|/)", re.split(r"\s{3,}", line.strip())[0])) for line in picture]
    assert drawn == [{tail.strip() for tail in layer.split("|")} for layer in layers]


def private_names_used_across_modules(package: Path) -> list[str]:
    """`from <vaekit module> import _name` and `<vaekit module>._name` in the package's files."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        modules = set()  # names bound to vaekit modules in this file
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(package.name)):
                modules.update(alias.asname or alias.name for alias in node.names)
                found += [f"{path.relative_to(package)}:{node.lineno} imports {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
            elif isinstance(node, ast.Import):
                modules.update(alias.asname or alias.name.split(".")[0] for alias in node.names
                               if alias.name.startswith(package.name))
        found += [f"{path.relative_to(package)}:{node.lineno} uses {node.value.id}.{node.attr}"
                  for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in modules and node.attr.startswith("_") and not node.attr.startswith("__")]
    return found


def test_no_private_name_is_used_outside_its_module():
    assert private_names_used_across_modules(PACKAGE) == []


def test_the_private_name_check_sees_both_spellings(tmp_path):
    package = tmp_path / "vaekit"
    package.mkdir()
    (package / "a.py").write_text("def _helper():\n    pass\n")
    (package / "b.py").write_text("from .a import _helper\nfrom . import a\n\na._helper()\na.__name__\n")
    assert private_names_used_across_modules(package) == ["b.py:1 imports _helper", "b.py:4 uses a._helper"]
