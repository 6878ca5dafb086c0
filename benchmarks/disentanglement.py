"""Disentanglement on `--data shapes` (issue 43): the plain VAE, beta-VAE and beta-TCVAE trained for the same
wall-clock budget, scored with MIG, SAP, DCI and the FactorVAE score on the test split.

    python -m benchmarks.disentanglement train --model beta-tcvae --minutes 20   # one model -> results/disentanglement_<model>.json
    python -m benchmarks.disentanglement table                                   # the table of the models trained

Each model is the MLP of Chen et al. (2018) for dSprites made smaller for two CPU cores (4096-512-512-10, Bernoulli),
Adam 1e-3, batch 256; `train` runs one model, so the three can run side by side.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from benchmarks.common import RESULTS, markdown_table, peak_rss_mb, write_results

MODELS = {  # name -> objective options; beta-TCVAE's beta (Chen et al.'s 6) is --beta 1 + --tc-weight 5
    "vae": {"beta": 1.0},
    "beta-vae": {"beta": 4.0},
    "beta-tcvae": {"beta": 1.0, "tc_weight": 5.0},
}
SCORES = ("mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factorvae")


def train(args: argparse.Namespace) -> None:
    from vaekit.apps import images

    options = dict(network="mlp", hidden=(512, 512), latent_dim=10, batch_size=args.batch_size, lr=args.lr, epochs=1000,
                   time_limit=args.minutes, seed=args.seed, progress=False, **MODELS[args.model])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = images.train(f"{folder}/run", data=f"shapes:{args.examples}", **options)
        seconds = time.perf_counter() - start
        result = images.evaluate(run, k=args.k, progress=False, disentanglement=True)
    row = {"model": args.model, **MODELS[args.model], "batch_size": args.batch_size, "lr": args.lr,
           "examples": args.examples, "minutes": args.minutes,
           "epochs": len(run.history), "train_seconds": round(seconds, 1), "test_neg_elbo": result.neg_elbo,
           "test_kl": result.kl, "active_units": result.active_units, **result.disentanglement,
           "peak_rss_mb": round(peak_rss_mb())}
    path = write_results(f"disentanglement_{args.model}{args.tag}", {"row": row, "options": {**options, "hidden": [512, 512]}})
    print(json.dumps(row, indent=2))
    print(f"wrote {path}")


def table(_: argparse.Namespace) -> None:
    files = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("disentanglement_*.json"))]
    rows = [{"batch_size": f["options"]["batch_size"], "lr": f["options"]["lr"], **f["row"]} for f in files]
    rows.sort(key=lambda row: (row.get("minutes", 0), row.get("batch_size", 256), list(MODELS).index(row["model"])))
    print(markdown_table(rows, [("model", "model", ""), ("beta", "beta", ".0f"), ("tc_weight", "tc weight", ".0f"),
                                ("batch_size", "batch", ""), ("lr", "lr", ""), ("minutes", "minutes", ".0f"),
                                ("epochs", "epochs", "d"), ("test_neg_elbo", "test -ELBO", ".1f"),
                                ("test_kl", "KL", ".1f"), ("active_units", "active", "d"),
                                *[(name, name.replace("dci_", "DCI ").replace("_", " "), ".3f") for name in SCORES]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="train and score one model")
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--minutes", type=float, default=20.0, help="training budget (--time-limit)")
    p.add_argument("--examples", type=int, default=30_000, help="shapes:N, 20%% of them the test split")
    p.add_argument("--k", type=int, default=10, help="importance samples of the test NLL (not the point here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--tag", default="", help="appended to the results file's name")
    p.set_defaults(handler=train)
    commands.add_parser("table", help="print the table of results/disentanglement_*.json").set_defaults(handler=table)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
