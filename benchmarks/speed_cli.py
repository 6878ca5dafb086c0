"""Issue 49: `vaekit train` as a user runs it, against a plain PyTorch loop, pythae and Keras 3, on the MLP design.

  python -m benchmarks.speed_cli [--reps 5] [--epochs 3] [--target-epochs 10] [--threads 2]
                                 [--peers vaekit-cli,plain,plain-fused,pythae,keras] [--limit N] [--tag NAME]

"vaekit-cli" is the command line as a user types it, one process per run:
  python -m vaekit train --data fashion-mnist --preset pytorch-mlp --epochs E --out DIR  > DIR.log 2>&1
every other option at its default (the progress bar on, written into the log; a tenth of the training images held
out and scored after each epoch, outside the epoch's time). Its speed is what it writes in DIR/metrics.jsonl.
The other peers are benchmarks.speed's workers, on all 60,000 training images and timed by themselves: "plain"
(a plain PyTorch loop: sliced tensors, Adam), "plain-fused" (with fused Adam), pythae 0.1.2 and Keras 3 on the
torch backend; a peer not installed here is skipped with a line saying so.

Throughput: --reps repetitions of --epochs epochs of every peer, one peer after another in an order that
alternates between repetitions; steady samples/s is the median over epochs >= 2. The ratio vaekit-cli / peer is
taken within each repetition, then its median and spread (min-max) over repetitions.
Time to target: one --target-epochs run per peer, its weights scored on the 10,000 test images after every epoch
by benchmarks.speed's evaluator (outside the timing); "s to 245" is the training time until that score first
reaches --target. "command s" is the whole `vaekit train` of a throughput run, start to exit (imports, data,
validation, checkpoints and the curves' picture included), which the peers' own timers do not count. vaekit-cli runs one command per epoch (`--resume --epochs e`) and its last weights are read from
its checkpoint, so each of its epochs is the first of a process (warm-up included): that counts against it.

At the defaults this takes about 10 minutes on a quiet 2-core machine; `--reps 1 --epochs 1 --target-epochs 1
--limit 512` tries the harness in seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import markdown_table, write_results
from benchmarks.speed import epochs_to_target, fashion, negative_elbo, run_worker, worker_environment

PEERS = ("vaekit-cli", "plain", "plain-fused", "pythae", "keras")
CLI = "vaekit-cli"
DESIGN = ("--preset", "pytorch-mlp")  # MLP 784-400-20, Bernoulli on logits; Adam 1e-3 and batch 128 are defaults
NEEDS = {"pythae": "pythae", "keras": "keras"}  # peer: the module it needs


def cli_run(args, folder: Path, data: str, epochs: int, resume: bool = False) -> tuple[list[dict], float] | None:
    """(metrics.jsonl of `vaekit train` into `folder`, the command's wall seconds from start to exit), its output in
    folder.log; None if the command failed."""
    command = [sys.executable, "-m", "vaekit", "train", "--data", data, *DESIGN, "--epochs", str(epochs),
               "--out", str(folder), *(["--resume"] if resume else [])]
    started = time.perf_counter()
    with open(folder.with_suffix(".log"), "a") as log:
        done = subprocess.run(command, stdout=log, stderr=log, env=worker_environment(args))
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        lines = folder.with_suffix(".log").read_text().strip().splitlines()
        print(f"{CLI} failed: {lines[-1:]}", file=sys.stderr)
        return None
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()], seconds


def steady(samples_per_s: list[float]) -> float:
    """The median speed over the epochs after the first (all of them when there is one)."""
    return statistics.median(samples_per_s[1:] or samples_per_s)


def cli_throughput(args, workdir: Path, data: str, rep: int) -> dict | None:
    done = cli_run(args, workdir / f"throughput-{rep}", data, args.epochs)
    if done is None:
        return None
    history, command_seconds = done
    return {"peer": CLI, "samples_per_s": steady([row["samples_per_s"] for row in history]),
            "epoch_seconds": [row["epoch_seconds"] for row in history], "command_seconds": command_seconds}


def last_weights(folder: Path):
    """The VAE of a run folder with the weights of its last checkpoint (model.safetensors holds the best ones)."""
    from vaekit.apps.images import load_run
    from vaekit.checkpoint import STATE_DIR, STATE_TENSORS, load_tensors, read_checkpoint

    vae = load_run(folder, device="cpu", weights=False).vae
    tensors = load_tensors(read_checkpoint(folder / STATE_DIR).files[STATE_TENSORS])
    vae.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    return vae.eval()


def cli_target(args, workdir: Path, data: str, x_test) -> dict | None:
    """vaekit-cli trained one command per epoch, scored after each like benchmarks.speed's workers."""
    import torch

    folder, seconds, curve = workdir / "target", [], []
    x_test = torch.from_numpy(x_test)
    for epoch in range(1, args.target_epochs + 1):
        done = cli_run(args, folder, data, epoch, resume=epoch > 1)
        if done is None:
            return None
        history, _ = done
        seconds.append(history[-1]["epoch_seconds"])
        vae = last_weights(folder)
        curve.append(negative_elbo(lambda x: vae.encoder(x).chunk(2, dim=-1), vae.decoder, x_test))
    return target_row(CLI, seconds, curve, args.target)


def target_row(peer: str, seconds: list[float], curve: list[float], target: float) -> dict:
    reached = epochs_to_target(curve, target)
    return {"peer": peer, "train_seconds": sum(seconds), "test_neg_elbo": curve[-1], "curve": curve,
            "epoch_seconds": seconds, "epochs_to_target": reached,
            "seconds_to_target": sum(seconds[:reached]) if reached else None}


def worker_args(args, epochs: int) -> argparse.Namespace:
    """What benchmarks.speed's workers are run with."""
    return argparse.Namespace(epochs=epochs, batch=128, threads=args.threads, target=args.target, k=1000,
                              limit=args.limit or 0, device="cpu")


def available(peers: list[str]) -> list[str]:
    """The peers whose library is installed here; a line on stderr for each other one."""
    kept = []
    for peer in peers:
        module = NEEDS.get(peer)
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{peer}: {module} is not installed here, skipped (benchmarks/README.md says how to add it)",
                  file=sys.stderr)
        else:
            kept.append(peer)
    return kept


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(args) -> dict:
    """Every peer's throughput runs and run to the target, as JSON rows (None where one failed)."""
    with tempfile.TemporaryDirectory(prefix="speed-cli-") as workdir:
        return _run(args, available(args.peers.split(",")), Path(workdir))


