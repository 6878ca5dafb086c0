"""Load test of `vaekit serve` on 127.0.0.1 (issue 9): requests/s and p50/p99 latency of /decode and /score.

  python -m benchmarks.serve [--run RUN] [--concurrency 1,8] [--requests 1000] [--seconds 20]

Without --run, a model is trained first: the core MLP (784-400-20, Bernoulli) for one epoch on MNIST
from $VAEKIT_DATA, or on sklearn's 8x8 digits when $VAEKIT_DATA is unset. The server is the real CLI
(`python -m vaekit serve`, uvicorn, one worker, OMP_NUM_THREADS=1) in a subprocess; the client is
httpx's async client in this process, keeping `concurrency` requests in flight. Each cell sends at most
--requests requests or runs at most --seconds after 20 warm-up requests. Client and server share the
machine's cores, so the numbers are a floor for a dedicated server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, write_results

NAME = "bench"


def _train(out: Path) -> dict:
    import torch

    from vaekit.apps.images import train

    torch.set_num_threads(1)
    data = "mnist" if os.environ.get("VAEKIT_DATA") else "digits"
    options = dict(data_dir=os.environ["VAEKIT_DATA"]) if data == "mnist" else {}
    train(out, data=data, network="mlp", hidden=(400,), latent_dim=20, epochs=1, progress=False, **options)
    return {"data": data, "model": "mlp 400, latent 20, bernoulli, 1 epoch"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(run: Path, port: int) -> subprocess.Popen:
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    process = subprocess.Popen([sys.executable, "-m", "vaekit", "serve", f"{NAME}={run}", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit("vaekit serve exited early")
        try:
            httpx.get(f"http://127.0.0.1:{port}/models", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("vaekit serve did not start within 60 s")


async def _load(url: str, body: dict, concurrency: int, requests: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        for _ in range(20):  # warm-up
            (await client.post(body["path"], json=body["json"])).raise_for_status()
        deadline = time.perf_counter() + seconds
        sent = 0

        async def worker():
            nonlocal sent, errors
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                start = time.perf_counter()
                response = await client.post(body["path"], json=body["json"])
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "requests_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


def _bodies(image_b64: str, latent_dim: int) -> list[dict]:
    z1 = [[0.1] * latent_dim]
    return [
        {"endpoint": "/decode", "case": "1 z -> PNG", "path": "/decode", "json": {"model": NAME, "z": z1}},
        {"endpoint": "/decode", "case": "64 z -> PNG", "path": "/decode", "json": {"model": NAME, "z": z1 * 64}},
        {"endpoint": "/score", "case": "1 PNG, -ELBO k=1", "path": "/score",
         "json": {"model": NAME, "images": [image_b64], "method": "elbo", "k": 1}},
        {"endpoint": "/score", "case": "1 PNG, IWAE k=100", "path": "/score",
         "json": {"model": NAME, "images": [image_b64], "method": "iwae", "k": 100}},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="serve this run directory instead of training one")
    parser.add_argument("--concurrency", default="1,8", help="clients in flight, comma separated (default: 1,8)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per cell at most (default: 1000)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per cell at most (default: 20)")
    args = parser.parse_args()
    import fastapi
    import httpx
    import uvicorn

    from vaekit.apps.images import load_run
    from vaekit.data.splits import load_splits
    from vaekit.apps.serve import tensor_to_png

    workdir = tempfile.TemporaryDirectory(prefix="bench-serve-")
    run_dir = Path(args.run) if args.run else Path(workdir.name) / "run"
    trained = {} if args.run else _train(run_dir)
    run = load_run(run_dir, device="cpu")
    image = tensor_to_png(load_splits(run.data, run.train.seed).x_test[0])
    port = _free_port()
    server = _start(run_dir, port)
    rows = []
    try:
        for body in _bodies(image, run.vae.latent_dim):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                result = asyncio.run(_load(f"http://127.0.0.1:{port}", body, concurrency, args.requests,
                                           args.seconds))
                rows.append({"endpoint": body["endpoint"], "case": body["case"], "concurrency": concurrency,
                             **result})
                print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait(10)
    columns = [("endpoint", "endpoint", ""), ("case", "request", ""), ("concurrency", "clients", "d"),
               ("requests", "requests", "d"), ("errors", "errors", "d"), ("requests_per_s", "req/s", ".0f"),
               ("p50_ms", "p50 ms", ".1f"), ("p99_ms", "p99 ms", ".1f")]
    print(markdown_table(rows, columns))
    path = write_results("serve", {
        "server": "python -m vaekit serve (uvicorn, 1 process, OMP_NUM_THREADS=1), 127.0.0.1",
        "client": f"httpx.AsyncClient {httpx.__version__}, same machine",
        "versions": {"fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__},
        "model": {"data_shape": list(run.model.data_shape), **trained},
        "load_average": os.getloadavg(), "limits": {"requests": args.requests, "seconds": args.seconds},
        "rows": rows})
    print(f"wrote {path}")
    workdir.cleanup()


if __name__ == "__main__":
    main()
