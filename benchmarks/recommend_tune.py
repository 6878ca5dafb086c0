"""Tune a recommender on the validation users only: fit one setting per (data set, seed) and print the best
validation NDCG@100 over epochs (mean ± std over seeds) and the epochs it was reached at. Test users are never
scored. Settings are RecommendConfig/TrainConfig fields as key=value (Python literals):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/recommend_tune.py --data movielens-latest-small \
        --seeds 0,1,2 model='"recvae"' gamma=0.01 prior_weights='(0.3,0.6,0.1)' epochs=40 batch_size=64

--record FILE adds the setting's result to the JSON list in FILE (benchmarks/recommend_sweep.sh: one call per
setting; a setting already there for the same data and seeds is not fitted again, so a stopped sweep resumes) and
prints every setting recorded there as a table, best validation NDCG@100 first; --table FILE prints that table
alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from vaekit import recommend as rec
from vaekit.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.recommend import DATASETS, recommend_settings


def validate(path: Path, data_options: dict, seed: int, options: dict) -> tuple[float, int, float]:
    """(best validation NDCG@100, its epoch or EASE's lambda, fit CPU seconds) of one fit."""
    torch.set_num_threads(1)
    started = time.process_time()
    model = rec.fit(path, data_config=rec.InteractionConfig(**data_options), seed=seed, device="cpu", **options)
    scores = [row["val_ndcg@100"] for row in model.history]
    best = int(np.argmax(scores))
    where = model.history[best].get("ease_lambda", best + 1)
    return scores[best], where, time.process_time() - started


def recorded(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def print_table(rows: list[dict]) -> None:
    """The recorded settings, best mean validation NDCG@100 first."""
    print("| data | setting | val NDCG@100 | seeds | best epochs | fit CPU s |\n|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: -r["val_ndcg@100"]):
        print(f"| {row['data']} | {' '.join(row['settings'])} | {row['val_ndcg@100']:.4f} ± {row['std']:.4f} | "
              f"{', '.join(f'{s:.4f}' for s in row['per_seed'])} | {row['best_at']} | {row['fit_cpu_s']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="movielens-latest-small", choices=sorted(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=1, help="seeds fitted at once, one process each")
    parser.add_argument("--record", type=Path, help="a JSON file collecting every setting's result")
    parser.add_argument("--table", type=Path, help="print the table of a --record file and fit nothing")
    parser.add_argument("settings", nargs="*", help="key=value fields of RecommendConfig/TrainConfig")
    args = parser.parse_args()
    if args.table is not None:
        print_table(recorded(args.table))
        return
    options = recommend_settings(parser, args.settings)
    file, data_options = DATASETS[args.data]
    path = Path(os.environ.get("VAEKIT_DATA", "")) / file
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = recorded(args.record) if args.record is not None else []
    if any((r["data"], r["settings"], r["seeds"]) == (args.data, args.settings, seeds) for r in rows):
        print(f"{args.data} {' '.join(args.settings)}: already in {args.record}", flush=True)
        return
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(validate, *zip(*[(path, data_options, seed, {"progress": False, **options})
                                                for seed in seeds])))
    scores = [r[0] for r in runs]
    row = {"data": args.data, "settings": args.settings, "seeds": seeds, "val_ndcg@100": float(np.mean(scores)),
           "std": float(np.std(scores)), "per_seed": scores, "best_at": [r[1] for r in runs],
           "fit_cpu_s": float(np.mean([r[2] for r in runs])), "date": time.strftime("%Y-%m-%d")}
    print(f"{args.data} {' '.join(args.settings)}: val NDCG@100 {row['val_ndcg@100']:.4f} ± {row['std']:.4f} "
          f"(seeds {', '.join(f'{s:.4f}' for s in scores)}; best at {row['best_at']}; "
          f"fit CPU s {row['fit_cpu_s']:.0f})", flush=True)
    if args.record is not None:
        write_json(args.record, rows + [row])
        print_table(rows + [row])


if __name__ == "__main__":
    main()
