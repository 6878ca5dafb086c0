"""Issue 48: vaekit on one GPU beside pythae and a plain PyTorch loop, every figure in one go.

  bash benchmarks/gpu.sh prepare       # here, once: Fashion-MNIST's four files and pythae's wheels into .gpu/ (ignored)
  bash benchmarks/gpu.sh [FLAGS]       # on the device machine with .gpu carried: install the wheels, run, copy to $OUT
  python -m benchmarks.gpu --dry-run   # every part for a few steps on the CPU, to check the script itself

The parts, in this order, each in its own process group under its own time box (a part that overruns is killed and
recorded as timed out, and the next one starts), all inside --budget seconds:
  mlp-b128   the MLP design (784-400-20, Bernoulli, Adam 1e-3) at batch 128: vaekit fp32, bf16 and --compile, the
             plain loop and pythae, through benchmarks.speed's lockstep: one process per peer,
             taking turns epoch by epoch in alternating order; samples/s of epochs 2+, ratios paired by epoch
  conv-b128  the conv design (benchmarks.speed's): vaekit fp32, bf16 and --compile against pythae
  mlp-b1024  the MLP at batch 1024: vaekit fp32, bf16 and --compile, the plain loop and pythae; GPU memory
  nll        the importance-weighted NLL (k = 1000) on the 10,000 test images, of the MLP trained 2 epochs: wall time
             against its FLOP bound at the fp32 matmul rate measured here (and its byte bound at the measured copy
             rate), and GPU memory
  tests      tests/test_cuda.py
  scale      benchmarks/scale.py, small: 100,000 rows streamed and in memory, 200,000 streamed (300 steps each)
Every part's figures go to benchmarks/results/gpu_<tag>.json (tag: the GPU's model, e.g. h100; dryrun for --dry-run)
as soon as it ends, beside the GPU model, driver and torch version; a rerun of some parts (--parts) keeps the others'.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import RESULTS, environment, markdown_table, write_results

# (design, batch, peers) of each speed part; peers are benchmarks.speed's names
SPEED = {
    "mlp-b128": ("mlp", 128, ("vaekit", "vaekit-bf16", "vaekit-compile", "plain", "pythae")),
    "conv-b128": ("conv", 128, ("vaekit-conv", "vaekit-conv-bf16", "vaekit-conv-compile", "pythae-conv")),
    "mlp-b1024": ("mlp", 1024, ("vaekit", "vaekit-bf16", "vaekit-compile", "plain", "pythae")),
}
EPOCHS = 3  # epoch 1 holds start-up and compilation; the speed is the median of epochs 2 and 3
NLL_K = 1000
DRY = {"rows": 512, "epochs": 2, "k": 20, "budget_factor": 6}  # --dry-run: a few steps of every part on the CPU
FLOOR_SECONDS = 15  # a part is not started with less of the budget left
TARGETS = (  # issue 48's: (what, part, peer, ratio key, at least)
    ("MLP b128: vaekit >= 1.5x pythae", "mlp-b128", "vaekit", "vs_pythae", 1.5),
    ("MLP b128: vaekit >= 1.0x the plain loop", "mlp-b128", "vaekit", "vs_plain", 1.0),
    ("conv b128: vaekit >= 1.5x pythae", "conv-b128", "vaekit-conv", "vs_pythae-conv", 1.5),
)


@dataclass(frozen=True)
class Part:
    name: str
    seconds: int  # its time box on the device
    run: Callable[[argparse.Namespace], dict]  # in the part's own process: its figures


# -- the parts, each run in its own process (`--child NAME`) -------------------------------------------------------
def speed_part(name: str) -> Callable[[argparse.Namespace], dict]:
    def run(args) -> dict:
        from benchmarks import speed

        design, batch, peers = SPEED[name]
        options = speed.build_parser().parse_args([
            "--design", design, "--batch", str(batch), "--epochs", str(args.epochs), "--reps", "1", "--lockstep",
            "--device", args.device, "--limit", str(args.rows)])
        outcome = speed.lockstep(options, list(peers))
        rows = speed.summarize({peer: [row] for peer, row in outcome.items() if row is not None}, options)
        return {"design": design, "batch": batch, "epochs": args.epochs, "rows": rows,
                "failed": [peer for peer, row in outcome.items() if row is None],
                "epoch_seconds": {peer: row["epoch_seconds"] for peer, row in outcome.items() if row is not None}}

    return run


def nll_part(args) -> dict:
    """vaekit's k-sample NLL on the test images (the MLP trained 2 epochs: time and memory depend on the shapes
    only) against two floors: its matrix products at the best fp32 rate measured here for the decoder's shapes or
    a large square, and the decoder's output (the largest tensor) written and read once at the measured copy rate."""
    import torch

    import vaekit
    from benchmarks import speed
    from vaekit.evaluation import importance_weighted_nll

    device = torch.device(args.device)
    x_train, x_test = speed.fashion("conv", args.rows)
    run = vaekit.train(None, data=x_train, preset="pytorch-mlp", epochs=args.epochs - 1, val_fraction=0.0,
                       progress=False, device=args.device)
    x = torch.from_numpy(x_test).to(device)
    torch.manual_seed(0)
    importance_weighted_nll(run.vae, x[:16], k=args.k)  # untimed: kernels loaded, library handles made
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    nll = importance_weighted_nll(run.vae, x, k=args.k)
    seconds = speed.elapsed(started, args.device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    rates = {}
    for rows in (4096, 16384, 65536) if cuda else (1024,):
        taken, flops = speed.gemm_seconds([(rows, speed.Z, speed.H), (rows, speed.H, speed.D)], device=args.device)
        rates[f"decoder_rows_{rows}"] = flops / taken / 1e9
    side = 8192 if cuda else 512
    taken, flops = speed.gemm_seconds([(side, side, side)], device=args.device)
    rates[f"square_{side}"] = flops / taken / 1e9
    flops = speed.iwae_flops(len(x), args.k)
    flop_floor = flops / (max(rates.values()) * 1e9)
    decoded = 2 * 4 * len(x) * args.k * speed.D  # fp32 logits, written once and read once
    byte_floor = decoded / copy_rate(device)
    return {"k": args.k, "images": len(x), "nll": float(nll.mean()), "seconds": seconds, "tflop": flops / 1e12,
            "matmul_gflops": rates, "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "flop_floor_seconds": flop_floor, "vs_flop_floor": seconds / flop_floor,
            "byte_floor_seconds": byte_floor, "vs_byte_floor": seconds / byte_floor,
            "decoder_passes_per_s": len(x) * args.k / seconds, "gpu_peak_mb": peak}


def copy_rate(device) -> float:
    """Bytes per second of a large device-to-device copy, counting bytes read and bytes written."""
    import torch

    from benchmarks import speed

    source = torch.randn(2**28 if device.type == "cuda" else 2**22, device=device)  # 1 GiB on a GPU
    target = torch.empty_like(source)
    return 2 * source.nbytes / speed.timed(lambda: target.copy_(source), repeat=20, device=str(device))


def tests_part(args) -> dict:
    """tests/test_cuda.py under pytest (on a CPU every test skips): counts and the names of those that failed."""
    import xml.etree.ElementTree as ElementTree

    import pytest

    report = Path(tempfile.mkdtemp()) / "junit.xml"
    code = pytest.main(["-p", "no:cacheprovider", "-p", "no:warnings", "-q", f"--junitxml={report}",
                        "tests/test_cuda.py"])
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed = [case.get("name") for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    return {"exit_code": int(code), **counts, "passed": counts["tests"] - counts["failures"] - counts["errors"]
            - counts["skipped"], "failed": failed}


def scale_part(args) -> dict:
    """benchmarks/scale.py's memory part, small: the first shard streamed and held in memory, both shards streamed."""
    os.environ["SCALE_STEPS"] = str(30 if args.dry_run else 300)  # read when benchmarks.scale is imported
    from benchmarks import scale

    work = Path(tempfile.gettempdir()) / "vaekit-gpu-scale"
    rows = scale.SHARD_ROWS if args.dry_run else 2 * scale.SHARD_ROWS
    return {"rows": rows, "steps": scale.STEPS, **scale.part_memory(work, rows, [scale.SHARD_ROWS])}


# time boxes: 450 s in all; a speed part's figures come only when all its peers end, so those get the most room
PARTS = [Part("mlp-b128", 120, speed_part("mlp-b128")), Part("conv-b128", 100, speed_part("conv-b128")),
         Part("mlp-b1024", 70, speed_part("mlp-b1024")), Part("nll", 40, nll_part), Part("tests", 80, tests_part),
         Part("scale", 40, scale_part)]
BY_NAME = {part.name: part for part in PARTS}


# -- the coordinator -------------------------------------------------------------------------------------------------
def run_boxed(command: list[str], seconds: float) -> dict:
    """Run `command` in its own process group for at most `seconds`; its figures are the JSON object on the last
    line of its output. Overrun, the whole group is killed."""
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"status": f"timed out after {seconds:.0f} s", "wall_s": time.monotonic() - started,
                "log": _tail(out + err)}
    wall = time.monotonic() - started
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"status": f"failed (exit {proc.returncode})", "wall_s": wall, "log": _tail(out + err)}
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"status": "failed (no JSON figures on its last line)", "wall_s": wall, "log": _tail(out + err)}
    return {"status": "ok", "wall_s": wall, **figures, "log": _tail(err, 5)}  # e.g. why a peer failed


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_parts(parts: list[Part], command: Callable[[Part], list[str]], budget: float, record: dict,
              save: Callable[[], None], box_factor: float = 1.0) -> None:
    """Each part under min(its box x box_factor, the budget left), its outcome in record[name], saved after each."""
    deadline = time.monotonic() + budget
    for part in parts:
        left = deadline - time.monotonic()
        if left < FLOOR_SECONDS:
            record[part.name] = {"status": f"skipped: {left:.0f} s of the budget left"}
        else:
            record[part.name] = run_boxed(command(part), min(part.seconds * box_factor, left))
        print(f"{part.name}: {record[part.name]['status']} ({record[part.name].get('wall_s', 0):.0f} s)", flush=True)
        save()


