"""What each extra of issue 46 adds to an install: the packages pip resolves for the extra's requirements,
less those vaekit's own dependencies already bring (read from the Python running this script, which has vaekit's
runtime installed), installed without dependencies into a fresh target folder and measured with du.

    python benchmarks/extras.py [EXTRA ...]     # default: yaml hub mlflow docs

Needs pip and a package index; writes benchmarks/results/extras.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("torch", "numpy", "safetensors", "matplotlib", "Pillow", "tqdm")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def runtime_closure() -> set[str]:
    """vaekit's runtime dependencies and theirs, as installed here."""
    seen, todo = set(), [_name(r) for r in RUNTIME]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def extra_requirements(extra: str) -> list[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return extras[extra]


def added(extra: str, base: set[str]) -> tuple[list[str], int]:
    """The pinned packages the extra adds beyond `base`, and their installed size in bytes."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *extra_requirements(extra)], check=True)
        pins = [f"{item['metadata']['name']}=={item['metadata']['version']}"
                for item in json.loads(report.read_text())["install"]
                if _name(item["metadata"]["name"]) not in base]
        target = Path(folder) / "target"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                        "--target", str(target), *pins], check=True)
        size = int(subprocess.run(["du", "-sb", str(target)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
    return pins, size


def main(extras: list[str]) -> None:
    base = runtime_closure()
    rows = []
    for extra in extras:
        pins, size = added(extra, base)
        rows.append({"extra": extra, "requirements": extra_requirements(extra), "packages": len(pins),
                     "megabytes": round(size / 1e6, 1), "pins": pins})
        print(f"{extra:>8}  {len(pins):>3} packages  {size / 1e6:>7.1f} MB", flush=True)
    out = ROOT / "benchmarks" / "results" / "extras.json"
    out.write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["yaml", "hub", "mlflow", "docs"])
