"""Popularity, EASE, Mult-DAE and Mult-VAE side by side on the real interaction data under
$VAEKIT_DATA, by the strong-generalization protocol of Liang et al. (2018), over several seeds
(each seed redraws the held-out users, the fold-in/held-out items and the initialization).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/recommend.py --epochs 40 --seeds 0,1,2

Prints a markdown table and writes benchmarks/results/recommend.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vaekit import __version__
from vaekit import recommend as rec
from vaekit.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import cpu_model

DATASETS = {
    # name: (file under $VAEKIT_DATA, InteractionConfig fields)
    "movielens-latest-small": ("movielens-latest-small/ratings.csv",
                               dict(min_rating=4.0, min_user_count=5, heldout_fraction=0.15)),
    "lastfm-hetrec2011": ("lastfm-hetrec2011/user_artists.dat",
                          dict(min_item_count=5, min_user_count=5, heldout_fraction=0.1)),
}
METRICS = ("recall@20", "recall@50", "ndcg@100")


def run(path: Path, data_options: dict, seed: int, epochs: int, batch_size: int) -> dict:
    data_config = rec.InteractionConfig(**data_options)
    rows, common = {}, dict(seed=seed, epochs=epochs, batch_size=batch_size, device="cpu")
    for kind in ("vae", "dae"):
        started = time.perf_counter()
        model = rec.fit(path, data_config=data_config, model=kind, **common)
        seconds = time.perf_counter() - started
        results = rec.evaluate(model, baselines=kind == "vae")
        for name, summary in results.items():
            rows[name] = {**{m: summary[m] for m in METRICS}, "users": summary["users"]}
        epoch_seconds = float(np.mean([r["epoch_seconds"] for r in model.history]))
        rows[kind].update(fit_seconds=seconds, epoch_seconds=epoch_seconds,
                          best_epoch=int(np.argmax([r["val_ndcg@100"] for r in model.history])) + 1)
        if kind == "vae":
            rows["ease"]["ease_lambda"] = results["ease"]["ease_lambda"]
            rows["shape"] = list(model.data.matrix.shape) + [int(model.data.matrix.nnz)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", default="benchmarks/results/recommend.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(os.environ.get("VAEKIT_DATA", ""))
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"command": "OMP_NUM_THREADS=1 PYTHONPATH=src python " + " ".join(sys.argv),
              "vaekit": __version__, "torch": torch.__version__, "numpy": np.__version__,
              "python": platform.python_version(), "threads": torch.get_num_threads(), "cpu": cpu_model(),
              "protocol": "strong generalization (Liang et al. 2018): held-out users, 80% folded in, 20% predicted; "
                          "best epoch by validation NDCG@100; EASE lambda picked on validation users",
              "epochs": args.epochs, "batch_size": args.batch_size, "seeds": seeds, "datasets": {}}
    started = time.perf_counter()
    for name in args.datasets.split(","):
        file, options = DATASETS[name]
        if not (root / file).is_file():
            print(f"skipping {name}: {root / file} not found (set VAEKIT_DATA)")
            continue
        per_seed = [run(root / file, options, seed, args.epochs, args.batch_size) for seed in seeds]
        summary = {"options": options, "shape(users,items,interactions)": per_seed[0]["shape"], "models": {}}
        for model in ("popularity", "ease", "dae", "vae"):
            rows = [r[model] for r in per_seed]
            entry = {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))}
                     for m in METRICS}
            entry["per_seed"] = rows
            summary["models"][model] = entry
        report["datasets"][name] = summary
    report["total_seconds"] = time.perf_counter() - started
    write_json(args.out, report)
    print(table(report))


def table(report: dict) -> str:
    names = {"popularity": "popularity", "ease": "EASE", "dae": "Mult-DAE", "vae": "Mult-VAE"}
    lines = ["| data (users x items) | model | Recall@20 | Recall@50 | NDCG@100 | s/epoch |",
             "|---|---|---|---|---|---|"]
    for data, summary in report["datasets"].items():
        users, items, _ = summary["shape(users,items,interactions)"]
        for model, entry in summary["models"].items():
            cells = [f"{entry[m]['mean']:.3f} ± {entry[m]['std']:.3f}" for m in METRICS]
            epochs = [r["epoch_seconds"] for r in entry["per_seed"] if "epoch_seconds" in r]
            epoch = f"{np.mean(epochs):.2f}" if epochs else ""
            lines.append(f"| {data} ({users} x {items}) | {names[model]} | {' | '.join(cells)} | {epoch} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
