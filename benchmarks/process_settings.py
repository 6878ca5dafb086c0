"""Steady-state worth of the Trainer's two process-wide settings, flush_denormals and keep_freed_memory.

    python -m benchmarks.process_settings [--reps 3] [--epochs 4] [--rows 6000]

Each run is a fresh process (glibc's malloc thresholds cannot be put back to their adaptive state in
one process) training the speed benchmark's MLP or conv design (benchmarks.speed) on the first --rows
Fashion-MNIST images for --epochs epochs; its steady speed is the median samples/s of the epochs after
the first. Per design and rep the three settings run back to back in a rotated order: both on (the
defaults), flush_denormals off, keep_freed_memory off. A setting's worth is the median over reps of
(samples/s with it on) / (samples/s with it off, the other on). issue 40's rule: a process-wide setting
stays on by default only at >= 1.10x. Prints a table and writes results/process_settings.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {"default": {}, "no-flush": {"flush": False}, "no-keep": {"keep_memory": False}}
DESIGNS = ("mlp", "conv")


def worker(design: str, setting: str, epochs: int, rows: int) -> None:
    import numpy as np

    from benchmarks import speed

    x_train, _ = speed.fashion_mnist(design)
    seconds: list[float] = []

    class Curve:
        def epoch(self, s, encode, decode):
            seconds.append(s)

    speed._vaekit(np.ascontiguousarray(x_train[:rows]), Curve(), epochs, 128, design=design, **SETTINGS[setting])
    print(json.dumps({"samples_per_s": statistics.median(rows / s for s in seconds[1:]), "epoch_seconds": seconds}))


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--worker", nargs=2, metavar=("DESIGN", "SETTING"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.epochs, args.rows)
        return
    runs: dict[str, dict[str, list[float]]] = {d: {s: [] for s in SETTINGS} for d in DESIGNS}
    names = list(SETTINGS)
    for rep in range(args.reps):
        for design in DESIGNS:
            for setting in names[rep % 3:] + names[:rep % 3]:  # rotated, so no setting always runs first
                out = subprocess.run([sys.executable, "-m", "benchmarks.process_settings", "--worker", design, setting,
                                      "--epochs", str(args.epochs), "--rows", str(args.rows)],
                                     capture_output=True, text=True, check=True).stdout
                runs[design][setting].append(json.loads(out.splitlines()[-1])["samples_per_s"])
                print(f"rep {rep} {design} {setting}: {runs[design][setting][-1]:,.0f} samples/s", flush=True)
    table = {}
    for design in DESIGNS:
        r = runs[design]
        table[design] = {
            "samples_per_s": {s: statistics.median(v) for s, v in r.items()},
            "flush_denormals_ratio": statistics.median(a / b for a, b in zip(r["default"], r["no-flush"])),
            "keep_freed_memory_ratio": statistics.median(a / b for a, b in zip(r["default"], r["no-keep"])),
            "runs": r}
    print("\n| design | default samples/s | flush_denormals on/off | keep_freed_memory on/off |\n|---|---|---|---|")
    for design, t in table.items():
        print(f"| {design} | {t['samples_per_s']['default']:,.0f} | {t['flush_denormals_ratio']:.3f} | "
              f"{t['keep_freed_memory_ratio']:.3f} |")
    result = {"command": " ".join(["python -m benchmarks.process_settings", *sys.argv[1:]]),
              "machine": _cpu_name(), "cpus": os.cpu_count(),
              "threads": os.environ.get("OMP_NUM_THREADS"), "reps": args.reps, "epochs": args.epochs,
              "rows": args.rows, "designs": table}
    out = Path(__file__).with_name("results") / "process_settings.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