def gpu_environment() -> dict:
    """The GPU's model, memory, driver and the CUDA, cuDNN and torch versions (empty without a GPU)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        driver = None
    return {"gpu": props.name, "gpu_memory_gib": props.total_memory / 2**30,
            "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count, "driver": driver, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "torch": torch.__version__}


def tag_of(gpu: str | None) -> str:
    """'h100' for 'NVIDIA H100 80GB HBM3': the model's letter and digits, lower case; 'gpu' if there are none."""
    found = re.search(r"\b([A-Z]+\d{2,4}[A-Za-z]?)\b", gpu or "")
    return found.group(1).lower() if found else "gpu"


def targets(record: dict) -> list[dict]:
    """Issue 48's targets against the figures recorded (None where a figure is missing)."""
    out = []
    for what, part, peer, key, least in TARGETS:
        row = next((r for r in record.get(part, {}).get("rows", []) if r["peer"] == peer), {})
        value = row.get(key)
        out.append({"target": what, "measured": value, "met": None if value is None else value >= least})
    nll = record.get("nll", {})
    ratio = nll.get("vs_flop_floor")
    out.append({"target": "NLL k=1000 within 2x of its FLOP bound", "measured": ratio,
                "met": None if ratio is None else ratio <= 2.0})
    return out


def tables(record: dict) -> str:
    """The run's figures as markdown tables: parts, speed, NLL, tests, scale, targets."""
    parts = [{"part": name, "status": value.get("status"), "wall_s": value.get("wall_s")}
             for name, value in record.items() if isinstance(value, dict) and "status" in value]
    out = [markdown_table(parts, [("part", "part", ""), ("status", "status", ""), ("wall_s", "s", ".0f")])]
    speed_rows = [{"setting": f"{record[name]['design']} b{record[name]['batch']}", **row}
                  for name in SPEED if "rows" in record.get(name, {}) for row in record[name]["rows"]]
    if speed_rows:
        out.append(markdown_table(speed_rows, [
            ("setting", "design", ""), ("peer", "peer", ""), ("samples_per_s", "samples/s", ",.0f"),
            ("seconds_per_epoch", "s/epoch", ".2f"), ("test_neg_elbo", "test -ELBO", ".2f"),
            ("gpu_peak_mb", "GPU peak MB", ",.0f"), ("vs_plain", "x plain", ".2f"), ("vs_pythae", "x pythae", ".2f"),
            ("vs_pythae-conv", "x pythae-conv", ".2f")]))
    if "nll" in record.get("nll", {}):
        out.append(markdown_table([record["nll"]], [
            ("k", "k", ""), ("images", "images", ","), ("nll", "test NLL", ".2f"), ("seconds", "s", ".3f"),
            ("flop_floor_seconds", "FLOP floor s", ".3f"), ("vs_flop_floor", "x FLOP floor", ".2f"),
            ("byte_floor_seconds", "byte floor s", ".3f"), ("vs_byte_floor", "x byte floor", ".2f"),
            ("gpu_peak_mb", "GPU peak MB", ",.0f")]))
    if "tests" in record.get("tests", {}):
        out.append(markdown_table([record["tests"]], [("tests", "CUDA tests", ""), ("passed", "passed", ""),
                                                      ("skipped", "skipped", ""), ("failures", "failed", ""),
                                                      ("errors", "errors", "")]))
    if "ratio" in record.get("scale", {}):
        scale = record["scale"]
        out.append(markdown_table(
            [{"data": f"{key.replace('_', ' ')}", **scale[key]} for key in ("memory_small", "streamed_small",
                                                                            "streamed_all")],
            [("data", "scale data", ""), ("samples_per_s", "samples/s", ",.0f"),
             ("peak_anon_mb", "peak anon MB", ",.0f")]))
    out.append(markdown_table(targets(record), [("target", "issue 48 target", ""), ("measured", "measured", ".2f"),
                                                ("met", "met", "")]))
    return "\n\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(BY_NAME), help="comma-separated, in the order given")
    parser.add_argument("--budget", type=float, default=450, help="seconds for all parts together (default 450)")
    parser.add_argument("--dry-run", action="store_true", help="every part for a few steps on the CPU")
    parser.add_argument("--tag", help="results file gpu_TAG.json (default: the GPU's model, dryrun for --dry-run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """args with the device and sizes of a real run or a dry run."""
    dry = args.dry_run
    return argparse.Namespace(**vars(args), device="cpu" if dry else "cuda", rows=DRY["rows"] if dry else 0,
                              epochs=DRY["epochs"] if dry else EPOCHS, k=DRY["k"] if dry else NLL_K)


def main(argv: list[str] | None = None) -> None:
    args = settings(build_parser().parse_args(argv))
    if args.child:
        figures = BY_NAME[args.child].run(args)
        print(json.dumps(figures), flush=True)
        return
    names = args.parts.split(",")
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown part {', '.join(unknown)}: choose from {', '.join(BY_NAME)}")
    gpu = gpu_environment()
    if not gpu and not args.dry_run:
        raise SystemExit("no CUDA device here: run on the GPU machine, or check the script with --dry-run")
    name = f"gpu_{args.tag or ('dryrun' if args.dry_run else tag_of(gpu.get('gpu')))}"
    path = RESULTS / f"{name}.json"
    record = json.loads(path.read_text()).get("parts", {}) if path.exists() else {}  # a rerun keeps other parts

    def save() -> None:
        write_results(name, {"gpu": gpu, "dry_run": args.dry_run, "budget_s": args.budget, "parts": record,
                             "targets": targets(record), "table": tables(record)})

    command = (lambda part: [sys.executable, "-m", "benchmarks.gpu", "--child", part.name]
               + (["--dry-run"] if args.dry_run else []))
    budget = args.budget * (DRY["budget_factor"] if args.dry_run else 1)
    run_parts([BY_NAME[n] for n in names], command, budget, record, save,
              DRY["budget_factor"] if args.dry_run else 1.0)
    print(f"\n{gpu.get('gpu', 'CPU (dry run)')}, driver {gpu.get('driver')}, torch {environment()['torch']}\n")
    print(tables(record))
    print(f"\n-> {path}")


if __name__ == "__main__":
    main()
