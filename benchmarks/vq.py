"""Issue 43's VQ figure: a VQ-VAE with a learned code prior beside a Gaussian VAE on Fashion-MNIST (conv design,
8-bit images under a discretized logistic likelihood): codebook usage and perplexity, reconstruction PSNR, bits/dim
(the code prior's NLL of the codes + the decoder's likelihood term, against the Gaussian VAE's IWAE bound) and the
classifier-feature Fréchet distance of samples (vaekit.sample_quality).

  python -m benchmarks.vq [--out runs/bench-vq] [--time-limit 8] [--prior-epochs 10] [--limit 2000] [--samples 1000]
  python -m benchmarks.vq --compression RUN [--limit 1000]   # only `vaekit compress` of a trained VQ run's images

`vaekit compress` of the VQ run's first --limit test images (uint8): the file's bits per image and bits/dim against
the code prior's -log2 p(codes) of the same images (the rate the ANS coder should reach, header aside).

Both models: conv 32-64, Adam 1e-3, batch 128, --time-limit minutes of training each. VQ: a latent of 64 values cut
into 16 codes of 4 values from 512 codes; its prior: `vaekit train-prior` defaults but --prior-epochs. The Gaussian
VAE: latent 20. Test figures on the first --limit test images (the Gaussian NLL with k = --k).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from benchmarks.common import markdown_table, write_results


def psnr(run, limit: int) -> float:
    """Peak signal-to-noise ratio (dB, peak 1) of the reconstructions E[x|z] of the first `limit` test images."""
    import torch

    from vaekit.apps import images

    x = images.run_splits(run).x_test[:limit]
    with torch.inference_mode():
        mse = torch.cat([(run.vae.reconstruct(x[i:i + 500]).cpu() - x[i:i + 500]).pow(2).flatten(1).mean(1)
                         for i in range(0, len(x), 500)]).mean()
    return float(10 * torch.log10(1 / mse))


def compression(run, limit: int) -> dict:
    """The size of `vaekit compress` of the run's first `limit` test images (uint8) against their codes' ideal
    length under the code prior, in bits per image, and the file's bits/dim."""
    import tempfile

    import numpy as np
    import torch

    from vaekit.apps import images
    from vaekit.apps.compression import compress
    from vaekit.compression.codes import code_bits

    x = np.round(images.run_splits(run).x_test[:limit].numpy() * 255).astype(np.uint8)
    with torch.inference_mode():
        codes = run.vae.encode(torch.from_numpy(x).float() / 255).codes.numpy()
    with tempfile.TemporaryDirectory() as folder:
        written = compress(run, x, Path(folder) / "test.vae", progress=False)
    return {"compressed_images": len(x), "compressed_bits_per_image": 8 * written.bytes / len(x),
            "compressed_bits_per_dim": written.bits_per_dim,
            "code_prior_bits_per_image": float(code_bits(run.vae.prior, codes).mean()),
            "uniform_bits_per_image": codes.shape[1] * math.log2(run.vae.posterior.codebook_size)}


COMPRESSION_COLUMNS = [("compressed_images", "images", ""), ("compressed_bits_per_image", "file bits/image", ".1f"),
                       ("code_prior_bits_per_image", "-log2 p(codes)/image", ".1f"),
                       ("uniform_bits_per_image", "uniform codes/image", ".1f"),
                       ("compressed_bits_per_dim", "file bits/dim", ".4f")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-vq", help="folder of the two runs (reused where trained)")
    parser.add_argument("--time-limit", type=float, default=8.0, help="training minutes per model")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prior-epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=2000, help="test images evaluated")
    parser.add_argument("--k", type=int, default=100, help="the Gaussian VAE's importance samples")
    parser.add_argument("--samples", type=int, default=1000, help="samples scored against as many test images")
    parser.add_argument("--compression", metavar="RUN", help="only measure `vaekit compress` on this trained VQ run "
                        "with a code prior (writes results/vq_compression.json)")
    args = parser.parse_args()

    from vaekit.apps import images
    from vaekit.checkpoint import CONFIG_FILE

    if args.compression:
        row = {"run": args.compression, **compression(images.load_run(args.compression, device="cpu"), args.limit)}
        path = write_results("vq_compression", {"limit": args.limit, "rows": [row]})
        print(markdown_table([row], COMPRESSION_COLUMNS))
        print(f"wrote {path}")
        return

    out = Path(args.out)
    common = dict(data="fashion-mnist", network="conv", conv_channels=(32, 64), likelihood="discretized_logistic",
                  epochs=args.epochs, time_limit=args.time_limit)
    designs = {"vq + code prior": dict(bottleneck="vq", latent_dim=64, code_dim=4, codebook_size=512),
               "gaussian": dict(latent_dim=20)}
    rows = []
    for name, options in designs.items():
        folder = out / name.split()[0]
        if not (folder / CONFIG_FILE).exists():
            images.train(folder, **common, **options)
        run = images.load_run(folder)
        row = {"model": name, "epochs": len(run.history),
               "train_seconds": sum(r["epoch_seconds"] for r in run.history)}
        if "bottleneck" in options:
            last = run.history[-1]
            row.update(codebook_usage=last["codebook_usage"], perplexity=last["perplexity"])
            fit = images.train_prior(run, epochs=args.prior_epochs)
            row.update(code_bits=fit.val_bits_per_code, uniform_code_bits=fit.uniform_bits_per_code,
                       prior_seconds=sum(r["seconds"] for r in fit.history))
        k = 1 if "bottleneck" in options else args.k  # q(z|x) of a quantizer is a point mass: one sample is exact
        result = images.evaluate(run, k=k, limit=args.limit, samples=args.samples, progress=False)
        values = math.prod(run.model.data_shape)
        row.update(bits_per_dim=result.bits_per_dim, k=k, kl_bits_per_dim=result.kl / values / math.log(2),
                   psnr=psnr(run, args.limit), frechet=result.sample_quality.frechet_distance,
                   precision=result.sample_quality.precision, recall=result.sample_quality.recall)
        if "bottleneck" in options:
            row.update(compression(run, args.limit))
        rows.append(row)
        print(row, flush=True)
    path = write_results("vq_fashion_conv", {"limit": args.limit, "samples": args.samples, "rows": rows})
    print(markdown_table(rows, [("model", "model", ""), ("epochs", "epochs", ""),
                                ("codebook_usage", "usage", ".1%"), ("perplexity", "perplexity", ".0f"),
                                ("psnr", "PSNR dB", ".2f"), ("bits_per_dim", "bits/dim", ".3f"),
                                ("kl_bits_per_dim", "of which code/KL", ".3f"), ("frechet", "Fréchet", ".2f"),
                                ("precision", "precision", ".3f"), ("recall", "recall", ".3f")]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
