"""The per-epoch cost of `vaekit train`'s active-units estimate (evaluation.CollapseWatch) against an epoch of
training, on Fashion-MNIST's sizes: the probe timed whole (median of 5), an epoch as 30 timed Adam steps of batch
128 scaled to the 54,000 training images.

    python -m benchmarks.collapse_probe --threads 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from benchmarks.common import markdown_table, write_results
from vaekit.config import ModelConfig
from vaekit.evaluation import COLLAPSE_PROBE_ROWS, CollapseWatch
from vaekit.vae import build_vae

TRAIN_ROWS, BATCH = 54_000, 128


def _median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(network: str) -> dict:
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(data_shape=(1, 28, 28), network=network, latent_dim=20))
    x = torch.rand(COLLAPSE_PROBE_ROWS, 1, 28, 28).round()
    watch = CollapseWatch(x, beta=1.0, epochs=10)
    vae.eval()
    probe_s = _median_seconds(lambda: watch(vae, {"epoch": 1, "beta": 0.0, "kl": 0.0}), 5)
    vae.train()
    optimizer = torch.optim.Adam(vae.parameters())
    batch = x[:BATCH]

    def step():
        optimizer.zero_grad()
        vae.loss(batch).loss.backward()
        optimizer.step()

    step()
    step_s = _median_seconds(step, 30)
    epoch_s = step_s * math.ceil(TRAIN_ROWS / BATCH)
    return {"network": network, "probe_ms": probe_s * 1000, "epoch_s": epoch_s, "share": probe_s / epoch_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(network) for network in ("mlp", "conv")]
    print(markdown_table(rows, [("network", "network", ""),
                                ("probe_ms", f"probe, {COLLAPSE_PROBE_ROWS} rows (ms)", ".1f"),
                                ("epoch_s", "epoch, 54,000 rows (s)", ".1f"), ("share", "probe / epoch", ".2%")]))
    write_results("collapse_probe", {"rows": rows})


if __name__ == "__main__":
    main()
