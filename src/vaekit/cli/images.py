"""`vaekit train|eval|sample|reconstruct|interpolate|embed|classify|sweep|report|demo`: the flags of the image
workflow, each subcommand one call of vaekit.apps.images."""

from __future__ import annotations

import argparse

from ..apps import code_prior, images, sampling
from ..config import PRESETS, DataConfig, ModelConfig, TrainConfig, add_arguments, options_from, parse_ints
from ..config_files import FORMATS
from .flags import add_overwrite, add_parameter, command_maker

EXAMPLES = {
    "train": "vaekit train --data mnist --network mlp --hidden 400 --latent-dim 20 --epochs 10 --out runs/mlp\n"
             "  vaekit train --preset burda-mlp --data mnist --iw-samples 5 --out runs/iwae\n"
             "  vaekit train --out runs/mlp --epochs 20 --resume   # continue a stopped run\n"
             "  vaekit train --condition label --out runs/cvae     # class-conditional: vaekit sample runs/cvae --label 3\n"
             "  vaekit train --condition noisy --corrupt gaussian:0.3 --out runs/dvae  # denoising: vaekit denoise "
             "runs/dvae noisy.png\n"
             "  vaekit train --config runs/mlp/config.json --out runs/again   # rerun a run's exact configuration",
    "eval": "vaekit eval runs/mlp --k 1000\n  vaekit eval runs/conv --samples 10000 --from gmm   # + Fréchet distance, KID, "
            "precision/recall of samples\n"
            "  vaekit eval runs/shapes --k 100 --disentanglement   # MIG, SAP, DCI, FactorVAE on --data shapes",
    "sample": "vaekit sample runs/mlp -n 100 -o samples.png\n  vaekit sample runs/cvae --label 3 -n 16\n"
              "  vaekit sample runs/conv --from gmm   # latents from a mixture fitted to the training latents",
    "train-prior": "vaekit train --bottleneck vq --network conv --latent-dim 64 --out runs/vq\n"
                   "  vaekit train-prior runs/vq --epochs 30   # then: vaekit sample runs/vq; vaekit eval runs/vq",
    "reconstruct": "vaekit reconstruct runs/mlp -o reconstructions.png",
    "interpolate": "vaekit interpolate runs/mlp --spherical -o paths.png",
    "embed": "vaekit embed runs/mlp -o latents.csv",
    "classify": "vaekit train --data mnist --semi-supervised --labelled 100 --out runs/m2 && vaekit classify runs/m2\n"
                "  vaekit classify runs/m2 --data digits.npz -o labels.csv   # labels for other data of the same shape",
    "sweep": "vaekit sweep --latent-dims 2,8,16,32 --data fashion-mnist --epochs 5 --out runs/sweep",
    "report": "vaekit report runs/mlp   # writes runs/mlp/report.html",
    "config": "vaekit config runs/mlp --format yaml > mlp.yaml   # edit, then: vaekit train --config mlp.yaml "
              "--out runs/mlp2",
    "demo": "vaekit demo --out runs/demo --epochs 3",
}
CONFIGS = (DataConfig, ModelConfig, TrainConfig)


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """--data and --data-dir: another dataset for a command that reads a run's data."""
    parser.add_argument("--data", help="dataset name or path (default: the run's own data)")
    parser.add_argument("--data-dir", help="folder holding datasets (also $VAEKIT_DATA)")


def add_sampler_flag(parser: argparse.ArgumentParser, function) -> None:
    """--from: where the latents of samples come from."""
    add_parameter(parser, function, "sampler", "--from", choices=sampling.SAMPLERS,
                  help="latents from the prior, or from a density of the training latents fitted once and saved in "
                       "RUN/samplers/: gmm (a Gaussian mixture, K by held-out BIC; needs scikit-learn) or two-stage "
                       "(a second VAE on the latents, Dai & Wipf 2019)")


def _train_flags(parser: argparse.ArgumentParser, function) -> None:
    add_parameter(parser, function, "out", "--out", "-o", help="run directory to write")
    add_overwrite(parser, function)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a reference design from the tutorials")
    parser.add_argument("--config", metavar="FILE", help="a JSON or YAML file of options (`vaekit config RUN` writes "
                        "one; a run's config.json is one), over --preset; flags given here win over it")
    parser.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard (needs tensorboard); "
                        "the same as --log-to tensorboard")
    parser.add_argument("--log-to", action="append", choices=tuple(images.TRACKERS), default=[], metavar="TRACKER",
                        help="send configs, per-epoch metrics, curves and later eval figures and pictures to "
                        "tensorboard or mlflow (MLFLOW_TRACKING_URI, else ./mlruns); may be repeated")
    for cls, title in zip(CONFIGS, ("data", "model", "training")):
        add_arguments(parser.add_argument_group(title), cls)


