"""Data at scale (issue 44): streamed training against in-memory, cost as the data grows, an image folder read by
DataLoader workers, datasets and WebDataset beside .npy shards, and kill -9 then --resume.

  python -m benchmarks.scale [--rows 2000000] [--sizes 200000,1000000,2000000] [--images 100000] [--kills 10]
                             [--work /tmp/vaekit-scale] [--parts memory,growth,images,formats,ranks,kills]

Data: `--rows` generated binary 28x28 rows (uint8 0/255, a Bernoulli(0.3) draw per pixel), written as .npy shards of
100,000 rows (1.6 GB for 2M rows); an image folder of `--images` JPEGs made from the shared CIFAR-10 JPEGs (the 60,000
files as they are, then horizontally flipped re-encodings); the first 200,000 rows again as a Hugging Face datasets
folder and as WebDataset .tar shards. Every training run is `vaekit train` (apps.images.train) in a fresh process:
the MLP design (784-400-20, Bernoulli, batch 128, Adam 1e-3), one epoch, on one thread. Peak anonymous memory is the
largest RssAnon of /proc/self/status, sampled every 0.1 s in the training process (page cache of the memory-mapped
shards is file-backed and not counted; DataLoader workers are separate processes, reported beside it). `ranks`
runs two processes under torchrun (gloo), streaming all `--rows` rows and then the .tar shards, and reports each
rank's peak.
The machine is shared: samples/s depend on the other jobs (the load average is recorded with each run).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, write_results

SHARD_ROWS = 100_000
WARMUP = 10  # steps before the timed ones
CIFAR = Path(os.environ.get("VAEKIT_DATA", "/work/shared/data")) / "cifar10-jpg"
DESIGN = ["--network", "mlp", "--batch-size", "128", "--lr", "1e-3", "--epochs", "1"]
STEPS = int(os.environ.get("SCALE_STEPS", "300"))  # optimizer steps timed per run (--steps)
KILLED = str(Path(__file__).parents[1] / "tests" / "killed_train.py")  # vaekit killed by SIGKILL at a step


def _status(field: str, pid: str = "self") -> int:
    """A /proc/PID/status field in kB (0 where the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), 0)
    except OSError:
        return 0


class Enough(Exception):
    """The step budget of a measured run is spent."""


def child(argv: list[str]) -> None:
    """One `vaekit train` run in this process, stopped after `--steps N` optimizer steps; prints a JSON line with its
    figures: samples/s over the steps after the first WARMUP, peak anonymous memory of this process and its workers."""
    import torch

    from vaekit.cli import main
    from vaekit.vae import VAE

    torch.set_num_threads(1)
    steps = int(argv[argv.index("--steps") + 1])
    argv = [a for i, a in enumerate(argv) if "--steps" not in (a, argv[i - 1] if i else "")]
    loss, stamps = VAE.loss, []

    def counted(self, x, **kwargs):
        stamps.append(time.perf_counter())
        if len(stamps) > steps:
            raise Enough
        return loss(self, x, **kwargs)

    VAE.loss = counted
    peak = {"anon": 0, "workers": 0}
    done = threading.Event()

    def sample():
        while not done.wait(0.1):
            peak["anon"] = max(peak["anon"], _status("RssAnon"))
            children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
            peak["workers"] = max(peak["workers"], sum(_status("RssAnon", pid) for pid in children))

    threading.Thread(target=sample, daemon=True).start()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        main(argv)
    except Enough:
        pass
    wall = time.perf_counter() - started
    done.set()
    batch = int(argv[argv.index("--batch-size") + 1])
    rate = (len(stamps) - 1 - WARMUP) * batch / (stamps[-1] - stamps[WARMUP])
    print(json.dumps({"rank": int(os.environ.get("RANK", "0")), "samples_per_s": rate, "steps": len(stamps) - 1, "peak_anon_mb": peak["anon"] / 1024,
                      "workers_anon_mb": peak["workers"] / 1024, "wall_s": wall, "load": load}))
    from vaekit.distributed import exit_process

    exit_process(0)  # under torchrun: leave without the group's teardown (see exit_process)