def _run(args, peers: list[str], workdir: Path) -> dict:
    x_train, x_test = fashion("conv", args.limit or 0)  # (N, 1, 28, 28), the CLI's shape of the images
    data = "fashion-mnist"
    if args.limit:  # the CLI reads the same first images from a file
        import numpy as np

        data = str(workdir / "train.npy")
        np.save(data, x_train)
    throughput: dict[str, list[dict | None]] = {peer: [] for peer in peers}
    for rep in range(args.reps):
        for peer in peers if rep % 2 == 0 else peers[::-1]:
            row = (cli_throughput(args, workdir, data, rep) if peer == CLI
                   else run_worker(worker_args(args, args.epochs), "--worker", peer))
            throughput[peer].append(row)
            if row is not None:
                print(json.dumps({"rep": rep + 1, "peer": peer, "samples_per_s": row["samples_per_s"]}), flush=True)
    targets = {}
    for peer in peers:
        if peer == CLI:
            targets[peer] = cli_target(args, workdir, data, x_test)
        else:
            row = run_worker(worker_args(args, args.target_epochs), "--worker", peer)
            targets[peer] = row and target_row(peer, row["epoch_seconds"], row["curve"], args.target)
    return {"throughput": throughput, "targets": targets}


def summary(args, raw: dict) -> tuple[list[dict], str]:
    """One row per peer (medians, spreads, vaekit-cli's paired ratios) and the tables."""
    cli_reps = raw["throughput"].get(CLI, [])
    rows = []
    for peer, reps in raw["throughput"].items():
        speeds = [row["samples_per_s"] for row in reps if row is not None]
        row = {"peer": peer, "reps": len(speeds)}
        if speeds:
            row.update({f"samples_per_s_{k}": v for k, v in spread(speeds).items()})
        commands = [run["command_seconds"] for run in reps if run is not None and "command_seconds" in run]
        if commands:
            row["command_seconds"] = statistics.median(commands)
        ratios = [cli["samples_per_s"] / other["samples_per_s"] for cli, other in zip(cli_reps, reps)
                  if cli is not None and other is not None]
        if ratios:
            row.update({f"cli_ratio_{k}": v for k, v in spread(ratios).items()})
        target = raw["targets"].get(peer)
        if target is not None:
            row.update({k: target[k] for k in ("train_seconds", "seconds_to_target", "epochs_to_target",
                                               "test_neg_elbo")})
        rows.append(row)
    for row in rows:
        row["samples_per_s_range"] = (f"{row['samples_per_s_min']:,.0f}-{row['samples_per_s_max']:,.0f}"
                                      if "samples_per_s_min" in row else None)
        row["cli_ratio_range"] = (f"{row['cli_ratio_min']:.2f}-{row['cli_ratio_max']:.2f}"
                                  if "cli_ratio_min" in row else None)
    table = markdown_table(rows, [
        ("peer", "peer", ""), ("reps", "reps", ""), ("samples_per_s_median", "steady samples/s (median)", ",.0f"),
        ("samples_per_s_range", "min-max", ""), ("cli_ratio_median", f"{CLI} / peer (median)", ".2f"),
        ("cli_ratio_range", "min-max", ""), ("command_seconds", f"{args.epochs}-epoch command s", ".1f"),
        ("train_seconds", f"{args.target_epochs}-epoch train s", ".1f"),
        ("seconds_to_target", f"s to {args.target:g}", ".1f"), ("epochs_to_target", "epochs", ""),
        ("test_neg_elbo", f"test -ELBO @{args.target_epochs}", ".2f")])
    return rows, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each throughput run")
    parser.add_argument("--target-epochs", type=int, default=10, help="epochs of each peer's run to the target")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=245.0, help="test -ELBO for the 's to target' column")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--limit", type=int, help="the first N images only: a quick trial of the harness")
    parser.add_argument("--tag", default="", help="suffix for the results file")
    args = parser.parse_args()
    raw = run(args)
    rows, table = summary(args, raw)
    print(table)
    write_results("speed_cli" + (f"_{args.tag}" if args.tag else ""),
                  {"epochs": args.epochs, "target_epochs": args.target_epochs, "reps": args.reps,
                   "threads": args.threads, "target": args.target, "limit": args.limit, "rows": rows,
                   "table": table, "raw": raw})


if __name__ == "__main__":
    main()