def add_commands(subparsers) -> None:
    # Long: a flat list of commands and their flags, easier to read in order than split.
    command = command_maker(subparsers, EXAMPLES)
    p = command("train", "train a VAE and write a run directory")
    _train_flags(p, images.train)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(handler=_train)

    p = command("eval", "test -ELBO, reconstruction, KL, IWAE NLL, bits/dim, active units, k-NN accuracy")
    p.add_argument("run")
    add_parameter(p, images.evaluate, "split", choices=("test", "val", "train"), help="the split to evaluate")
    add_parameter(p, images.evaluate, "k", help="importance samples for the NLL")
    add_parameter(p, images.evaluate, "limit", type=int, help="evaluate only the first N examples (a quick look)")
    add_parameter(p, images.evaluate, "samples", help="also score N samples against N test images in the features "
                  "of a classifier fitted to the dataset (cached): Fréchet distance, KID, precision/recall; 0 skips")
    add_sampler_flag(p, images.evaluate)
    add_parameter(p, images.evaluate, "inception_weights", metavar="PATH",
                  help="also the real Inception FID, with Inception-v3 weights from this local file (needs "
                       "torch-fidelity; nothing is downloaded)")
    add_parameter(p, images.evaluate, "disentanglement",
                  help="also score the latent means' disentanglement (MIG, SAP, DCI, FactorVAE) against the known "
                       "factors of the test split (--data shapes), and MIG from the whole posterior (Chen et al.'s "
                       "estimator, mig_posterior) where q(z|x) is a diagonal Gaussian")
    add_data_flags(p)
    p.set_defaults(handler=_eval)

    p = command("sample", "a PNG grid of samples decoded from the prior")
    p.add_argument("run")
    add_parameter(p, images.sample, "n", "-n", help="number of samples")
    add_parameter(p, images.sample, "out", "-o", "--out", help="output .png or .npy (default: RUN/samples.png)")
    add_parameter(p, images.sample, "seed", help="seed of the draws")
    add_parameter(p, images.sample, "label", type=int,
                  help="class to draw from a --condition label run (default: a row per class)")
    add_sampler_flag(p, images.sample)
    p.set_defaults(handler=lambda a: images.sample(a.run, a.n, a.out, a.seed, a.label, a.sampler))

    p = command("train-prior", "fit a learned prior over a vq or fsq run's codes, for sample and eval")
    p.add_argument("run")
    add_arguments(p.add_argument_group("code prior"), code_prior.CodePriorConfig)
    add_arguments(p.add_argument_group("training"), TrainConfig, base=code_prior.CODE_PRIOR_TRAIN,
                  only=code_prior.TRAIN_FLAGS)
    p.set_defaults(handler=_train_prior)

    p = command("reconstruct", "test images above their reconstructions")
    p.add_argument("run")
    add_parameter(p, images.reconstruct, "n", "-n", help="number of test images")
    add_parameter(p, images.reconstruct, "out", "-o", "--out", help="output .png (default: RUN/reconstructions.png)")
    add_data_flags(p)
    p.set_defaults(handler=lambda a: images.reconstruct(a.run, a.n, a.out, a.data, a.data_dir))

    p = command("interpolate", "straight-line or spherical paths in latent space between test images")
    p.add_argument("run")
    add_parameter(p, images.interpolate, "out", "-o", "--out", help="output .png (default: RUN/interpolation.png)")
    add_parameter(p, images.interpolate, "pairs", help="pairs of test images, one row each")
    add_parameter(p, images.interpolate, "steps", help="images per path, both ends included")
    add_parameter(p, images.interpolate, "spherical", help="spherical (slerp) instead of straight-line paths")
    add_data_flags(p)
    p.set_defaults(handler=lambda a: images.interpolate(a.run, a.out, a.pairs, a.steps, a.spherical, a.data,
                                                        a.data_dir))

    p = command("embed", "latent means to .npy/.csv and a 2-D latent map coloured by label")
    p.add_argument("run")
    add_parameter(p, images.embed, "out", "-o", "--out", help="output .npy or .csv (default: RUN/embeddings.npy)")
    add_parameter(p, images.embed, "split", choices=("test", "train"), help="the split to embed")
    add_data_flags(p)
    p.set_defaults(handler=lambda a: images.embed(a.run, a.out, a.data, a.data_dir, a.split))

    p = command("classify", "labels from a --semi-supervised run's classifier q(y|x), and their accuracy")
    p.add_argument("run")
    add_parameter(p, images.classify, "split", choices=("test", "train"), help="the split to label")
    add_parameter(p, images.classify, "out", "-o", "--out",
                  help="output .csv of row, predicted, probability[, label] (default: RUN/predictions_SPLIT.csv)")
    add_data_flags(p)
    p.set_defaults(handler=_classify)

    p = command("sweep", "one model per latent size, and the trade-off plotted")
    _train_flags(p, images.sweep)
    add_parameter(p, images.sweep, "latent_dims", type=parse_ints, metavar="N[,N...]",
                  help="latent sizes to try")
    add_parameter(p, images.sweep, "k", help="importance samples for each NLL")
    p.set_defaults(handler=_sweep)

    p = command("report", "write RUN/report.html with metrics, curves and pictures")
    p.add_argument("run")
    p.set_defaults(handler=lambda a: images.report(a.run))

    p = command("config", "print a run's configuration as a config file to edit and give to train --config")
    p.add_argument("run")
    add_parameter(p, images.config_text, "format", choices=FORMATS, help="the file's format")
    p.set_defaults(handler=lambda a: print(images.config_text(a.run, a.format), end=""))

    p = command("demo", "train the default conv VAE on Fashion-MNIST and write its report")
    add_parameter(p, images.demo, "out", "--out", "-o", help="run directory to write")
    add_parameter(p, images.demo, "epochs", help="training epochs")
    add_parameter(p, images.demo, "k", help="importance samples for the NLL")
    add_parameter(p, images.demo, "limit", help="test images for the NLL")
    add_parameter(p, images.demo, "data", help="dataset name or path")
    add_parameter(p, images.demo, "data_dir", help="folder holding datasets (also $VAEKIT_DATA)")
    add_overwrite(p, images.demo)
    p.set_defaults(handler=lambda a: images.demo(a.out, a.epochs, a.k, a.data, a.data_dir, a.limit, a.overwrite))