def train(data: str, out: Path, *flags: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.scale", "child", "train", "--data", data, "--out", str(out),
               "--overwrite", *DESIGN, "--steps", str(STEPS), *flags]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_rows(work: Path, rows: int) -> Path:
    """rows binary 28x28 uint8 rows in .npy shards of SHARD_ROWS, shard i drawn with seed i (those there are kept)."""
    from vaekit.io import write_npy

    folder = work / "npy"
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(rows // SHARD_ROWS):
        path = folder / f"shard-{shard:05d}.npy"
        if not path.exists():
            rng = np.random.default_rng(shard)
            write_npy(path, (rng.random((SHARD_ROWS, 28, 28), dtype=np.float32) < 0.3).astype(np.uint8) * 255)
    return folder


def shard_glob(folder: Path, rows: int) -> str:
    """A glob of the first rows // SHARD_ROWS shards (vaekit.data.shards names them shard-00000.npy, ...)."""
    count = rows // SHARD_ROWS
    return str(folder / f"shard-{_prefix_pattern(count)}.npy")


def _prefix_pattern(count: int) -> str:
    """A glob matching shard numbers 0..count-1 of 5 digits, for count of 1..99."""
    tens, ones = divmod(count, 10)
    if tens == 0:
        return f"0000[0-{ones - 1}]"
    if ones == 0:
        return f"000[0-{tens - 1}][0-9]"
    raise SystemExit(f"pick sizes that are multiples of {SHARD_ROWS} below 10 or of {10 * SHARD_ROWS}")


def part_memory(work: Path, rows: int, sizes: list[int]) -> dict:
    npy = make_rows(work, rows)
    small = shard_glob(npy, sizes[0])
    result = {"streamed_small": train(small, work / "run", "--stream", "always", "--workers", "0"),
              "memory_small": train(small, work / "run", "--stream", "never"),
              "streamed_all": train(str(npy), work / "run", "--stream", "always", "--workers", "0")}
    result["ratio"] = result["streamed_small"]["samples_per_s"] / result["memory_small"]["samples_per_s"]
    return result


def part_growth(work: Path, rows: int, sizes: list[int], known: dict) -> list[dict]:
    npy = make_rows(work, rows)
    out = []
    for size in sizes:
        figures = known.get(size) or train(str(npy) if size == rows else shard_glob(npy, size), work / "run",
                                           "--stream", "always", "--workers", "0")
        trained = size - min(10_000, round(0.1 * size))  # the rest is held out for validation
        out.append({"rows": size, **figures, "epoch_seconds": trained / figures["samples_per_s"]})
    return out


def make_images(work: Path, count: int) -> Path:
    """count JPEGs: CIFAR-10's 60,000 as they are, then horizontal flips re-encoded at quality 75."""
    from PIL import Image, ImageOps

    folder = work / "images"
    if folder.is_dir() and sum(1 for _ in folder.rglob("*.jpg")) >= count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = 0
    for flip in (False, True):
        for archive in ("cifar10_train_jpg.zip", "cifar10_test_jpg.zip"):
            with zipfile.ZipFile(CIFAR / archive) as z:
                for name in sorted(n for n in z.namelist() if n.endswith(".jpg")):
                    if written >= count:
                        return folder
                    data = z.read(name)
                    if flip:
                        buffer = io.BytesIO()
                        ImageOps.mirror(Image.open(io.BytesIO(data)).convert("RGB")).save(buffer, "JPEG", quality=75)
                        data = buffer.getvalue()
                    sub = folder / f"{written // 10_000:03d}"
                    sub.mkdir(exist_ok=True)
                    (sub / f"{written:06d}.jpg").write_bytes(data)
                    written += 1
    return folder


def part_images(work: Path, count: int) -> dict:
    """images/s of decoding alone (one process), of DataLoader reading with 0, 1, 2 workers, and of training."""
    import torch

    from vaekit.batches import epoch_batches
    from vaekit.data.streams import ImageFiles, RowSubset

    folder = make_images(work, count)
    source = ImageFiles(str(folder))
    probe = 2_000
    started = time.perf_counter()
    source[torch.arange(probe)]
    decode = probe / (time.perf_counter() - started)
    reading = {}
    subset = RowSubset(source, np.random.default_rng(0).permutation(len(source))[:10_000])
    for workers in (0, 1, 2):
        order = torch.randperm(len(subset), generator=torch.Generator().manual_seed(0))
        started = time.perf_counter()
        for _ in epoch_batches(subset, order, 128, 0, lambda i: (i, len(i)), workers, 0):
            pass
        reading[workers] = len(order) / (time.perf_counter() - started)
    training = {workers: train(str(folder), work / "run", "--stream", "always", "--workers", str(workers))
                for workers in (0, 1, 2)}
    return {"images": len(source), "decode_per_s": decode, "read_per_s": reading, "train": training}


def make_formats(work: Path, rows: int = SHARD_ROWS) -> tuple[Path, Path]:
    """The first `rows` rows as a datasets folder and as .tar shards of SHARD_ROWS // 10 samples (those there are
    kept)."""
    import datasets
    import webdataset

    npy = make_rows(work, rows)
    x = np.concatenate([np.load(p, mmap_mode="r") for p in sorted(npy.glob("*.npy"))[: rows // SHARD_ROWS]])
    hf, tar = work / "hf", work / "tar"
    if not hf.is_dir():
        features = datasets.Features({"pixels": datasets.Array2D((28, 28), "uint8")})
        datasets.Dataset.from_dict({"pixels": x}, features=features).save_to_disk(str(hf))
    if not tar.is_dir():
        tar.mkdir()
        for shard in range(0, rows, SHARD_ROWS // 10):
            with webdataset.TarWriter(str(tar / f"part-{shard // (SHARD_ROWS // 10):04d}.tar")) as w:
                for i in range(shard, min(rows, shard + SHARD_ROWS // 10)):
                    buffer = io.BytesIO()
                    np.save(buffer, x[i])
                    w.write({"__key__": f"{i:08d}", "npy": buffer.getvalue()})
    return hf, tar


def part_formats(work: Path, rows: int = SHARD_ROWS) -> dict:
    """The first `rows` rows as .npy shards, a datasets folder and .tar shards: training samples/s of each."""
    npy = make_rows(work, rows)
    hf, tar = make_formats(work, rows)
    return {"npy": train(shard_glob(npy, rows), work / "run", "--stream", "always", "--workers", "0"),
            "datasets": train(str(hf), work / "run", "--stream", "always", "--workers", "0"),
            "datasets_1_worker": train(str(hf), work / "run", "--stream", "always", "--workers", "1"),
            "tar": train(str(tar), work / "run", "--stream", "always", "--workers", "0"),
            "tar_1_worker": train(str(tar), work / "run", "--stream", "always", "--workers", "1")}


def train_ranks(data: str, out: Path, ranks: int = 2) -> list[dict]:
    """`train` as `ranks` processes under torchrun (gloo on 127.0.0.1, one thread each): each rank's figures, by
    rank. samples/s counts the global batch (all ranks' rows) of each step."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}", "--master-addr=127.0.0.1",
               f"--master-port={port}", "-m", "benchmarks.scale", "child", "train", "--data", data, "--out", str(out),
               "--overwrite", *DESIGN, "--steps", str(STEPS), "--stream", "always", "--workers", "0"]
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"})
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or len(lines) != ranks:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return sorted(lines, key=lambda figures: figures["rank"])


def part_ranks(work: Path, rows: int) -> dict:
    """Two ranks streaming all `rows` .npy rows (more than the memory rule lets a process hold: 4 bytes a value),
    and the .tar shards of part_formats: each rank's peak anonymous memory while it reads only its share."""
    npy = make_rows(work, rows)
    _, tar = make_formats(work)
    return {"rows": rows, "float32_gb": rows * 28 * 28 * 4 / 1e9, "npy": train_ranks(str(npy), work / "run"),
            "tar": train_ranks(str(tar), work / "run")}


def part_kills(work: Path, kills: int, rows: int = 8_000) -> dict:
    """Kill -9 at random steps of a 2-epoch run with --checkpoint-every 50, resume, compare with the whole run."""
    from vaekit.data.shards import write_npy_shards

    small = work / "small"
    if not small.is_dir():
        x = np.load(make_rows(work, SHARD_ROWS) / "shard-00000.npy", mmap_mode="r")[:rows]
        write_npy_shards(np.asarray(x), small, rows_per_shard=rows // 4)
    flags = ["train", "--data", str(small), "--stream", "always", "--workers", "0", "--network", "mlp",
             "--batch-size", "128", "--epochs", "2", "--checkpoint-every", "50"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "vaekit", *flags, "--out", str(work / "whole"), "--overwrite"], env=env,
                   check=True, capture_output=True)
    steps = 2 * -(-(rows - rows // 10) // 128)
    picks = sorted(random.Random(0).sample(range(1, steps), kills))
    results = []
    for step in picks:
        cut = work / "cut"
        shutil.rmtree(cut, ignore_errors=True)
        killed = subprocess.run([sys.executable, KILLED, str(step), *flags, "--out", str(cut)], env=env,
                                capture_output=True)
        resumed = subprocess.run([sys.executable, "-m", "vaekit", *flags, "--out", str(cut), "--resume"], env=env,
                                 capture_output=True)
        same = resumed.returncode == 0 and all(
            (cut / name).read_bytes() == (work / "whole" / name).read_bytes()
            for name in ("model.safetensors",))
        results.append({"killed_at_step": step, "killed_by_signal": killed.returncode == -signal.SIGKILL,
                        "identical": same})
    return {"runs": results, "identical": sum(r["identical"] and r["killed_by_signal"] for r in results),
            "of": len(results), "steps": steps}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--sizes", default="200000,1000000,2000000")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--work", default="/tmp/vaekit-scale")
    parser.add_argument("--parts", default="memory,growth,images,formats,ranks,kills")
    args = parser.parse_args()
    work, sizes, parts = Path(args.work), [int(s) for s in args.sizes.split(",")], args.parts.split(",")
    work.mkdir(parents=True, exist_ok=True)
    results_path = Path(__file__).parent / "results" / "scale.json"
    result = json.loads(results_path.read_text()) if results_path.exists() else {}
    result.pop("command", None), result.pop("environment", None)
    if "memory" in parts:
        result["memory"] = part_memory(work, args.rows, sizes)
        write_results("scale", result)
        memory = result["memory"]
        print(markdown_table([{"what": f"{sizes[0]:,} rows in memory", **memory["memory_small"]},
                              {"what": f"{sizes[0]:,} rows streamed", **memory["streamed_small"]},
                              {"what": f"{args.rows:,} rows streamed", **memory["streamed_all"]}],
                             [("what", "data", ""), ("samples_per_s", "samples/s", ",.0f"),
                              ("peak_anon_mb", "peak anon MB", ",.0f"), ("load", "load avg", ".1f")]))
        print(f"streamed / in memory: {memory['ratio']:.2f}")
    if "growth" in parts:
        known = {sizes[0]: result.get("memory", {}).get("streamed_small"),
                 args.rows: result.get("memory", {}).get("streamed_all")}
        result["growth"] = part_growth(work, args.rows, sizes, known)
        write_results("scale", result)
        print(markdown_table(result["growth"], [("rows", "rows", ",d"), ("epoch_seconds", "s/epoch", ".1f"),
                                                ("samples_per_s", "samples/s", ",.0f"),
                                                ("peak_anon_mb", "peak anon MB", ",.0f"), ("load", "load avg", ".1f")]))
    if "images" in parts:
        result["images"] = part_images(work, args.images)
        write_results("scale", result)
        images = result["images"]
        print(f"{images['images']:,} JPEGs; decoding alone {images['decode_per_s']:,.0f} images/s")
        print(markdown_table([{"workers": w, "read": images["read_per_s"][w], **images["train"][w]} for w in (0, 1, 2)],
                             [("workers", "workers", ""), ("read", "read images/s", ",.0f"),
                              ("samples_per_s", "train images/s", ",.0f"), ("peak_anon_mb", "peak anon MB", ",.0f"),
                              ("workers_anon_mb", "workers' anon MB", ",.0f"), ("load", "load avg", ".1f")]))
    if "formats" in parts:
        result["formats"] = part_formats(work)
        write_results("scale", result)
        print(markdown_table([{"format": k, **v} for k, v in result["formats"].items()],
                             [("format", "format", ""), ("samples_per_s", "samples/s", ",.0f"),
                              ("peak_anon_mb", "peak anon MB", ",.0f"), ("load", "load avg", ".1f")]))
    if "ranks" in parts:
        result["ranks"] = part_ranks(work, args.rows)
        write_results("scale", result)
        ranks = result["ranks"]
        print(markdown_table([{"data": data, **figures} for data in ("npy", "tar") for figures in ranks[data]],
                             [("data", "data", ""), ("rank", "rank", ""), ("samples_per_s", "samples/s (both ranks)", ",.0f"),
                              ("peak_anon_mb", "peak anon MB", ",.0f"), ("load", "load avg", ".1f")]))
    if "kills" in parts:
        result["kills"] = part_kills(work, args.kills)
        write_results("scale", result)
        print(f"kill -9 then --resume: {result['kills']['identical']}/{result['kills']['of']} identical "
              f"(steps {[r['killed_at_step'] for r in result['kills']['runs']]} of {result['kills']['steps']})")


if __name__ == "__main__":
    main()
