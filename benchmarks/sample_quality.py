"""Issue 42's sampler figure: sample quality of a Fashion-MNIST conv VAE with latents from the prior, a Gaussian
mixture fitted to the training latents (gmm) and a second-stage VAE (two-stage), and each sampler's fit time.

  python -m benchmarks.sample_quality [--run DIR] [--epochs 10] [--time-limit 14] [--samples 10000] [--seeds 0,1,2]
      [--two-stage-epochs 30] [--refit]

Trains the conv design (conv 32-64, latent 20, Bernoulli, Adam 1e-3, batch 128) into --run unless it already holds
a trained run, fits both samplers (timed; a sampler already saved in the run is reused with the fit time it recorded,
unless --refit), and scores --samples samples per sampler and seed against as many test images in the features of the classifier vaekit fits on the training split (Fréchet distance, KID,
precision/recall; vaekit.apps.images.sample_quality).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.common import markdown_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/bench-sample-quality", help="run folder (trained here if empty)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=14.0, help="training budget in minutes")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the sample draws (one fit per sampler)")
    parser.add_argument("--two-stage-epochs", type=int, default=30, help="the second stage's training epochs")
    parser.add_argument("--refit", action="store_true", help="fit the samplers again even where the run has them")
    parser.add_argument("--tag", default="fashion_conv")
    args = parser.parse_args()

    import dataclasses

    from vaekit import samplers
    from vaekit.apps import images, sampling
    from vaekit.checkpoint import CONFIG_FILE

    run_dir = Path(args.run)
    if not (run_dir / CONFIG_FILE).exists():
        images.train(run_dir, data="fashion-mnist", network="conv", conv_channels=(32, 64), latent_dim=20,
                     epochs=args.epochs, time_limit=args.time_limit)
    samplers.TWO_STAGE = dataclasses.replace(samplers.TWO_STAGE, epochs=args.two_stage_epochs)
    run = images.load_run(run_dir)
    splits = images.run_splits(run)
    start = time.perf_counter()
    sampling.training_latents(run, splits)
    encode_seconds = time.perf_counter() - start
    fits = {name: images.fit_sampler(run, name, refit=args.refit) for name in ("gmm", "two-stage")}
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in sampling.SAMPLERS:
        scores = [sampling.sample_quality(run, splits, args.samples, name, seed=seed, picture=False) for seed in seeds]
        print(name, [round(score.frechet_distance, 3) for score in scores], flush=True)
        row = {"sampler": name, "fit_seconds": fits[name].seconds if name in fits else 0.0,
               "details": fits[name].details if name in fits else {}}
        for key in ("frechet_distance", "kid", "precision", "recall"):
            values = [getattr(score, key) for score in scores]
            row[key], row[f"{key}_spread"] = statistics.mean(values), (max(values) - min(values)) / 2
            row[f"{key}_per_seed"] = values
        row["classifier_accuracy"] = scores[0].classifier_accuracy
        rows.append(row)
    prior = rows[0]["frechet_distance"]
    for row in rows:
        row["frechet_vs_prior"] = row["frechet_distance"] / prior - 1
    history = run.history
    payload = {"run": str(run_dir), "epochs": len(history), "train_seconds": sum(r["epoch_seconds"] for r in history),
               "val_neg_elbo": history[-1].get("val_neg_elbo"), "samples": args.samples, "seeds": seeds,
               "encode_seconds": encode_seconds, "two_stage_epochs": args.two_stage_epochs, "features": scores[0].features, "rows": rows}
    path = write_results(f"sample_quality_{args.tag}", payload)
    print(markdown_table(rows, [("sampler", "sampler", ""), ("fit_seconds", "fit s", ".1f"),
                                ("frechet_distance", "Fréchet", ".3f"), ("frechet_distance_spread", "±", ".3f"),
                                ("frechet_vs_prior", "vs prior", "+.1%"), ("kid", "KID", ".4f"),
                                ("precision", "precision", ".3f"), ("recall", "recall", ".3f")]))
    print(f"{len(history)} epochs, {payload['train_seconds']:.0f} s of training; latents encoded in "
          f"{encode_seconds:.1f} s; classifier test accuracy {rows[0]['classifier_accuracy']:.3f}; wrote {path}")


if __name__ == "__main__":
    main()
