"""Anomaly-detection benchmark: vaekit's VAEAnomalyDetector against the usual detectors.

One-class protocol for every detector, same splits: fit on the NORMAL rows of a training split,
score the whole test split (normal + anomalous), report ROC-AUC and average precision, mean and
standard deviation over seeds.

- tables: ADBench 'Classical' .npz files from $VAEKIT_DATA/adbench-classical; per seed a stratified
  60/40 split. Peers: IsolationForest, LOF (novelty=True), OCSVM, PCA reconstruction (squared residual),
  PyOD VAE and AutoEncoder.
- images: Fashion-MNIST one-class (the class is normal, the other nine anomalous), read from
  /usr/share/datasets/fashion-mnist or $VAEKIT_DATA/fashion-mnist. Peers: IsolationForest, PCA
  reconstruction, PyOD VAE and AutoEncoder.

  OMP_NUM_THREADS=1 python benchmarks/anomaly.py            # the reduced default run (~10 min, 1 thread)
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
sys.path.insert(0, str(ROOT / "src"))

TABLES = ["6_cardio", "38_thyroid", "2_annthyroid", "30_satellite", "31_satimage-2", "23_mammography"]


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
            model = make().fit(x)
            return model.decision_function
        return fit

    if kind == "table":
        vae = dict(latent_dim=8, hidden=(64, 32), steps=3000)
    else:
        vae = dict(latent_dim=16, hidden=(400,), network="mlp", steps=1000)
    epochs = 20 if kind == "table" else 10
    out = {"vaekit VAE": "vae"}  # fitted once, scored three ways below
    out["IsolationForest"] = sk(lambda: IsolationForest(random_state=seed))
    if kind == "table":
        out["LOF"] = sk(lambda: make_pipeline(StandardScaler(), LocalOutlierFactor(novelty=True)))
        out["OCSVM"] = sk(lambda: make_pipeline(StandardScaler(), OneClassSVM(nu=0.1)))
    out["PCA"] = pca_reconstruction(0.9 if kind == "table" else 30, standardize=kind == "table")
    out["PyOD VAE"] = pyod(lambda: PyodVAE(epoch_num=epochs, batch_size=64, random_state=seed, verbose=0))
    out["PyOD AutoEncoder"] = pyod(lambda: AutoEncoder(epoch_num=epochs, batch_size=64, random_state=seed, verbose=0))
    return out, lambda: VAEAnomalyDetector(random_state=seed, **vae)


def run_task(kind, name, x_train, x_test, y_test, seed, results, timings):
    from sklearn.metrics import average_precision_score, roc_auc_score

    fits, make_vae = detectors(kind, seed, x_train.shape[1:])
    for detector, fit in fits.items():
        started = time.perf_counter()
        if fit == "vae":
            model = make_vae().fit(x_train)
            fitted = time.perf_counter()
            scored = {f"vaekit VAE ({s})": model.decision_function(x_test, s)
                      for s in ("elbo", "iwae", "reconstruction")}
            timings.setdefault("vaekit VAE (elbo) rows/s", []).append(
                len(x_test) / _time(lambda: model.decision_function(x_test, "elbo")))
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


def tables(data_dir: Path, names, seeds, results, timings) -> None:
    from sklearn.model_selection import train_test_split

    for name in names:
        d = np.load(data_dir / "adbench-classical" / f"{name}.npz")
        x, y = d["X"].astype(np.float32), d["y"].astype(int)
        for seed in range(seeds):
            x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
            run_task("table", name.split("_", 1)[1], x_tr[y_tr == 0], x_te, y_te, seed, results, timings)
        print(f"  {name} done", file=sys.stderr, flush=True)


def fashion_folder(data_dir: Path | None) -> Path | None:
    for folder in (data_dir / "fashion-mnist" if data_dir else None, Path("/usr/share/datasets/fashion-mnist")):
        if folder and (folder / "t10k-images-idx3-ubyte.gz").exists():
            return folder
    return None


def images(folder: Path, n_train: int, n_test: int, seeds, results, timings) -> None:
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
                     seed, results, timings)
            print(f"  fashion-mnist class {cls} seed {seed} done", file=sys.stderr, flush=True)


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
    lines.append("| **mean** | " + " | ".join(f"{np.mean(means[d]):.3f}" for d in dets) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2, help="seeds for the tables (default: 2)")
    parser.add_argument("--image-seeds", type=int, default=1, help="seeds for Fashion-MNIST (default: 1)")
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--image-train", type=int, default=1000, help="training images per class (default: 1000)")
    parser.add_argument("--image-test", type=int, default=2000, help="test images scored (default: 2000)")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "anomaly.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    data_dir = Path(os.environ["VAEKIT_DATA"]) if os.environ.get("VAEKIT_DATA") else None
    results, timings, started = {}, {}, time.perf_counter()
    if data_dir and (data_dir / "adbench-classical").is_dir():
        tables(data_dir, args.tables.split(","), args.seeds, results, timings)
    else:
        print("VAEKIT_DATA/adbench-classical not found: skipping the tabular benchmark", file=sys.stderr)
    folder = fashion_folder(data_dir)
    if folder and not args.skip_images:
        images(folder, args.image_train, args.image_test, args.image_seeds, results, timings)
    seconds = time.perf_counter() - started

    import pyod
    import sklearn

    report = []
    for kind, title in (("table", "Tabular (ADBench), one-class"), ("image", "Fashion-MNIST one-class")):
        if any(k == kind for k, _, _ in results):
            for metric, mname in ((0, "ROC-AUC"), (1, "average precision")):
                report.append(f"### {title}: {mname}\n\n{table_markdown(results, kind, metric)}\n")
    timing_rows = "\n".join(f"| {k} | {np.mean(v):.3g} |" for k, v in sorted(timings.items()))
    report.append(f"### Timings (mean over tasks)\n\n| what | value |\n|---|---:|\n{timing_rows}\n")
    print("\n".join(report))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    payload = {
        "command": "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/anomaly.py", *sys.argv[1:]]),
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
