"""`vaekit tabular fit|sample|encode|decode|evaluate`: the flags of mixed-type tables, each verb one call of
vaekit.apps.tabular."""

from __future__ import annotations

import argparse

from ..apps import tabular
from ..config import TrainConfig, add_arguments, options_from
from ..tabular.config import TRAIN_DEFAULTS, TabularConfig
from .flags import add_overwrite, add_parameter, add_verbs

EXAMPLES = {
    "fit": "vaekit tabular fit adult.csv -o models/adult --epochs 100 --categorical education-num --na-values '?'",
    "sample": "vaekit tabular sample models/adult -n 10000 -o synthetic.csv\n"
              "  vaekit tabular sample models/adult -n 500 --condition 'income=>50K' -o rich.csv",
    "encode": "vaekit tabular encode models/adult adult.csv -o codes.npy   # fit's --na-values apply",
    "decode": "vaekit tabular decode models/adult codes.npy -o decoded.csv",
    "evaluate": "vaekit tabular evaluate adult.csv synthetic.csv --holdout adult_test.csv --target income "
                "--model models/adult -o quality/",
}
# The TrainConfig fields `fit` offers, with the tabular training defaults.
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "beta", "kl_warmup", "precision", "seed", "device")


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_commands(subparsers) -> None:
    command = add_verbs(subparsers, "tabular", "mixed-type tables: synthetic rows and record compression",
                        "A VAE for tables with continuous, integer, categorical, boolean and missing values (needs "
                        "pandas: pip install 'vaekit[tabular]').", EXAMPLES)

    p = command("fit", "fit the transformer and the VAE on a table; write a model directory")
    p.add_argument("data", help="a .csv, .tsv or .parquet table with a header row")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    add_overwrite(p, tabular.fit_file)
    for kind in ("categorical", "continuous", "datetime"):
        p.add_argument(f"--{kind}", type=_names, default=(), metavar="COL[,COL...]",
                       help=f"treat these columns as {kind} whatever their detected kind")
    _na_flag(p)
    add_arguments(p.add_argument_group("model"), TabularConfig)
    add_arguments(p.add_argument_group("training"), TrainConfig, base=TrainConfig(**TRAIN_DEFAULTS), only=TRAIN_FLAGS)
    p.set_defaults(handler=_fit)

    p = command("sample", "synthetic rows with the input's columns, dtypes and categories")
    p.add_argument("model")
    add_parameter(p, tabular.sample_file, "n", "-n", help="number of rows")
    p.add_argument("-o", "--out", required=True, help="output .csv/.tsv/.parquet")
    p.add_argument("--condition", action="append", default=[], metavar="COL=VALUE",
                   help="only rows with this categorical/boolean value (repeatable)")
    add_parameter(p, tabular.sample_file, "seed", help="seed of the draws")
    p.set_defaults(handler=lambda a: tabular.sample_file(a.model, a.out, a.n, tabular.conditions(a.condition), a.seed))

    p = command("encode", "rows -> latent codes E[z|x] (the compressed records)")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("-o", "--out", required=True, help="output .npy or .csv of codes (N x latent_dim)")
    _na_flag(p)
    p.set_defaults(handler=lambda a: tabular.encode_file(a.model, a.data, a.out, a.na_values))

    p = command("decode", "latent codes -> the most likely rows")
    p.add_argument("model")
    p.add_argument("codes", help=".npy or .csv of codes written by 'vaekit tabular encode'")
    p.add_argument("-o", "--out", required=True, help="output .csv/.tsv/.parquet")
    p.set_defaults(handler=lambda a: tabular.decode_file(a.model, a.codes, a.out))

    p = command("evaluate", "quality report of synthetic vs real rows: a table, quality.json and plots")
    p.add_argument("real", help="the real table the model was fit on")
    p.add_argument("synthetic")
    p.add_argument("--holdout", help="real rows not used in fitting: enables ML efficacy and privacy scores")
    p.add_argument("--target", help="column predicted in ML efficacy (default: the last column)")
    add_parameter(p, tabular.evaluate_files, "out", "-o", "--out", help="folder for quality.json and plots")
    p.add_argument("--model", help="the fitted model's folder: the --na-values saved with it apply")
    _na_flag(p)
    p.set_defaults(handler=_evaluate)


def _na_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--na-values", type=_names, default=(), metavar="S[,S...]",
                   help="extra strings that mark a missing cell, e.g. '?' (pandas' defaults always apply); those given to "
                        "fit are saved with the model and apply to its later commands too")


def _fit(args):
    model = tabular.fit_file(args.data, args.out, args.categorical, args.continuous, args.datetime, args.na_values,
                             overwrite=args.overwrite, **options_from(args, TabularConfig, TrainConfig))
    for note in model.transformer.notes:
        print(f"note: {note}")
    last = model.history[-1]
    print(f"epoch {last['epoch']}: -ELBO {last['loss']:.2f} nats per row, fit in {model.fit_seconds:.1f} s")
    return args.out


def _evaluate(args):
    quality, paths = tabular.evaluate_files(args.real, args.synthetic, args.holdout, args.target, args.out,
                                            args.na_values, args.model)
    print(quality.table())
    if args.holdout is None:
        print("(pass --holdout with real rows unseen in fitting for ML efficacy and privacy scores)")
    return paths
