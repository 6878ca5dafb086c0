"""Popularity, EASE, Mult-DAE, Mult-VAE and RecVAE side by side on the real interaction data under $VAEKIT_DATA,
by the strong-generalization protocol of Liang et al. (2018), over several seeds (each seed redraws the held-out
users, the fold-in/held-out items and the initialization; every model of a seed sees the same split).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/recommend.py --seeds 0,1,2 --datasets lastfm-hetrec2011

Each model is fitted with vaekit's defaults (--epochs and --batch-size set the autoencoders' budget; --recvae
key=value ... sets RecVAE's fields, e.g. a setting tuned on the validation users by recommend_tune.py); the VAEs
keep the epoch of the best validation NDCG@100 and EASE its best lambda on the validation users; the test users
are scored once. Writes benchmarks/results/recommend_<dataset>[_<tag>].json per data set and prints the table of
every such file.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
from concurrent.futures import ProcessPoolExecutor
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vaekit import __version__
from vaekit import recommend as rec
from vaekit.config import to_dict
from vaekit.errors import ConfigError
from vaekit.io import write_json
from vaekit.options import route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, environment

DATASETS = {
    # name: (file under $VAEKIT_DATA, InteractionConfig fields)
    "movielens-latest-small": ("movielens-latest-small/ratings.csv",
                               dict(min_rating=4.0, min_user_count=5, heldout_fraction=0.15)),
    "lastfm-hetrec2011": ("lastfm-hetrec2011/user_artists.dat",
                          dict(min_item_count=5, min_user_count=5, heldout_fraction=0.1)),
}
MODELS = {"popularity": "popularity", "ease": "EASE", "dae": "Mult-DAE", "vae": "Mult-VAE", "recvae": "RecVAE"}
METRICS = ("recall@20", "recall@50", "ndcg@100", "coverage@20", "long_tail@20")


def literal_settings(words: list[str]) -> dict:
    """{key: value} of key=value words with Python-literal values (hidden='(300,)', model='"recvae"'); a malformed
    word is a ValueError naming it."""
    settings = {}
    for word in words:
        key, equals, text = word.partition("=")
        try:
            if not (key and equals):
                raise ValueError
            settings[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"expected key=value with a Python literal as the value, got '{word}' "
                             f"(a string needs its own quotes: model='\"recvae\"')") from None
    return settings


def recommend_settings(parser: argparse.ArgumentParser, words: list[str], **fixed) -> dict:
    """literal_settings of key=value words, checked as RecommendConfig fields (with `fixed` ones, e.g. the model)
    before any data set loads: a wrong name or value is a usage error, not a worker's traceback minutes later."""
    try:
        settings = literal_settings(words)
        route({**fixed, **settings}, rec.RecommendConfig())
    except (ValueError, ConfigError) as err:
        parser.error(str(err))
    return settings


