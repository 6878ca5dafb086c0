"""Model variants of issue 42 on dynamically binarized MNIST, the MLP of Burda et al. (784-200-200-50 tanh).

  python -m benchmarks.variants train --variant standard|vamp|iaf|iaf_shared|hvae_vamp|... --minutes M|--epochs E [--k 5000]
                                     [--limit N] [--kl-warmup EPOCHS] [--prior-warmup EPOCHS] [--seed S] [--iw-samples K]
                                     [--threads T] [--recipe hour|plain] [--flow-steps N] [--out DIR]
      Trains one variant for M minutes on T threads, then the test -ELBO and the IWAE NLL with k samples on the
      first N test images (default: all 10,000); writes results/variants_<variant><suffix>.json.
      --recipe hour (default) is the core benchmark's hour on this MLP (issue 2's 86.56 nats for N(0, I)): batch
      512, cosine rate 3e-3 -> 3e-5 over the budget after 5 epochs of warm-up, bf16 + torch.compile, weights
      averaged with decay 0.999. --recipe plain is batch 128, cosine 2e-3 -> 2e-5, fp32, eager.
  python -m benchmarks.variants evaluate --variant V --run DIR [--k 1000] [--limit N]
      The same evaluation of a run folder that `train` left behind when stopped during its evaluation.
  python -m benchmarks.variants steps [--steps 30] [--batch-size 512] [--iw-samples K] [--precision fp32|bf16]
                                     [--variants standard,vamp,...] [--suffix S]
      Seconds per training step (forward + backward + Adam) of each variant and its ratio to the first's (the
      standard VAE's by default), same data and network, one thread; writes results/variants_steps<suffix>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

import torch

from benchmarks.common import markdown_table, write_results

# Each variant's options beside --preset burda-mlp (latent 50 per stochastic layer).
VARIANTS = {
    "standard": {},
    "vamp": dict(prior="vamp", prior_components=500),
    "iaf": dict(posterior="iaf", flow_steps=2),
    "iaf_shared": dict(posterior="iaf", flow_steps=2, flow_context=False),  # one flow for every x (before 5b7acf6)
    "hvae_vamp": dict(prior="vamp", prior_components=500, stochastic_layers=2),
    "mog": dict(prior="mog", prior_components=500),
    "planar": dict(posterior="planar", flow_steps=2),
}
RECIPES = {
    "hour": dict(batch_size=512, lr=3e-3, lr_schedule="cosine", lr_warmup=5, precision="bf16", compile=True,
                 ema=0.999),
    "plain": dict(batch_size=128, lr=2e-3, lr_schedule="cosine"),
}


def _evaluated(args, run, epochs: int, minutes: float) -> None:
    import vaekit

    started = time.perf_counter()
    result = vaekit.evaluate(run, k=args.k, progress=False, limit=args.limit)
    model = {key: getattr(run.model, key) for key in VARIANTS[args.variant]}  # as run (--flow-steps may differ)
    if run.model.posterior == "iaf":
        model["flow_context"] = run.model.flow_context
    row = {"variant": args.variant, **model, "minutes": minutes, "seed": run.train.seed,
           "kl_warmup": run.train.kl_warmup, "prior_warmup": run.train.prior_warmup,
           "iw_samples": run.train.iw_samples, "grad_clip": run.train.grad_clip, "threads": torch.get_num_threads(),
           "recipe": getattr(args, "recipe", None), "batch_size": run.train.batch_size, "lr": run.train.lr,
           "precision": run.train.precision, "compile": run.train.compile, "ema": run.train.ema,
           "epochs": epochs, "test_neg_elbo": result.neg_elbo, "test_nll": result.nll, "k": args.k,
           "nll_examples": result.n_examples, "active_units": result.active_units,
           "eval_seconds": time.perf_counter() - started}
    print(json.dumps(row), flush=True)
    write_results(f"variants_{args.variant}{args.suffix}", {"rows": [row]})


def train_options(args) -> dict:
    """vaekit.train's keyword arguments for a `train` command: the recipe, the variant, then the overrides."""
    budget = dict(epochs=100_000, time_limit=args.minutes) if args.epochs is None else dict(epochs=args.epochs)
    overrides = {"precision": args.precision, "flow_steps": args.flow_steps}
    return dict(data="mnist", preset="burda-mlp", progress=False, seed=args.seed, val_fraction=0.0,
                kl_warmup=args.kl_warmup, prior_warmup=args.prior_warmup, iw_samples=args.iw_samples,
                grad_clip=args.grad_clip, **budget,
                **{**RECIPES[args.recipe], **VARIANTS[args.variant],
                   **{key: value for key, value in overrides.items() if value is not None}})


