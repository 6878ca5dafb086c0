"""The documentation site (issue 46): `mkdocs build --strict` gives no warning, and every code block of docs/*.md
runs as written, or says why not in a `<!-- not run: REASON -->` line just above it (the README's blocks run
in tests/test_readme.py). Blocks of one page run in order in one namespace, in a fresh folder, after the
page's SETUP (the models its text assumes, made tiny)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^(?:<!-- not run: (?P<reason>.+?) -->\n)?```(?P<language>\S*)\n(?P<code>.*?)^```", re.S | re.M)
TINY_RUN = ('import vaekit\nvaekit.train("runs/digits", data="digits", network="mlp", hidden=(16,), latent_dim=2, '
            'epochs=1, progress=False)\n')
SETUP = {"export.md": TINY_RUN}  # what a page's text says the reader already has
NEEDS = {"export.md": ("onnx", "onnxscript", "onnxruntime"), "interop.md": ("yaml", "mlflow")}  # extras they import


def blocks(page: Path) -> list[re.Match]:
    return list(BLOCK.finditer(page.read_text()))


PAGES = sorted(DOCS.glob("*.md"))


def test_every_block_runs_or_says_why_not():
    for page in PAGES:
        for block in blocks(page):
            assert block["language"] == "python" or block["reason"], \
                f"{page.name}: a {block['language'] or 'plain'} block neither runs nor says why not: " \
                f"{block['code'][:60]!r}"
            assert block["reason"] is None or len(block["reason"]) > 10, f"{page.name}: say why: {block['reason']}"


@pytest.mark.parametrize("page", [p for p in PAGES if any(b["reason"] is None for b in blocks(p))],
                         ids=lambda p: p.name)
def test_the_python_blocks_of_a_page_run(page, tmp_path, monkeypatch):
    for module in NEEDS.get(page.name, ()):
        pytest.importorskip(module, reason=f"{page.name}'s blocks need {module}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    namespace: dict = {}
    exec(compile(SETUP.get(page.name, ""), f"{page.name} (setup)", "exec"), namespace)
    for block in blocks(page):
        if block["reason"] is None:
            exec(compile(block["code"], page.name, "exec"), namespace)


def test_the_site_builds_with_no_warning(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed: pip install 'vaekit[docs]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr[-2000:]
    pages = list((tmp_path / "site").rglob("index.html"))
    assert len(pages) >= len(PAGES)  # every page of docs/ (and benchmarks/README.md)
    assert "vaekit.apps.images.train" in (tmp_path / "site" / "api" / "index.html").read_text()
