"""The command line: one subcommand per API function in vaekit.runs. No logic lives only here.

Imports of torch and the rest happen inside the handlers so that `vaekit --help` is instant.
"""

from __future__ import annotations

import argparse
import sys

from .config import PRESETS, DataConfig, ModelConfig, TrainConfig, add_arguments, add_command
from .errors import VaekitError

EXAMPLES = {
    "train": "vaekit train --data mnist --network mlp --hidden 400 --latent-dim 20 --epochs 10 --out runs/mlp\n"
             "  vaekit train --preset burda-mlp --data mnist --iw-samples 5 --out runs/iwae\n"
             "  vaekit train --out runs/mlp --epochs 20 --resume   # continue a stopped run\n"
             "  vaekit train --condition label --out runs/cvae     # class-conditional: vaekit sample runs/cvae --label 3\n"
             "  vaekit train --condition noisy --corrupt gaussian:0.3 --out runs/dvae  # denoising: vaekit denoise "
             "runs/dvae noisy.png",
    "eval": "vaekit eval runs/mlp --k 1000",
    "sample": "vaekit sample runs/mlp -n 100 -o samples.png\n  vaekit sample runs/cvae --label 3 -n 16",
    "reconstruct": "vaekit reconstruct runs/mlp -o reconstructions.png",
    "interpolate": "vaekit interpolate runs/mlp --spherical -o paths.png",
    "embed": "vaekit embed runs/mlp -o latents.csv",
    "sweep": "vaekit sweep --latent-dims 2,8,16,32 --data fashion-mnist --epochs 5 --out runs/sweep",
    "report": "vaekit report runs/mlp   # writes runs/mlp/report.html",
    "demo": "vaekit demo --out runs/demo --epochs 3",
}


def _command(subparsers, name: str, help: str) -> argparse.ArgumentParser:
    return add_command(subparsers, name, help, EXAMPLES[name])


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="dataset name or path (default: the run's own data)")
    parser.add_argument("--data-dir", help="folder holding datasets (also $VAEKIT_DATA)")


def _train_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", default="runs/latest", help="run directory to write (default: runs/latest)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a reference design from the tutorials")
    parser.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard (needs tensorboard)")
    for cls, title in ((DataConfig, "data"), (ModelConfig, "model"), (TrainConfig, "training")):
        add_arguments(parser.add_argument_group(title), cls)