def run(path: Path, data_options: dict, seed: int, budget: dict[str, dict]) -> dict:
    """Fit and test every model on one seed's split: {model: metrics, fit CPU seconds, chosen epoch/lambda}."""
    torch.set_num_threads(1)
    data_config = rec.InteractionConfig(**data_options)
    rows = {}
    for kind in MODELS:
        started = time.process_time()
        model = rec.fit(path, data_config=data_config, model=kind, seed=seed, device="cpu", **budget.get(kind, {}))
        seconds = time.process_time() - started
        summary = rec.evaluate(model)[kind]
        rows[kind] = {**{m: summary[m] for m in METRICS}, "users": summary["users"], "fit_cpu_seconds": seconds}
        scores = [r["val_ndcg@100"] for r in model.history]
        if kind == "ease":
            rows[kind]["ease_lambda"] = model.history[int(np.argmax(scores))]["ease_lambda"]
        elif scores:
            rows[kind]["best_epoch"], rows[kind]["epochs_run"] = int(np.argmax(scores)) + 1, len(scores)
        rows["shape"] = list(model.data.matrix.shape) + [int(model.data.matrix.nnz)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="Mult-VAE/DAE epochs (default: vaekit's)")
    parser.add_argument("--recvae-epochs", type=int, default=None, help="RecVAE epochs (default: vaekit's)")
    parser.add_argument("--batch-size", type=int, default=None, help="the autoencoders' batch (default: vaekit's)")
    parser.add_argument("--early-stopping", type=int, default=None,
                        help="the autoencoders stop after this many epochs without a better validation NDCG@100 "
                             "(default: vaekit's)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--jobs", type=int, default=1, help="(data set, seed) runs at once, one process each")
    parser.add_argument("--recvae", nargs="*", default=[], metavar="KEY=VALUE",
                        help="RecVAE's RecommendConfig fields as Python literals, e.g. latent_dim=400 hidden='(300,)'")
    parser.add_argument("--tag", default="", help="appended to the results file's name")
    args = parser.parse_args()
    recvae = recommend_settings(parser, args.recvae, model="recvae")
    torch.set_num_threads(1)
    root = Path(os.environ.get("VAEKIT_DATA", ""))
    seeds = [int(s) for s in args.seeds.split(",")]
    common = {k: v for k, v in (("batch_size", args.batch_size), ("early_stopping", args.early_stopping),
                                ("progress", False)) if v is not None}
    budget = {kind: {**common, **({"epochs": e} if e is not None else {})}
              for kind, e in (("dae", args.epochs), ("vae", args.epochs), ("recvae", args.recvae_epochs))}
    budget["recvae"].update(recvae)
    names = [name for name in args.datasets.split(",") if (root / DATASETS[name][0]).is_file()]
    for name in sorted(set(args.datasets.split(",")) - set(names)):
        print(f"skipping {name}: {root / DATASETS[name][0]} not found (set VAEKIT_DATA)")
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = {(name, seed): pool.submit(run, root / DATASETS[name][0], DATASETS[name][1], seed, budget)
                for name in names for seed in seeds}
        results = {key: job.result() for key, job in runs.items()}
    for name in names:
        options = DATASETS[name][1]
        per_seed = [results[name, seed] for seed in seeds]
        models = {}
        for model in MODELS:
            rows = [r[model] for r in per_seed]
            models[model] = {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))}
                             for m in (*METRICS, "fit_cpu_seconds")}
            models[model]["per_seed"] = rows
        write_json(RESULTS / f"recommend_{name}{'_' + args.tag if args.tag else ''}.json", {
            "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python " + shlex.join(sys.argv), "vaekit": __version__,
            **environment(), "date": time.strftime("%Y-%m-%d"), "data": name, "options": options,
            "protocol": "strong generalization (Liang et al. 2018): held-out users, 80% folded in, 20% predicted; "
                        "VAEs: best epoch by validation NDCG@100; EASE: lambda picked on validation users",
            "defaults": to_dict(rec.RecommendConfig()),
            "budget": budget, "seeds": seeds, "shape(users,items,interactions)": per_seed[0]["shape"],
            "models": models, "jobs": args.jobs, "wall_seconds_all_data_sets": time.perf_counter() - started})
    print(table())


def table() -> str:
    """The markdown table of every results/recommend_*.json: mean ± std over seeds (std: population, ddof 0)."""
    lines = ["| data (users x items) | model | Recall@20 | Recall@50 | NDCG@100 | coverage@20 | long tail@20 | "
             "fit CPU s |", "|---|---|---|---|---|---|---|---|"]
    for file in sorted(RESULTS.glob("recommend_*.json")):
        report = json.loads(file.read_text())
        if not isinstance(report, dict) or "models" not in report:  # recommend_sweep.json: recommend_tune.py's
            continue
        tag = file.stem.removeprefix(f"recommend_{report['data']}").lstrip("_")
        users, items, _ = report["shape(users,items,interactions)"]
        for model, entry in report["models"].items():
            cells = [f"{entry[m]['mean']:.3f} ± {entry[m]['std']:.3f}" for m in METRICS]
            lines.append(f"| {report['data']}{' ' + tag if tag else ''} ({users} x {items}) | {MODELS[model]} | "
                         f"{' | '.join(cells)} | "
                         f"{entry['fit_cpu_seconds']['mean']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
