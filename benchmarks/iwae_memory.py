"""Peak memory and time of the importance-weighted NLL for the conv and MLP designs (issue 2/3).

  python -m benchmarks.iwae_memory [--k 1000] [--images 100]

Untrained networks: memory and time depend on the shapes only, not on the weights. Laid out as a
loaded run is (channels_last convolutions on a CPU).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from benchmarks.common import markdown_table, write_results


def measure(design: str, k: int, images: int) -> dict:
    import torch

    from vaekit.accel import accelerate
    from vaekit.config import ModelConfig
    from vaekit.evaluation import importance_weighted_nll
    from vaekit.vae import build_vae

    torch.manual_seed(0)
    vae = accelerate(build_vae(ModelConfig(network=design, data_shape=(1, 28, 28))), "cpu").eval()
    x = torch.rand(images, 1, 28, 28)
    started = time.perf_counter()
    importance_weighted_nll(vae, x, k=k)
    seconds = time.perf_counter() - started
    return {"design": design, "k": k, "images": images, "seconds": seconds,
            "decoder_passes_per_s": k * images / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--design", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.design:
        import json

        print(json.dumps(measure(args.design, args.k, args.images)))
        return
    import json

    rows = []
    for design in ("mlp", "conv"):  # one process each, so each peak is its own
        out = subprocess.run([sys.executable, "-m", "benchmarks.iwae_memory", "--design", design, "--k", str(args.k),
                              "--images", str(args.images)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(markdown_table(rows, [("design", "design", ""), ("k", "k", ""), ("images", "images", ""),
                                ("seconds", "s", ".1f"), ("decoder_passes_per_s", "decoder passes/s", ",.0f"),
                                ("peak_rss_mb", "peak RSS MB", ",.0f")]))
    write_results("iwae_memory", {"rows": rows})


if __name__ == "__main__":
    main()
