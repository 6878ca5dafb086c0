"""Tabular VAE vs SDV's TVAE on three real tables: quality scores, fit time and sampling time.

Tables: UCI Adult (adult.data, or a subsample; held-out rows from adult.test), UCI Wine Quality
(white; 80/20 split) from $VAEKIT_DATA, and scikit-learn's breast cancer (80/20 split). All models
get the same epochs and batch size (500), run in alternating order, and sample as many rows as they
were fit on; every score is from vaekit.tabular.quality_report against the same held-out rows.
Times include preprocessing; CPU seconds of this single-threaded process are reported beside wall
seconds, which other jobs on a shared machine inflate. So that the CPU seconds see all the work,
TVAE runs with joblib's sequential backend (ctgan otherwise transforms columns in worker
processes), and torch's one-off import of torch._dynamo on the first optimizer is paid up front.

    OMP_NUM_THREADS=1 VAEKIT_DATA=../shared/data PYTHONPATH=src python benchmarks/tabular.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import cpu_model


def load_tables(data_dir: Path, adult_rows: int | None, holdout_rows: int | None, seed: int) -> list[tuple]:
    """(name, train, holdout, target) for each table."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    rng = np.random.default_rng(seed)
    cols = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
            "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income"]
    read = dict(header=None, names=cols, skipinitialspace=True, na_values="?")
    adult = pd.read_csv(data_dir / "uci-adult" / "adult.data", **read)
    adult_test = pd.read_csv(data_dir / "uci-adult" / "adult.test", skiprows=1, **read)
    adult_test["income"] = adult_test["income"].str.rstrip(".")
    if adult_rows:
        adult = adult.sample(min(adult_rows, len(adult)), random_state=seed).reset_index(drop=True)
    if holdout_rows:
        adult_test = adult_test.sample(min(holdout_rows, len(adult_test)), random_state=seed).reset_index(drop=True)
    tables = [("adult", adult, adult_test, "income")]

    def split(name, df, target):
        order = rng.permutation(len(df))
        cut = int(0.8 * len(df))
        tables.append((name, df.iloc[order[:cut]].reset_index(drop=True), df.iloc[order[cut:]].reset_index(drop=True),
                       target))

    split("wine-white", pd.read_csv(data_dir / "wine-quality" / "winequality-white.csv"), "quality")
    cancer = load_breast_cancer(as_frame=True)
    frame = cancer.frame.copy()
    frame["target"] = np.array(cancer.target_names)[cancer.target]
    split("breast-cancer", frame, "target")
    return tables


