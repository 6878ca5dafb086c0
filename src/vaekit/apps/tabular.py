"""`vaekit tabular fit|sample|encode|decode|evaluate`: the CLI of vaekit.tabular (mixed-type tables).

Each handler reads its inputs, calls one method of TabularVAE (or quality_report) and writes the
result; pandas and torch are imported inside the handlers so that `vaekit --help` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..config import add_command

EXAMPLES = {
    "fit": "vaekit tabular fit adult.csv -o models/adult --epochs 100 --categorical education-num --na-values '?'",
    "sample": "vaekit tabular sample models/adult -n 10000 -o synthetic.csv\n"
              "  vaekit tabular sample models/adult -n 500 --condition 'income=>50K' -o rich.csv",
    "encode": "vaekit tabular encode models/adult adult.csv -o codes.npy",
    "decode": "vaekit tabular decode models/adult codes.npy -o decoded.csv",
    "evaluate": "vaekit tabular evaluate adult.csv synthetic.csv --holdout adult_test.csv --target income -o quality/",
}
# TrainConfig fields offered by `fit` (defaults from vaekit.tabular.config.TRAIN_DEFAULTS where set).
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "beta", "kl_warmup", "precision", "seed", "device")


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_commands(subparsers) -> None:
    from ..config import TrainConfig, add_arguments
    from ..tabular.config import TRAIN_DEFAULTS, TabularConfig

    parser = subparsers.add_parser("tabular", help="mixed-type tables: synthetic rows and record compression",
                                   description="A VAE for tables with continuous, integer, categorical, boolean "
                                   "and missing values (needs pandas: pip install 'vaekit[tabular]').")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return add_command(sub, name, help, EXAMPLES[name])

    p = command("fit", "fit the transformer and the VAE on a table; write a model directory")
    p.add_argument("data", help="a .csv, .tsv or .parquet table with a header row")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    for kind in ("categorical", "continuous", "datetime"):
        p.add_argument(f"--{kind}", type=_names, default=(), metavar="COL[,COL...]",
                       help=f"treat these columns as {kind} whatever their detected kind")
    _na_flag(p)
    add_arguments(p.add_argument_group("model"), TabularConfig)
    train = p.add_argument_group("training")
    for f in fields(TrainConfig):
        if f.name in TRAIN_FLAGS:
            default = TRAIN_DEFAULTS.get(f.name, f.default)
            kind = type(f.default) if f.name != "device" else str
            train.add_argument(f"--{f.name.replace('_', '-')}", dest=f"TrainConfig.{f.name}", type=kind,
                               metavar=kind.__name__.upper(), default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {default})")
    p.set_defaults(handler=_fit)

    p = command("sample", "synthetic rows with the input's columns, dtypes and categories")
    p.add_argument("model")
    p.add_argument("-n", type=int, default=1000, help="number of rows (default: 1000)")
    p.add_argument("-o", "--out", required=True, help="output .csv/.tsv/.parquet")
    p.add_argument("--condition", action="append", default=[], metavar="COL=VALUE",
                   help="only rows with this categorical/boolean value (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_sample)

    p = command("encode", "rows -> latent codes E[z|x] (the compressed records)")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("-o", "--out", required=True, help="output .npy or .csv of codes (N x latent_dim)")
    _na_flag(p)
    p.set_defaults(handler=_encode)

    p = command("decode", "latent codes -> the most likely rows")
    p.add_argument("model")
    p.add_argument("codes", help=".npy or .csv of codes written by 'vaekit tabular encode'")
    p.add_argument("-o", "--out", required=True, help="output .csv/.tsv/.parquet")
    p.set_defaults(handler=_decode)

    p = command("evaluate", "quality report of synthetic vs real rows: a table, quality.json and plots")
    p.add_argument("real", help="the real table the model was fit on")
    p.add_argument("synthetic")
    p.add_argument("--holdout", help="real rows not used in fitting: enables ML efficacy and privacy scores")
    p.add_argument("--target", help="column predicted in ML efficacy (default: the last column)")
    p.add_argument("-o", "--out", default="quality", help="folder for quality.json and plots (default: quality)")
    _na_flag(p)
    p.set_defaults(handler=_evaluate)


def _na_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--na-values", type=_names, default=(), metavar="S[,S...]",
                   help="extra strings that mark a missing cell, e.g. '?' (pandas' defaults always apply)")


def _fit(args):
    from ..tabular import TabularVAE, read_table

    options = {k.split(".", 1)[1]: v for k, v in vars(args).items() if "." in k}
    model = TabularVAE(categorical=args.categorical, continuous=args.continuous, datetime=args.datetime,
                       progress=True, **options)
    model.fit(read_table(args.data, args.na_values))
    for note in model.transformer.notes:
        print(f"note: {note}")
    last = model.history[-1]
    print(f"epoch {last['epoch']}: -ELBO {last['loss']:.2f} nats per row, fit in {model.fit_seconds:.1f} s")
    return model.save(args.out)


def _sample(args):
    from ..errors import ConfigError
    from ..tabular import TabularVAE, write_table

    conditions = {}
    for item in args.condition:
        if "=" not in item:
            raise ConfigError(f"--condition '{item}' is not COL=VALUE: write e.g. --condition 'income=>50K'")
        name, value = item.split("=", 1)
        conditions[name] = value
    return write_table(TabularVAE.load(args.model).sample(args.n, conditions, seed=args.seed), args.out)


def _encode(args):
    import io

    import numpy as np

    from ..io import atomic_write
    from ..tabular import TabularVAE, read_table

    codes = TabularVAE.load(args.model).encode(read_table(args.data, args.na_values))
    buffer = io.BytesIO()
    if args.out.endswith(".csv"):
        np.savetxt(buffer, codes, delimiter=",", fmt="%.7g")
    else:
        np.save(buffer, codes)
    atomic_write(args.out, buffer.getvalue())
    return args.out


def _decode(args):
    import numpy as np

    from ..errors import DataError
    from ..tabular import TabularVAE, write_table

    try:
        codes = np.loadtxt(args.codes, delimiter=",", ndmin=2) if args.codes.endswith(".csv") else np.load(args.codes)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read codes from {args.codes} ({str(err).splitlines()[0]}): "
                        "pass a .npy or .csv written by 'vaekit tabular encode'") from None
    return write_table(TabularVAE.load(args.model).decode(codes), args.out)


def _evaluate(args):
    from pathlib import Path

    from ..tabular import quality_report, read_table

    real, synthetic = read_table(args.real, args.na_values), read_table(args.synthetic, args.na_values)
    holdout = read_table(args.holdout, args.na_values) if args.holdout else None
    quality = quality_report(real, synthetic, holdout, args.target, out_dir=args.out)
    print(quality.table())
    if holdout is None:
        print("(pass --holdout with real rows unseen in fitting for ML efficacy and privacy scores)")
    out = Path(args.out)
    return tuple(str(out / name) for name in ("quality.json", "marginals.png", "correlations.png")
                 if (out / name).exists())
