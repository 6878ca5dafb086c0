"""Issue 43's VQ figure: a VQ-VAE with a learned code prior beside a Gaussian VAE on Fashion-MNIST (conv design,
8-bit images under a discretized logistic likelihood): codebook usage and perplexity, reconstruction PSNR, bits/dim
(the code prior's NLL of the codes + the decoder's likelihood term, against the Gaussian VAE's IWAE bound) and the
classifier-feature Fréchet distance of samples (vaekit.sample_quality).

  python -m benchmarks.vq [--out runs/bench-vq] [--time-limit 8] [--prior-epochs 10] [--limit 2000] [--samples 1000]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-vq", help="folder of the two runs (reused where trained)")
    parser.add_argument("--time-limit", type=float, default=8.0, help="training minutes per model")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prior-epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=2000, help="test images evaluated")
    parser.add_argument("--k", type=int, default=100, help="the Gaussian VAE's importance samples")
    parser.add_argument("--samples", type=int, default=1000, help="samples scored against as many test images")
    args = parser.parse_args()

    from vaekit.apps import images
    from vaekit.checkpoint import CONFIG_FILE

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