def _train_options(args: argparse.Namespace) -> dict:
    return {k.split(".", 1)[1]: v for k, v in vars(args).items() if "." in k}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaekit", description="Variational autoencoders: train, evaluate, "
                                     "sample, reconstruct, interpolate, embed.")
    parser.add_argument("--version", action="version", version=f"vaekit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "train", "train a VAE and write a run directory")
    _train_flags(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(handler=_train)

    p = _command(sub, "eval", "test -ELBO, reconstruction, KL, IWAE NLL, bits/dim, active units, k-NN accuracy")
    p.add_argument("run")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--k", type=int, default=1000, help="importance samples for the NLL (default: 1000)")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples (a quick look)")
    _data_flags(p)
    p.set_defaults(handler=_eval)

    p = _command(sub, "sample", "a PNG grid of samples decoded from the prior")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=100, help="number of samples (default: 100)")
    p.add_argument("-o", "--out", help="output .png or .npy (default: RUN/samples.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, help="class to draw from a --condition label run (default: a row per class)")
    p.set_defaults(handler=lambda a: _runs().sample(a.run, a.n, a.out, a.seed, a.label))

    p = _command(sub, "reconstruct", "test images above their reconstructions")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=16, help="number of test images (default: 16)")
    p.add_argument("-o", "--out", help="output .png (default: RUN/reconstructions.png)")
    _data_flags(p)
    p.set_defaults(handler=lambda a: _runs().reconstruct(a.run, a.n, a.out, a.data, a.data_dir))

    p = _command(sub, "interpolate", "straight-line or spherical paths in latent space between test images")
    p.add_argument("run")
    p.add_argument("-o", "--out", help="output .png (default: RUN/interpolation.png)")
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--spherical", action="store_true", help="spherical (slerp) instead of straight-line paths")
    _data_flags(p)
    p.set_defaults(handler=lambda a: _runs().interpolate(a.run, a.out, a.pairs, a.steps, a.spherical, a.data,
                                                         a.data_dir))

    p = _command(sub, "embed", "latent means to .npy/.csv and a 2-D latent map coloured by label")
    p.add_argument("run")
    p.add_argument("-o", "--out", help="output .npy or .csv (default: RUN/embeddings.npy)")
    p.add_argument("--split", default="test", choices=("test", "train"))
    _data_flags(p)
    p.set_defaults(handler=lambda a: _runs().embed(a.run, a.out, a.data, a.data_dir, a.split))

    p = _command(sub, "sweep", "one model per latent size, and the trade-off plotted")
    _train_flags(p)
    p.add_argument("--latent-dims", default="2,8,16,32", help="latent sizes to try (default: 2,8,16,32)")
    p.add_argument("--k", type=int, default=100, help="importance samples for each NLL (default: 100)")
    p.set_defaults(handler=_sweep, out="runs/sweep")

    p = _command(sub, "report", "write RUN/report.html with metrics, curves and pictures")
    p.add_argument("run")
    p.set_defaults(handler=lambda a: _runs().report(a.run))

    p = _command(sub, "demo", "train the default conv VAE on Fashion-MNIST and write its report")
    p.add_argument("--out", "-o", default="runs/demo")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--k", type=int, default=100, help="importance samples for the NLL (default: 100)")
    p.add_argument("--limit", type=int, default=2000, help="test images for the NLL (default: 2000)")
    _data_flags(p)
    p.set_defaults(handler=lambda a: _runs().demo(a.out, a.epochs, a.k, a.data or "fashion-mnist", a.data_dir,
                                                  a.limit))
    for app in _app_modules():
        app.add_commands(sub)
    return parser


def _app_modules():
    """Every module in vaekit.apps that defines add_commands(subparsers) adds its subcommands.
    App modules import torch inside their handlers, so this stays cheap."""
    import importlib
    import pkgutil

    from . import apps

    for info in sorted(pkgutil.iter_modules(apps.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{apps.__name__}.{info.name}")
        if hasattr(module, "add_commands"):
            yield module


def _version() -> str:
    from . import __version__

    return __version__


def _runs():
    from . import runs

    return runs


def _train(args: argparse.Namespace):
    run = _runs().train(args.out, preset=args.preset, resume=args.resume, tensorboard=args.tensorboard,
                        **_train_options(args))
    if run.history:
        last = run.history[-1]
        summary = f"epoch {last['epoch']}: loss {last['loss']:.2f}"
        if "val_neg_elbo" in last:
            summary += f", validation -ELBO {last['val_neg_elbo']:.2f} nats"
        print(summary)
    return run.path


def _eval(args: argparse.Namespace):
    result = _runs().evaluate(args.run, args.split, args.k, args.data, args.data_dir, limit=args.limit)
    for key, value in result.to_dict().items():
        print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return None


def _sweep(args: argparse.Namespace):
    sizes = [int(v) for v in args.latent_dims.split(",")]
    options = {k: v for k, v in _train_options(args).items() if k != "latent_dim"}
    rows = _runs().sweep(sizes, args.out, args.k, preset=args.preset, **options)
    print(f"{'latent':>6} {'-ELBO':>9} {'NLL':>9} {'recon':>9} {'KL':>8} {'active':>6}")
    for row in rows:
        print(f"{row['latent_dim']:>6} {row['neg_elbo']:>9.2f} {row['nll']:>9.2f} {-row['reconstruction']:>9.2f} "
              f"{row['kl']:>8.2f} {row['active_units']:>6}")
    return f"{args.out}/sweep.png"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        written = args.handler(args)
    except VaekitError as err:
        print(f"vaekit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaekit: interrupted; the last completed checkpoint is intact (resume with --resume)", file=sys.stderr)
        return 130
    from .distributed import is_main_process

    for path in written if isinstance(written, tuple) else (written,):
        if path is not None and is_main_process():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
