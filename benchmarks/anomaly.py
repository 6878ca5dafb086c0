"""Anomaly-detection benchmark: vaekit's VAEAnomalyDetector against the usual detectors.

One-class protocol for every detector, same splits: fit on the NORMAL rows of a training split,
score the whole test split (normal + anomalous), report ROC-AUC and average precision, mean and
standard deviation over seeds.

- tables: every ADBench 'Classical' .npz file in $VAEKIT_DATA/adbench-classical (tables over --max-rows
  rows subsampled, stratified, fixed seed); per seed a stratified 60/40 split. Peers: IsolationForest, LOF (novelty=True), OCSVM, PCA reconstruction (squared residual),
  PyOD VAE and AutoEncoder.
- images: Fashion-MNIST one-class (the class is normal, the other nine anomalous), read from
  /usr/share/datasets/fashion-mnist or $VAEKIT_DATA/fashion-mnist. Peers: IsolationForest, PCA
  reconstruction, PyOD VAE and AutoEncoder.
- mixed: KDD Cup 99 10% from $VAEKIT_DATA/kddcup99-10pct as a labelled mixed-type table (normal vs any
  attack, 3 categorical columns): vaekit reads the DataFrame; the peers get one-hot + numeric columns.
- --image-validate: no test data at all; compares image-detector candidates (IMAGE_CANDIDATES, and
  several scores of each fitted model) on Fashion-MNIST TRAINING images: per class, fit on 80% of that
  class, score the other 20% against training images of the other classes. How the image setting
  (IMAGE_VAE, the detector's image score) was chosen.

  OMP_NUM_THREADS=1 python benchmarks/anomaly.py            # the reduced default run (~10 min, 1 thread)
  OMP_NUM_THREADS=1 python benchmarks/anomaly.py --image-validate base,z32,gaussian   # choose on training data
  OMP_NUM_THREADS=1 python benchmarks/anomaly.py --seeds 5 --image-seeds 3 --image-train 6000 --image-test 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCORES = ("elbo", "iwae", "reconstruction")  # tables
IMAGE_SCORES = ("deviance", "elbo", "reconstruction")  # images: deviance is the detector's default there
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_model

TABLES = "all"  # every .npz under $VAEKIT_DATA/adbench-classical
KDD = "kddcup99-10pct/kddcup.data_10_percent.gz"


def pca_reconstruction(n_components, standardize: bool):
    """The PCA baseline: squared distance between x and its projection on the top components."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    def fit(x):
        scaler = StandardScaler(with_std=standardize).fit(x)
        pca = PCA(n_components, random_state=0).fit(scaler.transform(x))

        def score(z):
            z = scaler.transform(z)
            return ((z - pca.inverse_transform(pca.transform(z))) ** 2).sum(1)
        return score
    return fit


# The image detector: by default a 1-hidden-layer MLP (the detector's own default for images, a conv net, is
# slow at 1 thread); `--image-network conv` runs that default network with the same step budget. Latent size,
# width, likelihood and score were compared with --image-validate (training images only); see the README.
IMAGE_VAE = {"latent_dim": 16, "hidden": (400,), "network": "mlp", "steps": 1000}


