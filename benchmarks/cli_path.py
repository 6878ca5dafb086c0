"""Issue 49: what in `vaekit train`'s default path costs, as A/B variants of it trained in one process, epoch by
epoch in turn (the order alternating between rounds), so a busy machine's slow spells fall on all alike.

  python -m benchmarks.cli_path [--rounds 5] [--rows 54000] [--threads 2] [--variants default,no-bar,...] [--tag NAME]

Every variant is the command line's default fit of the MLP design (`vaekit train --preset pytorch-mlp`: the
Trainer with TrainConfig's defaults, the progress bar on and written to a file, on the CLI's training split of
Fashion-MNIST, its first --rows rows) with one thing changed:

  default       as the CLI runs it
  no-bar        no progress bar (TrainConfig.progress=False)
  mkl-linear    torch's nn.Linear (MKL) instead of vaekit.accel's oneDNN Linear layers (VAEKIT_ONEDNN_LINEAR=0)
  ftz           denormals flushed to zero while training (--flush-denormals)
  keep-memory   freed memory kept mapped while training (--keep-freed-memory)
  one-thread    torch.set_num_threads(1) instead of --threads
  profiled      --profile (what its timers cost)

Validation is left out (it lies outside an epoch's time). Each variant's epoch time is the Trainer's own
(metrics' epoch_seconds); "CPU s" is the process's CPU time over the epoch, which a busy machine disturbs less
than wall time when one thread trains (at 2 threads it also counts the threads' spinning). "x default" is the
median over rounds (after the first, a warm-up) of the default's epoch seconds / the variant's in the same round,
with its min-max. The OpenMP settings the process started with (how long idle threads spin: OMP_WAIT_POLICY,
GOMP_SPINCOUNT) go into the results file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import tempfile
import time

from benchmarks.common import markdown_table, write_results

VARIANTS = ("default", "no-bar", "mkl-linear", "ftz", "keep-memory", "one-thread", "profiled")
OPENMP = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # how the intra-op threads wait, kept with results
SETTINGS = {"no-bar": dict(progress=False), "ftz": dict(flush_denormals=True), "keep-memory": dict(keep_freed_memory=True),
            "profiled": dict(profile=True)}


def trainer_for(variant: str, x_train):
    import torch
    from torch import nn

    from vaekit.accel.layers import OneDNNLinear
    from vaekit.config import TrainConfig, preset, with_options
    from vaekit.training import Trainer
    from vaekit.vae import build_vae

    model_cfg, train_cfg, _ = preset("pytorch-mlp")
    torch.manual_seed(train_cfg.seed)
    vae = build_vae(dataclasses.replace(model_cfg, data_shape=tuple(x_train.shape[1:])))
    trainer = Trainer(vae, with_options(TrainConfig(), {**SETTINGS.get(variant, {}), "epochs": 1}))
    if variant == "mkl-linear":
        for layer in trainer.vae.modules():
            if type(layer) is OneDNNLinear:
                layer.__class__ = nn.Linear
    return trainer


def measure(args) -> dict:
    import torch

    from vaekit.config import DataConfig
    from vaekit.data.splits import training_splits

    variants = args.variants.split(",")
    x_train = training_splits(DataConfig(), 0, None).x_train[:args.rows]
    trainers = {variant: trainer_for(variant, x_train) for variant in variants}
    seconds = {variant: [] for variant in variants}
    cpu = {variant: [] for variant in variants}
    with tempfile.TemporaryFile("w") as bar, contextlib.redirect_stderr(bar), contextlib.redirect_stdout(bar):
        for round_ in range(args.rounds):
            for variant in variants if round_ % 2 == 0 else variants[::-1]:
                trainer = trainers[variant]
                torch.set_num_threads(1 if variant == "one-thread" else args.threads)
                trainer.config = dataclasses.replace(trainer.config, epochs=trainer.epoch + 1)
                started = time.process_time()
                history = trainer.fit(x_train)
                cpu[variant].append(time.process_time() - started)
                seconds[variant].append(history[-1]["epoch_seconds"])
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": len(x_train)}


def paired(values: dict[str, list[float]], variant: str) -> list[float]:
    """default / variant, round by round after the first."""
    return [base / mine for base, mine in zip(values["default"][1:], values[variant][1:])]


def summary(raw: dict) -> tuple[list[dict], str]:
    rows = []
    for variant, seconds in raw["seconds"].items():
        row = {"variant": variant, "samples_per_s": raw["rows"] / statistics.median(seconds[1:] or seconds),
               "cpu_s": statistics.median(raw["cpu_seconds"][variant][1:] or raw["cpu_seconds"][variant])}
        for key, values in (("wall", raw["seconds"]), ("cpu", raw["cpu_seconds"])):
            ratios = paired(values, variant) if "default" in values else []
            if ratios:
                row[f"x_{key}"] = statistics.median(ratios)
                row[f"x_{key}_range"] = f"{min(ratios):.2f}-{max(ratios):.2f}"
        rows.append(row)
    table = markdown_table(rows, [("variant", "variant", ""), ("samples_per_s", "samples/s (median)", ",.0f"),
                                  ("x_wall", "x default (wall)", ".3f"), ("x_wall_range", "min-max", ""),
                                  ("cpu_s", "CPU s/epoch", ".2f"), ("x_cpu", "x default (CPU)", ".3f"),
                                  ("x_cpu_range", "min-max", "")])
    return rows, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=54000, help="the first N rows of the CLI's training split")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--tag", default="", help="suffix for the results file")
    args = parser.parse_args()
    raw = measure(args)
    rows, table = summary(raw)
    print(table)
    write_results("cli_path" + (f"_{args.tag}" if args.tag else ""),
                  {"rounds": args.rounds, "rows_trained": raw["rows"], "threads": args.threads,
                   "openmp": {name: os.environ.get(name) for name in OPENMP}, "rows": rows, "table": table,
                   "raw": raw})


if __name__ == "__main__":
    main()
