"""Core figures of issue 2.

  python -m benchmarks.core fashion --design mlp|conv [--epochs 10,50] [--k 1000] [--nll-limit N]
      Fashion-MNIST (60k train / 10k test, pixels in [0, 1], Bernoulli), Adam 1e-3, batch 128: samples/s,
      seconds per epoch, peak memory, and after each listed epoch count the test -ELBO and IWAE NLL (nats).
      The run is trained to the first count, evaluated, resumed (exactly) to the next, and so on.
  python -m benchmarks.core burda --objective elbo|iwae5 --minutes 55 [--epochs N --lr-schedule cosine]
      Dynamically binarized MNIST, the MLP of Burda et al. (784-200-200-50, tanh), trained for at most the
      given minutes (and N epochs, over which a learning-rate schedule falls), then test NLL with k = 5000.
      [--lr 2e-3] sets the peak rate; [--validate --k 100 --tag T] trains on 50,000 images and scores the
      other 10,000 instead of the test set, for choosing settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time

import torch

from benchmarks.common import markdown_table, peak_rss_mb, write_results

DESIGNS = {"mlp": dict(network="mlp", hidden=(400,), latent_dim=20),
           "conv": dict(network="conv", conv_channels=(32, 64), latent_dim=20)}


def _timing(history: list[dict]) -> dict:
    steady = [row["samples_per_s"] for row in history[1:]] or [history[0]["samples_per_s"]]
    seconds = [row["epoch_seconds"] for row in history]
    return {"samples_per_s": sorted(steady)[len(steady) // 2], "seconds_per_epoch": sorted(seconds)[len(seconds) // 2],
            "train_seconds": sum(seconds)}


def fashion(args) -> None:
    import vaekit

    out = tempfile.mkdtemp(prefix=f"bench-{args.design}-")
    rows = []
    try:
        for index, epochs in enumerate(args.epochs):
            options = {} if index else dict(val_fraction=0.0, batch_size=128, lr=1e-3, likelihood="bernoulli", seed=0,
                                            **DESIGNS[args.design])
            run = vaekit.train(out, data="fashion-mnist", epochs=epochs, resume=index > 0, progress=False, **options)
            started = time.perf_counter()
            result = vaekit.evaluate(run, k=args.k, progress=False, limit=args.nll_limit)
            rows.append({"design": args.design, "epochs": epochs, **_timing(run.history),
                         "test_neg_elbo": result.neg_elbo, "test_nll": result.nll, "k": args.k,
                         "nll_examples": result.n_examples, "eval_seconds": time.perf_counter() - started,
                         "peak_rss_mb": peak_rss_mb()})
            print(json.dumps(rows[-1]), flush=True)
            write_results(f"core_fashion_{args.design}", {"rows": rows})  # after each row: a stopped run keeps its rows
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(markdown_table(rows, [("design", "design", ""), ("epochs", "epochs", ""),
                                ("samples_per_s", "samples/s", ",.0f"), ("seconds_per_epoch", "s/epoch", ".1f"),
                                ("test_neg_elbo", "test -ELBO", ".2f"), ("test_nll", "test NLL", ".2f"),
                                ("nll_examples", "NLL on", ""), ("peak_rss_mb", "peak RSS MB", ",.0f")]))


def burda(args) -> None:
    import vaekit

    out = args.out or tempfile.mkdtemp(prefix=f"bench-burda-{args.objective}-")
    iw = 5 if args.objective == "iwae5" else 1
    run = vaekit.train(out, data="mnist", preset="burda-mlp", iw_samples=iw, epochs=args.epochs,
                       val_fraction=1 / 6 if args.validate else 0.0,
                       time_limit=args.minutes, batch_size=args.batch_size, lr=args.lr, progress=False, seed=args.seed,
                       lr_schedule=args.lr_schedule, lr_end_factor=args.lr_end_factor, precision=args.precision,
                       compile=args.compile, kl_warmup=args.kl_warmup, ema=args.ema, lr_warmup=args.lr_warmup)
    started = time.perf_counter()
    split = "val" if args.validate else "test"
    result = vaekit.evaluate(run, split=split, k=args.k, progress=False)
    averaging = {}
    if args.ema:  # the same run's last trained weights, unaveraged: what the average bought, paired
        raw = _trained_weights(run)
        unaveraged = vaekit.evaluate(dataclasses.replace(run, vae=raw, path=None), split=split, k=args.k,
                                     progress=False)
        averaging = {f"{split}_neg_elbo_unaveraged": unaveraged.neg_elbo,
                     f"{split}_nll_k{args.k}_unaveraged": unaveraged.nll}
    row = {"objective": args.objective, "split": split, "epochs": len(run.history), **_timing(run.history),
           f"{split}_neg_elbo": result.neg_elbo, f"{split}_nll_k{args.k}": result.nll,
           "active_units": result.active_units,
           "eval_seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(),
           "threads": torch.get_num_threads(), "batch_size": args.batch_size, "lr": args.lr,
           "lr_schedule": args.lr_schedule, "lr_end_factor": args.lr_end_factor, "planned_epochs": args.epochs,
           "precision": args.precision, "compile": args.compile, "kl_warmup": args.kl_warmup, "ema": args.ema,
           "seed": args.seed, "lr_warmup": args.lr_warmup,
           **averaging}
    print(markdown_table([row], [("objective", "objective", ""), ("epochs", "epochs", ""),
                                 ("train_seconds", "train s", ",.0f"), (f"{split}_neg_elbo", f"{split} -ELBO", ".2f"),
                                 (f"{split}_nll_k{args.k}", f"{split} NLL (k={args.k})", ".2f"),
                                 ("active_units", "active", "")]))
    suffix = ("" if args.lr_schedule == "constant" else f"_{args.lr_schedule}") + (f"_{args.tag}" if args.tag else "")
    suffix += ("_bf16" if args.precision == "bf16" else "") + ("_compile" if args.compile else "")
    write_results(f"core_burda_{args.objective}{suffix}", {"row": row, "history": run.history})


def _trained_weights(run):
    """A copy of the run's model holding the checkpoint's last trained (not averaged) weights."""
    import copy

    from vaekit.checkpoint import STATE_DIR, load_tensors

    raw = copy.deepcopy(run.vae)
    state = load_tensors(run.path / STATE_DIR / "state.safetensors")
    raw.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    return raw.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("fashion")
    p.add_argument("--design", choices=sorted(DESIGNS), required=True)
    p.add_argument("--epochs", type=lambda s: [int(v) for v in s.split(",")], default=[10, 50])
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--nll-limit", type=int, default=None, help="IWAE NLL on the first N test images only")
    p.set_defaults(handler=fashion)
    p = sub.add_parser("burda")
    p.add_argument("--objective", choices=("elbo", "iwae5"), required=True)
    p.add_argument("--minutes", type=float, default=55)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=100_000, help="epochs (default: as many as --minutes allow)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine", "exponential"), default="constant")
    p.add_argument("--lr-end-factor", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="training precision (evaluation: fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training loss")
    p.add_argument("--kl-warmup", type=float, default=0, help="epochs of linear KL warm-up (Burda et al.: none)")
    p.add_argument("--lr-warmup", type=float, default=0, help="epochs of linear learning-rate warm-up")
    p.add_argument("--seed", type=int, default=0, help="initialization, noise and shuffling (another draw of one setting)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="Polyak averaging decay (0: none); the unaveraged weights are scored too, for comparison")
    p.add_argument("--k", type=int, default=5000, help="importance samples for the NLL (test, or validation with --validate)")
    p.add_argument("--tag", default="", help="suffix for the results file (probes)")
    p.add_argument("--validate", action="store_true",
                   help="train on 50,000 images and score the other 10,000 (choosing settings without the test set)")
    p.add_argument("--out", default=None)
    p.set_defaults(handler=burda)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.handler(args)


if __name__ == "__main__":
    main()
