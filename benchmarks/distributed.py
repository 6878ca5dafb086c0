"""Data-parallel scaling on this machine (issue 8).

  python -m benchmarks.distributed [--network mlp|conv] [--limit 15000] [--val 5000] [--epochs 3] [--target auto]

Binarized MNIST ($VAEKIT_DATA/mnist), the MLP VAE 784-400-20 (or with --network conv the core issue's conv
design: conv 32-64 stride 2 'same', latent 20, transposed convs back up) with a Bernoulli likelihood, Adam 1e-3,
global batch 128, trained in three layouts on the same cores: 1 process x 1 thread, 1 process x 2
threads, and 2 gloo processes x 1 thread under torchrun (global batch and lr unchanged). Reports the
steady samples/s (median of epochs 2..), and the wall-clock seconds from the start of training until
the validation -ELBO first reaches `--target` nats (auto: the highest final value among the layouts,
a level every layout reaches). The load average is recorded around each run: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, write_results

LAYOUTS = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)


def worker(args) -> None:
    """One training run; under torchrun every rank runs this, rank 0 writes the result."""
    import torch

    from vaekit.config import ModelConfig, TrainConfig
    from vaekit.training import Trainer
    from vaekit.vae import build_vae

    torch.set_num_threads(args.threads)
    x_train = torch.from_numpy(np.load(Path(args.data) / "train.npy"))
    x_val = torch.from_numpy(np.load(Path(args.data) / "val.npy"))
    if args.network == "conv":
        x_train, x_val = x_train.view(-1, 1, 28, 28), x_val.view(-1, 1, 28, 28)
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network=args.network, hidden=(400,), latent_dim=20, conv_channels=(32, 64),
                                encoder_padding="same", data_shape=tuple(x_train.shape[1:])))
    times: list[float] = []
    trainer = Trainer(vae, TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed, progress=False,
                                       device="cpu"), on_epoch=lambda row: times.append(time.perf_counter()))
    started = time.perf_counter()
    history = trainer.fit(x_train, x_val)
    if trainer.group.is_main:
        for row, at in zip(history, times):
            row["wall_seconds"] = at - started
        Path(args.worker).write_text(json.dumps({"history": history, "world_size": trainer.group.world_size}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(processes: int, threads: int, data: Path, epochs: int, out: Path, network: str) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
               "--master-addr=127.0.0.1", f"--master-port={_free_port()}", "-m", "benchmarks.distributed",
               "--worker", str(out), "--threads", str(threads), "--data", str(data), "--epochs", str(epochs),
               "--network", network]
    if processes == 1:
        command = [sys.executable, "-m", "benchmarks.distributed", *command[command.index("--worker"):]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo"}
    load_before = os.getloadavg()[0]
    subprocess.run(command, env=env, check=True, timeout=600)
    result = json.loads(out.read_text())
    history = result["history"]
    steady = sorted(row["samples_per_s"] for row in history[1:]) or [history[0]["samples_per_s"]]
    return {"processes": processes, "threads_per_process": threads, "world_size": result["world_size"],
            "samples_per_s": steady[len(steady) // 2], "load_before": load_before,
            "load_after": os.getloadavg()[0], "history": history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--limit", type=int, default=15000, help="training examples used")
    parser.add_argument("--val", type=int, default=5000, help="validation examples used")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--target", default="auto", help="validation -ELBO in nats, or auto")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not os.environ.get("VAEKIT_DATA") or not Path(os.environ["VAEKIT_DATA"], "mnist").is_dir():
        sys.exit("set VAEKIT_DATA to the folder holding mnist/ (see its README.md)")
    from vaekit.config import DataConfig
    from vaekit.data.splits import load_splits

    splits = load_splits(DataConfig(data="mnist", data_dir=os.environ["VAEKIT_DATA"], val_fraction=0.1,
                                    binarize="static"), seed=0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        np.save(Path(tmp) / "train.npy", splits.x_train[:args.limit].numpy())
        np.save(Path(tmp) / "val.npy", splits.x_val[:args.val].numpy())
        for processes, threads in LAYOUTS:
            rows.append(_run(processes, threads, Path(tmp), args.epochs, Path(tmp) / f"{processes}x{threads}.json",
                             args.network))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "history"}), flush=True)
    target = (max(row["history"][-1]["val_neg_elbo"] for row in rows) if args.target == "auto"
              else float(args.target))
    base = rows[0]["samples_per_s"]  # 1 process x 1 thread
    for row in rows:
        reached = next((r for r in row["history"] if r["val_neg_elbo"] <= target), None)
        row.update(layout=f"{row['processes']} x {row['threads_per_process']}",
                   speedup=row["samples_per_s"] / base, final_val_neg_elbo=row["history"][-1]["val_neg_elbo"],
                   epochs_to_target=reached["epoch"] if reached else None,
                   seconds_to_target=reached["wall_seconds"] if reached else None,
                   load=f"{row['load_before']:.1f} / {row['load_after']:.1f}")
    print(f"\ntarget validation -ELBO: {target:.2f} nats; {args.limit} training and {args.val} validation examples, "
          f"{args.epochs} epochs, global batch 128\n")
    print(markdown_table(rows, [("layout", "processes x threads", ""), ("samples_per_s", "samples/s", ",.0f"),
                                ("speedup", "vs 1 x 1", ".2f"), ("final_val_neg_elbo", "final val -ELBO", ".2f"),
                                ("epochs_to_target", "epochs to target", ""),
                                ("seconds_to_target", "s to target", ".1f"), ("load", "load avg before / after", "")]))
    model = "mlp 784-400-20" if args.network == "mlp" else "conv 32-64, latent 20"
    write_results("distributed" if args.network == "mlp" else "distributed_conv", {
        "dataset": "mnist (static binarization)", "train_examples": args.limit, "val_examples": args.val,
        "epochs": args.epochs, "global_batch": 128, "lr": 1e-3, "model": f"{model} bernoulli",
        "target_val_neg_elbo": target, "cores": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    main()
