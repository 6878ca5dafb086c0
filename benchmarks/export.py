"""`vaekit export` (issue 46): parity of the exported graphs with eager PyTorch, and the exported decoder's
throughput in onnxruntime against eager torch.

  python -m benchmarks.export [--images 2000] [--repeats 5]

For each network design and core likelihood a run is trained for one epoch on the first --images MNIST
training images ($VAEKIT_DATA, else a download), then exported to ONNX (opset 20) and as a torch.export
program. Parity: the max abs error of every output of both graphs, onnxruntime and the loaded program alike,
against the run as vaekit loads it (its own CPU paths) on 64 test images and 64 prior draws. Throughput: the
decoder's samples/s (all its outputs) at batch 1 and 256, in onnxruntime and in eager torch on the loaded run
(inference mode), one thread each: the median of --repeats timings of at least 0.3 s. One thread, because on a
shared 2-core machine torch's two OpenMP threads wait for each other at every op while other processes hold
a core (eager decoding ran 10-100x slower on 2 threads than on 1 there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, write_results

CASES = [("mlp", "bernoulli", "learned"), ("mlp", "gaussian", "learned"), ("mlp", "gaussian", "decoder"),
         ("mlp", "gaussian", "0.1"), ("mlp", "discretized_logistic", "learned"),
         ("conv", "bernoulli", "learned"), ("conv", "gaussian", "learned"), ("conv", "gaussian", "decoder"),
         ("conv", "gaussian", "0.1"), ("conv", "discretized_logistic", "learned")]
THREADS = 1


def _samples_per_second(call, batch: int, repeats: int) -> float:
    call()  # warm-up
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < 0.3:
            call()
            calls += 1
        rates.append(calls * batch / elapsed)
    return statistics.median(rates)


def _measure(folder: Path, design: str, likelihood: str, scale: str, x: np.ndarray, x_test, repeats: int) -> dict:
    import json

    import onnx
    import onnxruntime as ort
    import torch

    from vaekit.apps import images as runs
    from vaekit.apps.export import export
    from vaekit.apps.export.graphs import DecoderGraph, parameters

    runs.train(folder / "run", data=x, network=design, likelihood=likelihood, gaussian_scale=scale, epochs=1,
               progress=False)
    run = runs.load_run(folder / "run", device="cpu")
    started = time.perf_counter()
    onnx_manifest = json.loads(export(run, folder / "onnx").read_text())
    export_s = time.perf_counter() - started
    export(run, folder / "pt2", format="exported-program")
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    sessions = {name: ort.InferenceSession(str(folder / "onnx" / graph["file"]), options)
                for name, graph in onnx_manifest["graphs"].items()}
    programs = {name: torch.export.load(folder / "pt2" / f"{name}.pt2").module() for name in sessions}
    inputs = {"encoder": {"x": torch.as_tensor(x_test)},
              "decoder": {"z": torch.randn(len(x_test), run.vae.latent_dim, generator=torch.Generator().manual_seed(0))}}
    with torch.inference_mode():
        px = run.vae.decode(inputs["decoder"]["z"])
        expected = {"encoder": parameters(run.vae.encode(inputs["encoder"]["x"])),
                    "decoder": {"mean": run.vae.decode_mean(inputs["decoder"]["z"]), **parameters(px)}}
        errors = {"onnx": 0.0, "pt2": 0.0}
        for name, session in sessions.items():
            feeds = {key: value.numpy() for key, value in inputs[name].items()}
            for kind, outputs in (("onnx", session.run(None, feeds)), ("pt2", programs[name](**inputs[name]))):
                errors[kind] = max(errors[kind], *(float(np.abs(np.asarray(got) - want.numpy()).max())
                                                   for got, want in zip(outputs, expected[name].values())))
        eager = DecoderGraph(run.vae)
        row = {"design": design, "likelihood": likelihood if likelihood == "bernoulli" else f"{likelihood} ({scale})",
               "onnx_error": errors["onnx"], "pt2_error": errors["pt2"], "export_s": export_s,
               "decoder_nodes": len(onnx.load(folder / "onnx" / "decoder.onnx").graph.node)}
        for batch in (1, 256):
            z = torch.randn(batch, run.vae.latent_dim)
            feeds = {"z": z.numpy()}
            row[f"ort_{batch}"] = _samples_per_second(lambda: sessions["decoder"].run(None, feeds), batch, repeats)
            row[f"torch_{batch}"] = _samples_per_second(lambda: eager(z), batch, repeats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="MNIST training images for the one epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timings per cell; the median is reported")
    args = parser.parse_args()
    import torch

    from vaekit.data import load_dataset

    torch.set_num_threads(THREADS)
    data = load_dataset("mnist", data_dir=os.environ.get("VAEKIT_DATA"))
    x, x_test = data.x_train[: args.images], data.x_test[:64]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (design, likelihood, scale) in enumerate(CASES):
            rows.append(_measure(Path(tmp) / str(index), design, likelihood, scale, x, x_test, args.repeats))
            print(rows[-1], flush=True)
    columns = [("design", "design", ""), ("likelihood", "likelihood", ""),
               ("onnx_error", "max abs error, onnxruntime", ".1e"), ("pt2_error", "max abs error, .pt2", ".1e"),
               ("decoder_nodes", "decoder ONNX nodes", ""), ("export_s", "ONNX export s", ".1f"),
               ("ort_1", "onnxruntime b1 samples/s", ",.0f"), ("torch_1", "torch b1 samples/s", ",.0f"),
               ("ort_256", "onnxruntime b256 samples/s", ",.0f"), ("torch_256", "torch b256 samples/s", ",.0f")]
    print(markdown_table(rows, columns))
    print(write_results("export", {"images": args.images, "repeats": args.repeats, "threads": THREADS,
                                   "rows": rows}))


if __name__ == "__main__":
    main()
