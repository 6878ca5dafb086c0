"""Benchmark of vaekit.compression: bits-back ANS vs the model's -ELBO and vs gzip/bz2/lzma/PNG on
dynamically binarized MNIST and Fashion-MNIST and on 8-bit Fashion-MNIST (discretized logistic
likelihood), encode/decode throughput, and a lossy rate-distortion curve against JPEG and WebP.

    OMP_NUM_THREADS=1 VAEKIT_DATA=/path/to/data PYTHONPATH=src python benchmarks/compression.py

Prints markdown tables and writes benchmarks/results/compression.json and compression_rd.png.
The reduced configuration (small MLPs, few epochs, one thread) is stated in the JSON and the table.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks.common import cpu_model

DATASETS = {  # name -> (data options, levels); test sets binarized once with the run's fixed seed
    "binarized MNIST": (dict(data="mnist", binarize="dynamic"), 2),
    "binarized Fashion-MNIST": (dict(data="fashion-mnist", binarize="dynamic"), 2),
    "8-bit Fashion-MNIST": (dict(data="fashion-mnist", likelihood="discretized_logistic", gaussian_scale="decoder"),
                            256),
}
# (dataset, model name, training options, epochs argument). Townsend et al. 2019 (bits-back/bits-back,
# torch_vae/tvae_binary.py) trained one hidden layer of 100 units, 40 latents, batch 100, Adam 1e-3,
# on all 60,000 training images for 20 epochs; "small" is that design, trained longer.
MODELS = [
    ("binarized MNIST", "small (BB-ANS paper design)", dict(network="mlp", hidden=(100,), latent_dim=40,
                                                           batch_size=100, val_fraction=0.0), "epochs_small"),
    ("binarized MNIST", "larger", dict(network="mlp", hidden=(400,), latent_dim=40), "epochs"),
    ("binarized Fashion-MNIST", "larger", dict(network="mlp", hidden=(400,), latent_dim=40), "epochs"),
    ("8-bit Fashion-MNIST", "larger", dict(network="mlp", hidden=(400,), latent_dim=40), "epochs"),
]


def baselines(x: np.ndarray, levels: int) -> dict[str, float]:
    """bits/dim of standard compressors on images x (n, 28, 28) uint8: 0/1 (levels 2) or 0..255."""
    from PIL import Image

    n, dims = len(x), x[0].size
    binary = levels == 2
    raw = x.tobytes()
    packed = np.packbits(x.reshape(n, -1), axis=1).tobytes() if binary else None
    out = {}
    for name, fn in (("gzip -9", lambda b: gzip.compress(b, 9)), ("bz2 -9", lambda b: bz2.compress(b, 9)),
                     ("lzma -9", lambda b: lzma.compress(b, preset=9))):
        out[f"{name} (1 byte/pixel)"] = 8 * len(fn(raw)) / (n * dims)
        if binary:
            out[f"{name} (packed bits)"] = 8 * len(fn(packed)) / (n * dims)

    def png_bytes(image: np.ndarray) -> int:
        buffer = io.BytesIO()
        Image.fromarray(image.astype(bool) if binary else image).save(buffer, format="PNG", optimize=True)
        return len(buffer.getvalue())

    depth = "1-bit" if binary else "8-bit"
    out[f"PNG {depth}, one file per image"] = 8 * sum(png_bytes(im) for im in x) / (n * dims)
    out[f"PNG {depth}, all images in one tall file"] = 8 * png_bytes(x.reshape(-1, x.shape[-1])) / (n * dims)
    return out


def neg_elbo_bits_per_dim(vae, x: torch.Tensor, samples: int, seed: int = 0) -> float:
    """Mean -ELBO over x, each reconstruction term averaged over `samples` posterior draws."""
    torch.manual_seed(seed)
    with torch.inference_mode():
        total = sum(float(-vae.elbo(x[i:i + 1000], n_samples=samples).total().sum()) for i in range(0, len(x), 1000))
    return total / len(x) / x[0].numel() / math.log(2)


def lossless(run, x: torch.Tensor, elbo_samples: int) -> dict:
    """x: test images as the model sees them, (n, 1, 28, 28) float in [0, 1] (0/1, or levels k/255)."""
    from vaekit.apps.compression import BitsBackCoder, compress, decompress

    coder = BitsBackCoder(run.vae)
    symbols = np.rint(x.numpy() * (coder.levels - 1)).astype(np.uint8)
    n, dims = len(symbols), symbols[0].size
    start, cpu = time.perf_counter(), time.process_time()
    words = coder.encode(symbols)
    encode_s, encode_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    decoded, clean = coder.decode(words, n, symbols.shape[1:])
    decode_s, decode_cpu = time.perf_counter() - start, time.process_time() - cpu
    with tempfile.TemporaryDirectory() as tmp:  # the same through the file format, with its header
        written = compress(run, symbols, Path(tmp) / "x.vae")
        exact = np.array_equal(np.load(decompress(run, written.path, Path(tmp) / "y.npy")), symbols)
    payload_bpd = 32 * len(words) / (n * dims)
    elbo_bpd = neg_elbo_bits_per_dim(run.vae, x, elbo_samples)
    return {"n_images": n, "bbans_bits_per_dim": payload_bpd, "file_bits_per_dim": written.bits_per_dim,
            "file_bytes": written.bytes, "neg_elbo_bits_per_dim": elbo_bpd,
            "overhead_vs_elbo_percent": 100 * (payload_bpd / elbo_bpd - 1),
            "initial_words": len(coder.initial_words()),
            "round_trip_exact": bool(np.array_equal(decoded, symbols) and clean and exact),
            "encode_images_per_s": n / encode_s, "decode_images_per_s": n / decode_s,
            "encode_images_per_cpu_s": n / encode_cpu, "decode_images_per_cpu_s": n / decode_cpu}


def lossy_curve(run, gray: np.ndarray, bits_list, qualities) -> dict:
    """Rate (bits per image) vs PSNR/SSIM on grayscale images (n, 28, 28) uint8."""
    from PIL import Image

    from vaekit.apps.compression import compress, decompress
    from vaekit.compression.lossy import psnr, ssim

    target = gray.astype(np.float64) / 255
    n = len(gray)
    rows = {"vaekit latent code": [], "vaekit latent code, entropy-coded": [], "JPEG": [], "WebP": []}
    with tempfile.TemporaryDirectory() as tmp:
        for bits in bits_list:
            for name, entropy_code in (("vaekit latent code", False), ("vaekit latent code, entropy-coded", True)):
                written = compress(run, gray, Path(tmp) / "l.vae", lossy_bits=bits, entropy_code=entropy_code)
                recon = np.load(decompress(run, written.path, Path(tmp) / "l.npy")).astype(np.float64) / 255
                rows[name].append({"setting": f"{bits} bits/latent", "bits_per_image": 8 * written.bytes / n,
                                   "psnr": float(psnr(target, recon).mean()),
                                   "ssim": float(ssim(target, recon).mean())})
    side = int(math.ceil(math.sqrt(n)))
    grid = np.zeros((side * side, 28, 28), np.uint8)
    grid[:n] = gray
    tiled = grid.reshape(side, side, 28, 28).transpose(0, 2, 1, 3).reshape(side * 28, side * 28)
    for fmt, name in (("JPEG", "JPEG"), ("WEBP", "WebP")):
        for quality in qualities:
            buffer = io.BytesIO()
            Image.fromarray(tiled).save(buffer, format=fmt, quality=quality)
            back = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
            recon = back.reshape(side, 28, side, 28).transpose(0, 2, 1, 3).reshape(-1, 28, 28)[:n] / 255
            rows[name].append({"setting": f"quality {quality}", "bits_per_image": 8 * len(buffer.getvalue()) / n,
                               "psnr": float(psnr(target, recon).mean()), "ssim": float(ssim(target, recon).mean())})
    return rows


def plot(path: Path, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in curves.items():
        for ax, key in zip(axes, ("psnr", "ssim")):
            ax.plot([r["bits_per_image"] for r in rows], [r[key] for r in rows], "o-", label=name)
            ax.set_xscale("log")
            ax.set_xlabel("bits per image (log scale)")
            ax.set_ylabel({"psnr": "PSNR (dB)", "ssim": "SSIM"}[key])
            ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Lossy MNIST test images: vaekit latent codes vs JPEG / WebP (tiled)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the larger models")
    parser.add_argument("--epochs-small", type=int, default=100, help="epochs of the BB-ANS paper's small model")
    parser.add_argument("--n-test", type=int, default=10000, help="first N images of each binarized test set")
    parser.add_argument("--n-test-8bit", type=int, default=10000, help="first N images of the 8-bit test set")
    parser.add_argument("--n-lossy", type=int, default=1000)
    parser.add_argument("--elbo-samples", type=int, default=10)
    parser.add_argument("--only", choices=list(DATASETS), help="run one dataset's rows and no lossy curve")
    parser.add_argument("--out", default=str(ROOT / "results" / "compression.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not os.environ.get("VAEKIT_DATA") or not Path(os.environ["VAEKIT_DATA"], "mnist").is_dir():
        sys.exit("set VAEKIT_DATA to a folder holding mnist/ (the IDX files)")
    from vaekit.apps import images as image_runs
    from vaekit.apps.compression import read_images
    from vaekit.data.splits import load_splits

    started, started_cpu = time.perf_counter(), time.process_time()
    work = Path(tempfile.mkdtemp(prefix="vaekit-compression-"))
    results = {"lossless": {}, "config": {
        "epochs": args.epochs, "epochs_small": args.epochs_small, "n_test": args.n_test,
        "n_test_8bit": args.n_test_8bit, "n_lossy": args.n_lossy, "elbo_samples": args.elbo_samples,
        "binarize": "dynamic (train); test binarized once with the run's fixed seed (runs.load_splits)"}}
    best_mnist = None
    for i, (dataset, name, options, epochs_arg) in enumerate(MODELS):
        if args.only and dataset != args.only:
            continue
        data_options, levels = DATASETS[dataset]
        epochs = getattr(args, epochs_arg)
        t, cpu = time.perf_counter(), time.process_time()
        run = image_runs.train(work / f"run{i}", epochs=epochs, progress=False, device="cpu", **data_options, **options)
        train_s, train_cpu = time.perf_counter() - t, time.process_time() - cpu
        n = args.n_test if levels == 2 else args.n_test_8bit
        x = load_splits(run.data, run.train.seed).x_test[:n]
        row = lossless(run, x, args.elbo_samples)
        entry = results["lossless"].setdefault(dataset, {"levels": levels, "models": {}})
        entry["models"][name] = {"options": {k: list(v) if isinstance(v, tuple) else v
                                             for k, v in {**data_options, **options}.items()},
                                 "epochs": epochs, "train_seconds": train_s, "train_cpu_seconds": train_cpu, **row}
        if "baselines_bits_per_dim" not in entry:
            symbols = np.rint(x.numpy()[:, 0] * (levels - 1)).astype(np.uint8)
            entry["baselines_bits_per_dim"] = baselines(symbols, levels)
        if dataset == "binarized MNIST" and (best_mnist is None or row["bbans_bits_per_dim"] < best_mnist[1]):
            best_mnist = (f"run{i}", row["bbans_bits_per_dim"], name)
        print(f"{dataset}, {name}: {row}", file=sys.stderr, flush=True)
    if best_mnist is not None and not args.only:
        gray_path = Path(os.environ["VAEKIT_DATA"], "mnist", "t10k-images-idx3-ubyte.gz")
        best_run = image_runs.load_run(work / best_mnist[0], device="cpu")
        curves = lossy_curve(best_run, read_images(gray_path)[:args.n_lossy], (1, 2, 3, 4, 6, 8),
                             (1, 5, 10, 20, 40, 70, 90))
        results["lossy_model"] = f"binarized MNIST, {best_mnist[2]}"
        results["lossy"] = curves
        plot(Path(args.out).with_name(Path(args.out).stem + "_rd.png"), curves)
    shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = time.perf_counter() - started
    results["total_cpu_seconds"] = time.process_time() - started_cpu
    results["load_average_at_end"] = os.getloadavg()
    results["environment"] = {"python": platform.python_version(), "torch": torch.__version__,
                              "numpy": np.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
                              "command": "OMP_NUM_THREADS=1 VAEKIT_DATA=... PYTHONPATH=src python "
                                         + " ".join(["benchmarks/compression.py"] + sys.argv[1:])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)


def print_tables(results: dict) -> None:
    config = results["config"]
    for dataset, entry in results["lossless"].items():
        n = next(iter(entry["models"].values()))["n_images"]
        print(f"\nLossless, first {n} {dataset} test images (bits/dim, lower is better)\n")
        print("| coder | bits/dim | vs -ELBO | encode img/s (per CPU-s) | decode img/s (per CPU-s) |")
        print("|---|---|---|---|---|")
        for name, r in entry["models"].items():
            print(f"| vaekit BB-ANS, {name} {r['options']['hidden']}-{r['options']['latent_dim']}, {r['epochs']} epochs | "
                  f"{r['bbans_bits_per_dim']:.4f} (file {r['file_bits_per_dim']:.4f}) | -ELBO {r['neg_elbo_bits_per_dim']:.4f},"
                  f" {r['overhead_vs_elbo_percent']:+.2f}% | {r['encode_images_per_s']:.0f} ({r['encode_images_per_cpu_s']:.0f}) |"
                  f" {r['decode_images_per_s']:.0f} ({r['decode_images_per_cpu_s']:.0f}) |")
        for name, bpd in entry["baselines_bits_per_dim"].items():
            print(f"| {name} | {bpd:.4f} | | | |")
    if "lossy" in results:
        print(f"\nLossy, first {config['n_lossy']} MNIST test images (8-bit grayscale targets), "
              f"model: {results['lossy_model']}\n")
        print("| codec | setting | bits/image | PSNR dB | SSIM |")
        print("|---|---|---|---|---|")
        for codec, rows in results["lossy"].items():
            for r in rows:
                print(f"| {codec} | {r['setting']} | {r['bits_per_image']:.1f} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
    print(f"\ntotal {results['total_seconds']:.0f} s wall, {results['total_cpu_seconds']:.0f} CPU-s, "
          f"on {results['environment']['threads']} thread(s), load average {results['load_average_at_end'][0]:.1f}, "
          f"{results['environment']['cpu']}")


if __name__ == "__main__":
    main()