def _train(args: argparse.Namespace):
    run = images.train(args.out, preset=args.preset, resume=args.resume, overwrite=args.overwrite,
                       tensorboard=args.tensorboard, log_to=args.log_to, config=args.config, **options_from(args, *CONFIGS))
    if run.history:
        last = run.history[-1]
        summary = f"epoch {last['epoch']}: loss {last['loss']:.2f}"
        if "val_neg_elbo" in last:
            summary += f", validation -ELBO {last['val_neg_elbo']:.2f} nats"
        if "val_active_units" in last:
            summary += f", KL {last['val_kl']:.2f} nats, {last['val_active_units']} of {run.model.latent_dim} latent " \
                       "units active"
        print(summary)
    return run.path


def _eval(args: argparse.Namespace):
    result = images.evaluate(args.run, args.split, args.k, args.data, args.data_dir, limit=args.limit,
                             samples=args.samples, sampler=args.sampler, inception_weights=args.inception_weights,
                             disentanglement=args.disentanglement)
    values = result.to_dict()
    # The nested scores are popped before the rest is read, so that each prints as rows, not as one raw dict.
    quality, disentanglement = values.pop("sample_quality", None), values.pop("disentanglement", None)
    scores = {**values, **(quality or {}), **(disentanglement or {})}
    width = max(20, *map(len, scores))
    for key, value in scores.items():
        print(f"{key:>{width}}  {_figure(value)}")
    return None


def _figure(value) -> str:
    """A table cell: floats to 4 decimals, a list (a score per factor) as such cells, '-' where a value is None."""
    if isinstance(value, list):
        return " ".join("-" if v is None else _figure(v) for v in value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _train_prior(args: argparse.Namespace):
    fit = images.train_prior(args.run, **options_from(args, code_prior.CodePriorConfig, TrainConfig))
    print(f"code prior: {fit.val_bits_per_code:.3f} bits per held-out code (uniform: {fit.uniform_bits_per_code:.3f})")
    return f"{args.run}/{code_prior.CODE_PRIOR_DIR}"


def _classify(args: argparse.Namespace):
    result = images.classify(args.run, args.data, args.data_dir, args.split, args.out)
    if result.accuracy is not None:
        print(f"accuracy {result.accuracy:.4f} on {result.n_examples} {args.split} examples")
    return result.path


def _sweep(args: argparse.Namespace):
    rows = images.sweep(args.latent_dims, args.out, args.k, args.overwrite, preset=args.preset, config=args.config,
                        tensorboard=args.tensorboard, log_to=args.log_to, **options_from(args, *CONFIGS))
    print(f"{'latent':>6} {'-ELBO':>9} {'NLL':>9} {'recon':>9} {'KL':>8} {'active':>6}")
    for row in rows:
        print(f"{row['latent_dim']:>6} {row['neg_elbo']:>9.2f} {row['nll']:>9.2f} {-row['reconstruction']:>9.2f} "
              f"{row['kl']:>8.2f} {row['active_units']:>6}")
    return f"{args.out}/sweep.png"
