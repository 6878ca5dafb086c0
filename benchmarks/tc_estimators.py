"""What a training step costs with each total-correlation estimator of --tc-weight (issue 43): none (the plain
VAE), mss (beta-TCVAE's minibatch stratified sampling) and discriminator (FactorVAE's D(z) and its own Adam step).

    python -m benchmarks.tc_estimators [--reps 3] [--epochs 3] [--rows 4096] [--batch-size 512] [--threads 1]

The model is the disentanglement benchmark's MLP (4096-512-512-10, Bernoulli) on the first --rows images of
`shapes`; each rep trains the three back to back in a rotated order, and a step's cost is the median over reps of
the mean step time of the epochs after the first (the Trainer's epoch_seconds / steps per epoch). Prints a table and
writes results/tc_estimators.json.
"""

from __future__ import annotations

import argparse
import math
import statistics

from benchmarks.common import markdown_table, write_results

ESTIMATORS = {"none": {}, "mss": {"tc_weight": 5.0}, "discriminator": {"tc_weight": 5.0, "tc_estimator": "discriminator"}}


def step_seconds(x, estimator: str, args: argparse.Namespace) -> float:
    from vaekit.config import ModelConfig, TrainConfig
    from vaekit.training import Trainer
    from vaekit.vae import build_vae

    vae = build_vae(ModelConfig(network="mlp", hidden=(512, 512), latent_dim=10, likelihood="bernoulli",
                                data_shape=tuple(x.shape[1:])))
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, progress=False, device="cpu",
                         **ESTIMATORS[estimator])
    history = Trainer(vae, config).fit(x)
    steps = math.ceil(len(x) / args.batch_size)
    return statistics.mean(row["epoch_seconds"] for row in history[1:]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from vaekit.data.shapes import make_shapes

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(make_shapes(args.rows)[0]).float()
    names = list(ESTIMATORS)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            times[name].append(step_seconds(x, name, args))
    base = statistics.median(times["none"])
    rows = [{"estimator": name, "ms_per_step": 1000 * statistics.median(times[name]),
             "relative": statistics.median(times[name]) / base, "reps_ms": [round(1000 * t, 1) for t in times[name]]}
            for name in names]
    print(markdown_table(rows, [("estimator", "estimator", ""), ("ms_per_step", "ms per step", ".1f"),
                                ("relative", "x plain VAE", ".2f"), ("reps_ms", "reps (ms)", "")]))
    write_results("tc_estimators", {"rows": rows, "batch_size": args.batch_size, "examples": args.rows,
                                    "epochs": args.epochs, "threads": args.threads})


if __name__ == "__main__":
    main()