def train(args) -> None:
    import vaekit

    out = args.out or tempfile.mkdtemp(prefix=f"bench-variant-{args.variant}-")
    try:
        run = vaekit.train(out, **train_options(args))
        _evaluated(args, run, len(run.history), args.minutes if args.epochs is None else None)
    finally:
        if not args.out:  # a folder the caller named is kept (evaluate it again with `evaluate --run`)
            shutil.rmtree(out, ignore_errors=True)


def evaluate(args) -> None:
    import vaekit

    run = vaekit.load(args.run, device="cpu")
    with open(f"{args.run}/metrics.jsonl") as lines:
        epochs = sum(1 for _ in lines)
    _evaluated(args, run, epochs, run.train.time_limit)


def steps(args) -> None:
    from vaekit.config import ModelConfig, PRESETS
    from vaekit.vae import build_vae

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.rand(args.batch_size, 1, 28, 28).bernoulli()
    rows = []
    for name in args.variants.split(","):
        options = VARIANTS[name]
        vae = build_vae(ModelConfig(**PRESETS["burda-mlp"]["model"], data_shape=(1, 28, 28), **options))
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
        times = []
        for step in range(args.steps + 3):
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                loss = vae.loss(x, iw_samples=args.iw_samples).loss
            loss.backward()
            optimizer.step()
            if step >= 3:  # the first steps warm allocators and caches
                times.append(time.perf_counter() - started)
        rows.append({"variant": name, **options, "seconds_per_step": sorted(times)[len(times) // 2]})
    for row in rows:
        row["relative"] = row["seconds_per_step"] / rows[0]["seconds_per_step"]
    write_results(f"variants_steps{args.suffix}", {"rows": rows, "steps": args.steps, "batch_size": args.batch_size,
                                                  "iw_samples": args.iw_samples, "precision": args.precision,
                                                  "threads": 1})
    print(markdown_table(rows, [("variant", "variant", ""), ("seconds_per_step", "s/step", ".4f"),
                                ("relative", "x " + rows[0]["variant"], ".2f")]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train")
    p.add_argument("--variant", choices=VARIANTS, required=True)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--epochs", type=int, help="an epoch budget instead of --minutes (the cosine rate over the epochs)")
    p.add_argument("--recipe", choices=RECIPES, default="hour", help="optimizer, precision and batch (see above)")
    p.add_argument("--iw-samples", type=int, default=1, help="train on the importance-weighted bound with K samples")
    p.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient's norm (0: no clipping)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="override the recipe's precision")
    p.add_argument("--threads", type=int, default=1, help="torch threads (two runs side by side: 1 each)")
    p.add_argument("--out", default=None, help="keep the run in this folder (default: a temporary one, removed)")
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--limit", type=int, default=None, help="IWAE NLL on the first N test images (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kl-warmup", type=float, default=0.0, help="epochs of KL warm-up (against posterior collapse)")
    p.add_argument("--prior-warmup", type=float, default=0.0, help="epochs with the KL against N(0, I) first")
    p.add_argument("--suffix", default="", help="appended to the results file's name")
    p.add_argument("--flow-steps", type=int, default=None, help="override a flow variant's 2 steps")
    p.set_defaults(run_command=train)
    p = commands.add_parser("evaluate")
    p.add_argument("--variant", choices=VARIANTS, required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--limit", type=int, default=None, help="IWAE NLL on the first N test images (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--suffix", default="", help="appended to the results file's name")
    p.set_defaults(run_command=evaluate)
    p = commands.add_parser("steps")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--iw-samples", type=int, default=1, help="steps on the importance-weighted bound with K samples")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: the step under CPU autocast")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; the first is the ratios' base")
    p.add_argument("--suffix", default="", help="appended to the results file's name")
    p.set_defaults(run_command=steps)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if getattr(args, "flow_steps", None) is not None and "flow_steps" not in VARIANTS[args.variant]:
        parser.error(f"--flow-steps sets a flow's steps: variant '{args.variant}' has no flow "
                     f"(use {', '.join(name for name, options in VARIANTS.items() if 'flow_steps' in options)})")
    if hasattr(args, "threads"):
        torch.set_num_threads(args.threads)
    args.run_command(args)


if __name__ == "__main__":
    main()
