"""Tune a recommender on the validation users only: fit one setting per (data set, seed) and print the best
validation NDCG@100 over epochs (mean ± std over seeds) and the epochs it was reached at. Test users are never
scored. Settings are RecommendConfig/TrainConfig fields as key=value (Python literals):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/recommend_tune.py --data movielens-latest-small \
        --seeds 0,1,2 model=recvae gamma=0.01 epochs=40 batch_size=64
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from vaekit import recommend as rec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.recommend import DATASETS


def validate(path: Path, data_options: dict, seed: int, options: dict) -> tuple[float, int, float]:
    """(best validation NDCG@100, its epoch or EASE's lambda, fit CPU seconds) of one fit."""
    torch.set_num_threads(1)
    started = time.process_time()
    model = rec.fit(path, data_config=rec.InteractionConfig(**data_options), seed=seed, device="cpu", **options)
    scores = [row["val_ndcg@100"] for row in model.history]
    best = int(np.argmax(scores))
    where = model.history[best].get("ease_lambda", best + 1)
    return scores[best], where, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="movielens-latest-small", choices=sorted(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=1, help="seeds fitted at once, one process each")
    parser.add_argument("settings", nargs="*", help="key=value fields of RecommendConfig/TrainConfig")
    args = parser.parse_args()
    options = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.settings)}
    file, data_options = DATASETS[args.data]
    path = Path(os.environ.get("VAEKIT_DATA", "")) / file
    seeds = [int(s) for s in args.seeds.split(",")]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(validate, *zip(*[(path, data_options, seed, {"progress": False, **options})
                                                for seed in seeds])))
    scores = [r[0] for r in runs]
    print(f"{args.data} {' '.join(args.settings)}: val NDCG@100 {np.mean(scores):.4f} ± {np.std(scores):.4f} "
          f"(seeds {', '.join(f'{s:.4f}' for s in scores)}; best at {[r[1] for r in runs]}; "
          f"fit CPU s {np.mean([r[2] for r in runs]):.0f})", flush=True)


if __name__ == "__main__":
    main()
