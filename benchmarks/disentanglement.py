"""Disentanglement on `--data shapes` (issue 43): the plain VAE, beta-VAE and beta-TCVAE trained for the same
wall-clock budget, scored with MIG, SAP, DCI and the FactorVAE score on the test split.

    python -m benchmarks.disentanglement train --model beta-tcvae --minutes 20 [--threads 1] [--out DIR]
        # one model -> results/disentanglement_<model><tag>.json; --out keeps the trained run
    python -m benchmarks.disentanglement score --run DIR --model beta-tcvae [--tag T]   # re-score a kept run
    python -m benchmarks.disentanglement table                                   # the table of the models trained

Each model is the MLP of Chen et al. (2018) for dSprites made smaller for two CPU cores (4096-512-512-10, Bernoulli),
Adam 1e-3, batch 256; `train` runs one model on --threads torch threads (1: the three can run side by side).
Both MIGs are in the table: `mig` of the latent means cut into 20 bins, `mig_posterior` Chen et al.'s estimate from
the whole posterior over the five factors, and the same over scale, rotation, x and y alone, the four factors their
released code averages on dSprites (their 0.2-0.4).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

from benchmarks.common import RESULTS, markdown_table, peak_rss_mb, write_results

MODELS = {  # name -> objective options; beta-TCVAE's beta (Chen et al.'s 6) is --beta 1 + --tc-weight 5
    "vae": {"beta": 1.0},
    "beta-vae": {"beta": 4.0},
    "beta-tcvae": {"beta": 1.0, "tc_weight": 5.0},
    "factorvae": {"beta": 1.0, "tc_weight": 5.0, "tc_estimator": "discriminator"},  # Kim & Mnih's gamma = 5 + 1
}
HEADERS = {"mig": "MIG (means, 20 bins)", "mig_posterior": "MIG (posterior, Chen et al.)",
           "mig_posterior_without_shape": "MIG (posterior, 4 factors as Chen et al.'s code)"}
SCORES = ("mig", "mig_posterior", "mig_posterior_without_shape", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factorvae")


def train(args: argparse.Namespace) -> None:
    from vaekit.apps import images

    options = dict(network="mlp", hidden=(512, 512), latent_dim=10, batch_size=args.batch_size, lr=args.lr, epochs=1000,
                   time_limit=args.minutes, seed=args.seed, progress=False, **MODELS[args.model])
    folder = args.out or tempfile.mkdtemp(prefix=f"bench-disentanglement-{args.model}-")
    try:
        start = time.perf_counter()
        run = images.train(folder, data=f"shapes:{args.examples}", **options)
        _scored(args, run, train_seconds=round(time.perf_counter() - start, 1))
    finally:
        if not args.out:  # a folder the caller named is kept (score it again with `score --run`)
            shutil.rmtree(folder, ignore_errors=True)


def score(args: argparse.Namespace) -> None:
    from vaekit.apps import images

    run = images.load_run(args.run)
    trained = {"beta": run.train.beta, "tc_weight": run.train.tc_weight, "tc_estimator": run.train.tc_estimator}
    if trained != {"tc_weight": 0.0, "tc_estimator": "mss", **MODELS[args.model]}:
        raise SystemExit(f"{args.run} was trained with {trained}, not as --model {args.model} ({MODELS[args.model]})")
    _scored(args, run, train_seconds=None)


def _scored(args: argparse.Namespace, run, train_seconds: float | None) -> None:
    """Score a trained run on its test split and write its row (results/disentanglement_<model><tag>.json)."""
    import torch

    from vaekit.apps import images

    started = time.perf_counter()
    result = images.evaluate(run, k=args.k, progress=False, disentanglement=True)
    options = {"network": run.model.network, "hidden": list(run.model.hidden), "latent_dim": run.model.latent_dim,
               "batch_size": run.train.batch_size, "lr": run.train.lr, "time_limit": run.train.time_limit,
               "seed": run.train.seed, **MODELS[args.model]}
    row = {"model": args.model, **MODELS[args.model], "batch_size": run.train.batch_size, "lr": run.train.lr,
           "examples": int(run.data.data.partition(":")[2] or 0) or None, "minutes": run.train.time_limit,
           "threads": torch.get_num_threads(), "epochs": len(run.history), "train_seconds": train_seconds,
           "test_neg_elbo": result.neg_elbo, "test_kl": result.kl, "active_units": result.active_units,
           **result.disentanglement, "mig_posterior_without_shape": _without_shape(result.disentanglement),
           "eval_seconds": round(time.perf_counter() - started, 1),
           "peak_rss_mb": round(peak_rss_mb())}
    path = write_results(f"disentanglement_{args.model}{args.tag}", {"row": row, "options": options})
    print(json.dumps(row, indent=2))
    print(f"wrote {path}")


def _without_shape(scores: dict) -> float | None:
    """The posterior MIG over scale, rotation, x and y, the four factors Chen et al.'s released code averages on
    dSprites (shape left out)."""
    gaps = scores["mig_posterior_by_factor"]
    kept = None if gaps is None else [gap for gap in gaps[1:] if gap is not None]
    return float(sum(kept) / len(kept)) if kept else None


def table(_: argparse.Namespace) -> None:
    files = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("disentanglement_*.json"))]
    rows = [{"batch_size": f["options"]["batch_size"], "lr": f["options"]["lr"], **f["row"]} for f in files]
    rows.sort(key=lambda row: (row.get("minutes", 0), row.get("batch_size", 256), list(MODELS).index(row["model"])))
    print(markdown_table(rows, [("model", "model", ""), ("beta", "beta", ".0f"), ("tc_weight", "tc weight", ".0f"),
                                ("batch_size", "batch", ""), ("lr", "lr", ""), ("minutes", "minutes", ".0f"),
                                ("epochs", "epochs", "d"), ("test_neg_elbo", "test -ELBO", ".1f"),
                                ("test_kl", "KL", ".1f"), ("active_units", "active", "d"),
                                *[(name, HEADERS.get(name, name.replace("dci_", "DCI ").replace("_", " ")), ".3f")
                                  for name in SCORES]]))


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
    p.add_argument("--threads", type=int, default=1, help="torch threads (three runs side by side: 1 each)")
    p.add_argument("--out", default=None, help="keep the run in this folder (default: a temporary one, removed)")
    p.set_defaults(handler=train)
    p = commands.add_parser("score", help="score a run kept by train --out again (e.g. after a new metric)")
    p.add_argument("--run", required=True, help="the folder train --out kept")
    p.add_argument("--model", choices=sorted(MODELS), required=True, help="the model it was trained as (checked)")
    p.add_argument("--k", type=int, default=10, help="importance samples of the test NLL (not the point here)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--tag", default="", help="appended to the results file's name")
    p.set_defaults(handler=score)
    commands.add_parser("table", help="print the table of results/disentanglement_*.json").set_defaults(handler=table)
    args = parser.parse_args()
    if hasattr(args, "threads"):
        import torch

        torch.set_num_threads(args.threads)
    args.handler(args)


if __name__ == "__main__":
    main()