def detectors(kind: str, seed: int, shape) -> dict:
    """name -> a function fit(x_train) returning score(x) (higher = more anomalous)."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.vae import VAE as PyodVAE
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    from vaekit.apps.anomaly import VAEAnomalyDetector

    def sk(make):  # scikit-learn: score_samples is higher = more normal, so negate
        def fit(x):
            model = make().fit(x)
            return lambda z: -model.score_samples(z)
        return fit

    def pyod(make):
        def fit(x):
            model = make(min(64, len(x))).fit(x)  # PyOD drops the last partial batch: tiny tables need a smaller one
            return model.decision_function
        return fit

    table = kind != "image"
    # tables: the detector's defaults; images: IMAGE_VAE (--image-network)
    vae = {} if table else IMAGE_VAE
    epochs = 20 if table else 10
    out = {"vaekit VAE": "vae"}  # fitted once, scored several ways in run_task
    out["IsolationForest"] = sk(lambda: IsolationForest(random_state=seed))
    if table:
        out["LOF"] = sk(lambda: make_pipeline(StandardScaler(), LocalOutlierFactor(novelty=True)))
        out["OCSVM"] = sk(lambda: make_pipeline(StandardScaler(), OneClassSVM(nu=0.1)))
    out["PCA"] = pca_reconstruction(0.9 if table else 30, standardize=table)
    out["PyOD VAE"] = pyod(lambda b: PyodVAE(epoch_num=epochs, batch_size=b, random_state=seed, verbose=0))
    out["PyOD AutoEncoder"] = pyod(lambda b: AutoEncoder(epoch_num=epochs, batch_size=b, random_state=seed, verbose=0))
    return out, lambda: VAEAnomalyDetector(random_state=seed, **vae)


def run_task(kind, name, x_train, x_test, y_test, seed, results, timings, scores=SCORES, encode=None):
    """Fit every detector on x_train (normal rows), score x_test. `encode` (mixed tables): a function
    fitted on x_train that turns DataFrames into numeric arrays for the peers; vaekit gets the DataFrames."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    fits, make_vae = detectors(kind, seed, None)
    for detector, fit in fits.items():
        started = time.perf_counter()
        if fit == "vae":
            model = make_vae().fit(x_train)
            fitted = time.perf_counter()
            scored = {f"vaekit VAE ({s})": model.decision_function(x_test, s) for s in scores}
            timings.setdefault(f"vaekit VAE ({scores[0]}) rows/s", []).append(
                len(x_test) / _time(lambda m=model: m.decision_function(x_test, scores[0])))
        else:
            if encode is not None:
                flat_train, flat_test = encode(x_train), encode(x_test)
            else:
                flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = fit(flat_train)
                fitted = time.perf_counter()
                scored = {detector: score(flat_test)}
        timings.setdefault(f"{detector} fit s", []).append(fitted - started)
        for label, s in scored.items():
            results.setdefault((kind, name, label), []).append(
                (roc_auc_score(y_test, s), average_precision_score(y_test, s)))


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def table_names(data_dir: Path, names: str) -> list[str]:
    if names != "all":
        return names.split(",")
    return sorted((p.stem for p in (data_dir / "adbench-classical").glob("*.npz")), key=lambda n: int(n.split("_")[0]))


def cap_rows(y: np.ndarray, max_rows: int) -> np.ndarray:
    """Indices of a stratified random subsample of at most max_rows rows (fixed seed 0), at least
    one anomaly kept; all rows when there are fewer."""
    from sklearn.model_selection import train_test_split

    if len(y) <= max_rows:
        return np.arange(len(y))
    keep, _ = train_test_split(np.arange(len(y)), train_size=max_rows, stratify=y, random_state=0)
    return np.sort(keep)


def tables(data_dir: Path, names, seeds, max_rows, scores, results, timings, checkpoint=lambda: None) -> None:
    from sklearn.model_selection import train_test_split

    for name in names:
        d = np.load(data_dir / "adbench-classical" / f"{name}.npz")
        x, y = d["X"].astype(np.float32), d["y"].astype(int)
        keep = cap_rows(y, max_rows)
        x, y = x[keep], y[keep]
        if y.sum() < 2:
            print(f"  {name}: fewer than 2 anomalies in {len(y)} rows, skipped", file=sys.stderr, flush=True)
            continue
        for seed in range(seeds):
            x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
            run_task("table", name.split("_", 1)[1], x_tr[y_tr == 0], x_te, y_te, seed, results, timings, scores)
        print(f"  {name} ({len(y)} rows) done", file=sys.stderr, flush=True)
        checkpoint()