def timed(fn):
    """(result, wall seconds, CPU seconds of this process): CPU time is robust to other jobs on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fit_vaekit(train, epochs: int, seed: int, normalization: str, beta: float | None = None):
    from vaekit.tabular import TabularVAE

    options = dict(epochs=epochs, seed=seed, normalization=normalization, **({} if beta is None else {"beta": beta}))
    model, *fit_s = timed(lambda: TabularVAE(**options).fit(train))
    synthetic, *sample_s = timed(lambda: model.sample(len(train), seed=seed))
    return synthetic, fit_s, sample_s


def fit_tvae(train, epochs: int, seed: int):
    import joblib
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import TVAESynthesizer

    torch.manual_seed(seed)
    np.random.seed(seed)

    def fit():
        model = TVAESynthesizer(Metadata.detect_from_dataframes({"table": train}), epochs=epochs, enable_gpu=False)
        model.fit({"table": train})
        return model

    with joblib.parallel_config(backend="sequential"):  # in this process, so that its CPU time is counted
        model, *fit_s = timed(fit)
        synthetic, *sample_s = timed(lambda: model.sample(len(train)))
    synthetic = synthetic["table"] if isinstance(synthetic, dict) else synthetic  # sdv 2 returns {name: table}
    return synthetic, fit_s, sample_s


def environment() -> dict:
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("pandas", "sklearn", "sdv", "ctgan"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"versions": versions, "threads": torch.get_num_threads(), "cpu": cpu_model()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--adult-rows", type=int, default=0, help="training rows drawn from adult.data (0: all)")
    parser.add_argument("--holdout-rows", type=int, default=0, help="held-out rows drawn from adult.test (0: all)")
    parser.add_argument("--tables", default="adult,wine-white,breast-cancer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beta", type=float, default=None, help="vaekit's KL weight (default: TabularVAE's)")
    parser.add_argument("--models", default="vaekit,vaekit-standard,tvae")
    parser.add_argument("--out", default="benchmarks/results/tabular.json")
    parser.add_argument("--figures", default="benchmarks/results/tabular_adult",
                        help="folder for vaekit's quality plots on Adult")
    args = parser.parse_args()

    data_dir = os.environ.get("VAEKIT_DATA")
    if not data_dir or not Path(data_dir).exists():
        print("set VAEKIT_DATA to the shared data folder (uci-adult, wine-quality)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer imports torch._dynamo (~2 s)
    warnings.filterwarnings("ignore")
    from vaekit.tabular import quality_report

    fits = {"vaekit": lambda t: fit_vaekit(t, args.epochs, args.seed, "modes", args.beta),  # the default
            "vaekit-standard": lambda t: fit_vaekit(t, args.epochs, args.seed, "standard", args.beta),
            "tvae": lambda t: fit_tvae(t, args.epochs, args.seed)}
    rows, models = [], args.models.split(",")
    tables = [t for t in load_tables(Path(data_dir), args.adult_rows, args.holdout_rows, args.seed)
              if t[0] in args.tables.split(",")]
    for i, (name, train, holdout, target) in enumerate(tables):
        for model in models[i % len(models):] + models[:i % len(models)]:  # alternate which model runs first
            synthetic, fit_s, sample_s = fits[model](train)
            figures = args.figures if name == "adult" and model == "vaekit" else None
            q = quality_report(train, synthetic, holdout, target, out_dir=figures, seed=args.seed)
            rows.append({"table": name, "model": model, "rows": len(train), "columns": train.shape[1],
                         "epochs": args.epochs, "fit_s": fit_s[0], "fit_cpu_s": fit_s[1],
                         "sample_s": sample_s[0], "sample_cpu_s": sample_s[1],
                         "column_shapes": q.column_shapes, "column_pair_trends": q.column_pair_trends,
                         "ml_metric": q.ml_efficacy["metric"], "ml_real": q.ml_efficacy["real"],
                         "ml_synthetic": q.ml_efficacy["synthetic"], "dcr_synthetic": q.privacy["dcr_synthetic"],
                         "dcr_holdout": q.privacy["dcr_holdout"],
                         "share_closer_than_holdout_median": q.privacy["share_closer_than_holdout_median"]})
            print(f"# {name} {model}: fit {fit_s[1]:.1f} CPU s", file=sys.stderr, flush=True)
    tvae = {r["table"]: r["fit_cpu_s"] for r in rows if r["model"] == "tvae"}
    for r in rows:
        r["fit_cpu_vs_tvae"] = r["fit_cpu_s"] / tvae[r["table"]] if r["table"] in tvae else None
    rows.sort(key=lambda r: ([t[0] for t in tables].index(r["table"]), models.index(r["model"])))

    header = ("| table (rows x cols) | model | shapes | pair trends | ML synth (real) | DCR synth / holdout "
              "| fit CPU s (wall) | fit vs TVAE | sample CPU s |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['table']} ({r['rows']} x {r['columns']}) | {r['model']} | {r['column_shapes']:.3f} | "
                     f"{r['column_pair_trends']:.3f} | {r['ml_synthetic']:.3f} ({r['ml_real']:.3f} {r['ml_metric']}) | "
                     f"{r['dcr_synthetic']:.4f} / {r['dcr_holdout']:.4f} | {r['fit_cpu_s']:.1f} ({r['fit_s']:.1f}) | "
                     + (f"{r['fit_cpu_vs_tvae']:.2f}x" if r["fit_cpu_vs_tvae"] is not None else "-")
                     + f" | {r['sample_cpu_s']:.2f} |")
    print("\n".join(lines))
    result = {"command": "OMP_NUM_THREADS=1 VAEKIT_DATA=../shared/data PYTHONPATH=src python benchmarks/tabular.py "
                         + " ".join(sys.argv[1:]),
              "config": vars(args), **environment(), "rows": rows}
    from vaekit.io import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