def kdd_mixed(data_dir: Path, seeds, n_normal: int, n_attack: int, scores, results, timings) -> None:
    """KDD Cup 99 (10%) as a labelled MIXED table (3 categorical + 38 numeric columns): per seed a random
    n_normal 'normal.' connections and n_attack attacks (any other label), stratified 60/40 split.
    vaekit gets the DataFrame (tabular transformer); the peers get one-hot + numeric columns."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OneHotEncoder

    df = pd.read_csv(data_dir / KDD, header=None)
    df.columns = [f"c{i}" for i in range(df.shape[1])]
    y_all = (df.pop(df.columns[-1]) != "normal.").to_numpy().astype(int)
    categorical = [c for c in df.columns if df[c].dtype == object]
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        rows = np.r_[rng.choice(np.flatnonzero(y_all == 0), n_normal, replace=False),
                     rng.choice(np.flatnonzero(y_all == 1), n_attack, replace=False)]
        x, y = df.iloc[rows].reset_index(drop=True), y_all[rows]
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
        normal = x_tr[y_tr == 0]
        onehot = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
                                   remainder="passthrough").fit(normal)
        run_task("mixed", "kddcup99 (mixed)", normal, x_te, y_te, seed, results, timings, scores,
                 encode=lambda d, e=onehot: e.transform(d).astype(np.float32))
    print("  kddcup99 mixed done", file=sys.stderr, flush=True)


def fashion_folder(data_dir: Path | None) -> Path | None:
    for folder in (data_dir / "fashion-mnist" if data_dir else None, Path("/usr/share/datasets/fashion-mnist")):
        if folder and (folder / "t10k-images-idx3-ubyte.gz").exists():
            return folder
    return None


def images(folder: Path, n_train: int, n_test: int, seeds, scores, results, timings, checkpoint=lambda: None) -> None:
    from vaekit.data.readers import read_idx

    x_train = read_idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 1, 28, 28).astype(np.float32) / 255
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, 1, 28, 28).astype(np.float32) / 255
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        test = rng.permutation(len(x_test))[:n_test]
        for cls in range(10):
            train = rng.permutation(np.flatnonzero(y_train == cls))[:n_train]
            run_task("image", f"class {cls}", x_train[train], x_test[test], (y_test[test] != cls).astype(int),
                     seed, results, timings, scores)
            print(f"  fashion-mnist class {cls} seed {seed} done", file=sys.stderr, flush=True)
            checkpoint()


# Candidates for the image detector, compared by --image-validate on the TRAINING set only: name ->
# VAEAnomalyDetector arguments over IMAGE_VAE.
IMAGE_CANDIDATES = {
    "base": {},  # IMAGE_VAE itself: MLP 400, latent 16, 1,000 steps (kept: it won the comparison)
    "steps3k": {"steps": 3000},  # with the detector's early stopping (patience 10 epochs)
    "z32": {"latent_dim": 32},
    "z8": {"latent_dim": 8},
    "z64": {"latent_dim": 64},
    "z32-mlp512-256": {"latent_dim": 32, "hidden": (512, 256)},
    "mlp512-256": {"hidden": (512, 256)},
    "gaussian": {"likelihood": "gaussian", "scaler": "standard"},
}


def score_variants(det, x: np.ndarray) -> dict:
    """Candidate image scores of a fitted detector (higher = more anomalous), name -> (N,) array:
    squared error or -log p(x|z) at z = E[z|x] or averaged over posterior draws, -ELBO, and the
    Bernoulli deviance (-log p(x|z) minus its minimum over the likelihood's parameters, the entropy
    H(x) of the pixel intensities) at the mean, averaged, and plus the KL."""
    import torch

    xt = torch.from_numpy(det.scaler_.transform(x))
    vae, parts = det.vae_, {}
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(0)
        for i in range(0, len(xt), 1000):
            b = xt[i:i + 1000]
            qz = vae.encode(b)
            z = qz.sample((det.n_samples,))  # (n_samples, batch, latent)
            nll_mean = -vae.decode(qz.mean).log_prob(b)
            nll_z = -vae.decode(z).log_prob(b)  # (n_samples, batch)
            mu_z = vae.decode_mean(z.reshape(-1, z.shape[-1])).view(*z.shape[:2], *b.shape[1:])
            kl = -vae.elbo(b, det.n_samples).total() - nll_z.mean(0)
            row = {"sq. error at E[z]": ((vae.decode_mean(qz.mean) - b) ** 2).flatten(1).sum(1),
                   "sq. error, mean over z~q": ((mu_z - b) ** 2).flatten(2).sum(2).mean(0),
                   "-log p(x|E[z])": nll_mean, "E_q[-log p(x|z)]": nll_z.mean(0), "-ELBO": nll_z.mean(0) + kl}
            if det.likelihood_ == "bernoulli":
                entropy = torch.special.entr(b).add(torch.special.entr(1 - b)).flatten(1).sum(1)
                row.update({"deviance at E[z]": nll_mean - entropy, "E_q[deviance]": nll_z.mean(0) - entropy,
                            "E_q[deviance] + KL": nll_z.mean(0) - entropy + kl})
            for k, v in row.items():
                parts.setdefault(k, []).append(v.double())
    top = np.finfo(np.float64).max  # as the detector does: an overflowing score is the most anomalous
    return {k: np.nan_to_num(torch.cat(v).numpy(), nan=top, posinf=top) for k, v in parts.items()}


def image_validation(folder: Path, names, n_train: int, n_other: int, seed: int = 0, checkpoint=lambda out: None) -> dict:
    """Choose the image detector without test labels: for each class c, fit on 80% of n_train TRAINING
    images of c, score the other 20% (normal) and n_other TRAINING images of the other classes
    (anomalous); ROC-AUC per (candidate, score, class)."""
    from sklearn.metrics import roc_auc_score

    from vaekit.apps.anomaly import VAEAnomalyDetector
    from vaekit.data.readers import read_idx

    x = read_idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 1, 28, 28).astype(np.float32) / 255
    y = read_idx(folder / "train-labels-idx1-ubyte.gz")
    out = {}
    for name in names:
        for cls in range(10):
            rng = np.random.default_rng(seed + cls)
            own = rng.permutation(np.flatnonzero(y == cls))[:n_train]
            n_fit = int(0.8 * len(own))
            other = rng.choice(np.flatnonzero(y != cls), n_other, replace=False)
            started = time.perf_counter()
            det = VAEAnomalyDetector(random_state=seed, **{**IMAGE_VAE, **IMAGE_CANDIDATES[name]}).fit(x[own[:n_fit]])
            fit_s = time.perf_counter() - started
            held = np.r_[own[n_fit:], other]
            labels = np.r_[np.zeros(len(own) - n_fit), np.ones(n_other)]
            for score, s in score_variants(det, x[held]).items():
                out.setdefault(name, {}).setdefault(score, {})[cls] = roc_auc_score(labels, s)
            out[name].setdefault("fit s", {})[cls] = fit_s
            out[name].setdefault("best epoch", {})[cls] = det.best_epoch_
            print(f"  validate {name} class {cls}: fit {fit_s:.0f} s, epoch {det.best_epoch_}/{len(det.history_)}",
                  file=sys.stderr, flush=True)
            checkpoint(out)
    return out


def validation_markdown(out: dict) -> str:
    lines = ["| candidate | score | " + " | ".join(f"class {c}" for c in range(10)) + " | **mean** |",
             "|---|---|" + "---:|" * 11]
    for name, scores in out.items():
        for score, per_class in scores.items():
            if score in ("fit s", "best epoch"):
                continue
            v = [per_class[c] for c in sorted(per_class)]
            lines.append(f"| {name} | {score} | " + " | ".join(f"{a:.3f}" for a in v) + f" | **{np.mean(v):.3f}** |")
        lines.append(f"| {name} | fit s, best epoch | " + " | ".join(
            f"{scores['fit s'][c]:.0f}, {scores['best epoch'][c]}" for c in sorted(scores["fit s"])) + " | |")
    return "\n".join(lines)


def table_markdown(results: dict, kind: str, metric: int) -> str:
    names = list(dict.fromkeys(n for k, n, _ in results if k == kind))
    dets = list(dict.fromkeys(d for k, _, d in results if k == kind))
    lines = ["| dataset | " + " | ".join(dets) + " |", "|---|" + "---:|" * len(dets)]
    means = {d: [] for d in dets}
    for n in names:
        cells = []
        for d in dets:
            v = np.array([r[metric] for r in results[(kind, n, d)]])
            means[d].append(v.mean())
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}")
        best = max(range(len(dets)), key=lambda i: means[dets[i]][-1])
        cells[best] = f"**{cells[best]}**"
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    # spread of the mean: the mean over datasets per seed, then its standard deviation over seeds
    per_seed = {d: np.array([[r[metric] for r in results[(kind, n, d)]] for n in names]).mean(0) for d in dets}
    lines.append("| **mean** | " + " | ".join(f"{np.mean(means[d]):.3f} ± {per_seed[d].std():.3f}" for d in dets) + " |")
    ranks = np.array([[means[d][i] for d in dets] for i in range(len(names))])
    ranks = (-ranks).argsort(1).argsort(1) + 1  # 1 = best on that dataset
    lines.append("| mean rank | " + " | ".join(f"{r:.2f}" for r in ranks.mean(0)) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the tables (default: 3)")
    parser.add_argument("--image-seeds", type=int, default=1, help="seeds for Fashion-MNIST (default: 1)")
    parser.add_argument("--tables", default=TABLES, help="comma-separated ADBench names, or 'all' (default)")
    parser.add_argument("--max-rows", type=int, default=5000,
                        help="larger tables are subsampled (stratified, fixed seed) to this many rows (default: 5000)")
    parser.add_argument("--scores", default=",".join(SCORES), help="vaekit scores reported on tables (default: all three)")
    parser.add_argument("--image-scores", default=",".join(IMAGE_SCORES),
                        help=f"vaekit scores reported on images (default: {','.join(IMAGE_SCORES)})")
    parser.add_argument("--skip-tables", action="store_true")
    parser.add_argument("--skip-mixed", action="store_true")
    parser.add_argument("--kdd-rows", default="5000,250", help="normal,attack rows of the KDD mixed table")
    parser.add_argument("--image-train", type=int, default=1000, help="training images per class (default: 1000)")
    parser.add_argument("--image-test", type=int, default=2000, help="test images scored (default: 2000)")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--image-network", choices=("mlp", "conv"), default="mlp",
                        help="the vaekit image detector's network (conv: the detector's default, latent 16, "
                             "1,000 steps)")
    parser.add_argument("--image-validate", metavar="NAMES",
                        help="run nothing else: compare image-detector candidates ('all' or comma-separated names of "
                             "IMAGE_CANDIDATES) on a validation split of the TRAINING images only (no test labels)")
    parser.add_argument("--validate-train", type=int, default=6000,
                        help="training images of the normal class in --image-validate, 80%% fitted, 20%% scored (default: 6000)")
    parser.add_argument("--validate-other", type=int, default=2000,
                        help="training images of the other classes scored as anomalies in --image-validate (default: 2000)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="run nothing: combine the results files of runs done in parts (e.g. two halves of the tables)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "anomaly.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    data_dir = Path(os.environ["VAEKIT_DATA"]) if os.environ.get("VAEKIT_DATA") else None
    results, timings, started = {}, {}, time.perf_counter()
    scores = tuple(args.scores.split(","))

    def checkpoint():  # OUT.partial.json after every dataset: an interrupted run can still be --merge'd
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".partial.json").write_text(json.dumps({
            "command": "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/anomaly.py", *sys.argv[1:]]) + " (partial)",
            "seconds": time.perf_counter() - started, "timings": {k: float(np.mean(v)) for k, v in timings.items()},
            "results": [{"kind": k, "dataset": n, "detector": d, "roc_auc": [r[0] for r in v],
                         "average_precision": [r[1] for r in v]} for (k, n, d), v in results.items()]}))

    if args.image_validate:
        names = list(IMAGE_CANDIDATES) if args.image_validate == "all" else args.image_validate.split(",")
        def write(out):  # after every fit: an interrupted comparison keeps what it measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({
                "command": "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/anomaly.py", *sys.argv[1:]]),
                "seconds": time.perf_counter() - started, "image_vae": IMAGE_VAE,
                "candidates": {n: IMAGE_CANDIDATES[n] for n in names}, "roc_auc": out,
                "markdown": validation_markdown(out)}, indent=2, default=str) + "\n")

        out = image_validation(fashion_folder(data_dir), names, args.validate_train, args.validate_other,
                               checkpoint=write)
        print(validation_markdown(out))
        print(f"wrote {args.out}", file=sys.stderr)
        return
    parts = [json.loads(Path(f).read_text()) for f in args.merge or []]
    for part in parts:
        for r in part["results"]:
            results[(r["kind"], r["dataset"], r["detector"])] = list(zip(r["roc_auc"], r["average_precision"]))
        for k, v in part["timings"].items():
            timings.setdefault(k, []).append(v)
    if parts or args.skip_tables:
        pass
    elif data_dir and (data_dir / "adbench-classical").is_dir():
        tables(data_dir, table_names(data_dir, args.tables), args.seeds, args.max_rows, scores, results, timings, checkpoint)
    else:
        print("VAEKIT_DATA/adbench-classical not found: skipping the tabular benchmark", file=sys.stderr)
    if parts or args.skip_mixed:
        pass
    elif data_dir and (data_dir / KDD).exists():
        n_normal, n_attack = map(int, args.kdd_rows.split(","))
        kdd_mixed(data_dir, args.seeds, n_normal, n_attack, scores, results, timings)
    else:
        print(f"VAEKIT_DATA/{KDD} not found: skipping the mixed-type table", file=sys.stderr)
    folder = fashion_folder(data_dir)
    if args.image_network == "conv":
        IMAGE_VAE.update(network="conv", hidden=())
    if folder and not args.skip_images and not parts:
        images(folder, args.image_train, args.image_test, args.image_seeds, tuple(args.image_scores.split(",")),
               results, timings, checkpoint)
    seconds = sum(p["seconds"] for p in parts) if parts else time.perf_counter() - started

    import pyod
    import sklearn

    report = []
    for kind, title in (("table", "Tabular (ADBench), one-class"), ("mixed", "Mixed-type table, one-class"),
                        ("image", "Fashion-MNIST one-class")):
        if any(k == kind for k, _, _ in results):
            for metric, mname in ((0, "ROC-AUC"), (1, "average precision")):
                report.append(f"### {title}: {mname}\n\n{table_markdown(results, kind, metric)}\n")
    timing_rows = "\n".join(f"| {k} | {np.mean(v):.3g} |" for k, v in sorted(timings.items()))
    report.append(f"### Timings (mean over tasks)\n\n| what | value |\n|---|---:|\n{timing_rows}\n")
    print("\n".join(report))
    cpu = cpu_model()
    payload = {
        "command": "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/anomaly.py", *sys.argv[1:]]),
        "parts": [p["command"] for p in parts],
        "protocol": "fit on normal rows of the training split; score the whole test split",
        "seconds": seconds, "threads": torch.get_num_threads(), "cpu": cpu, "python": platform.python_version(),
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__,
                     "pyod": pyod.__version__},
        "args": vars(args),
        "results": [{"kind": k, "dataset": n, "detector": d, "roc_auc": [r[0] for r in v],
                     "average_precision": [r[1] for r in v]} for (k, n, d), v in results.items()],
        "timings": {k: float(np.mean(v)) for k, v in timings.items()},
        "markdown": "\n".join(report),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out} in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
