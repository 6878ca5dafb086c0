"""The guard of issue 41: every CLI subcommand, read from the real parser so that none is forgotten, with a
table of bad values for each of its flags and positionals. Every bad input must give a non-zero exit, exactly
one line on stderr, no traceback, and leave every file of the session's folders as it was.

Run as a script to print the counts instead of asserting (docs/reliability.md quotes them):

    PYTHONPATH=src VAEKIT_DATA=... python tests/test_cli_guard.py [--subprocess]

--subprocess runs each case as `python -m vaekit` under a time and memory limit, for a vaekit whose bad inputs
may still run without end or exhaust memory.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import math
import io
import json
import os
import shlex
import shutil
import struct
import sys
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import build_parser, main

FIXTURES = Path(__file__).parent / "fixtures" / "saved"

# -- values that are wrong for most flags of a kind ------------------------------------------------------------
NOT_INT = ["x", "1.5", ""]
POSITIVE = ["0", "-1", *NOT_INT]
NON_NEGATIVE = ["-1", *NOT_INT]
HUGE = "1000000000000"
POSITIVE_CAPPED = [*POSITIVE, HUGE]  # a count whose work or memory grows with it
SEED = ["x", "-1", "1.5"]
POSITIVE_FLOAT = ["0", "-1", "x", "nan", "inf"]
NON_NEGATIVE_FLOAT = ["-1", "x", "nan", "inf"]
FRACTION = ["-0.1", "1", "1.5", "nan", "x"]
CHOICE = ["bogus", ""]
SIZES = ["0", "-1", "x", "", "8,0", HUGE]  # comma-separated layer sizes
BAD_FOLDER = ["{missing}", "{file}", "{emptydir}"]  # where a saved model folder is expected
BAD_RUN = [*BAD_FOLDER, "{text}", "{config_list}", "{config_wrong_type}", "{nan_weights}", "{corrupt_metrics}"]
BAD_DATA_DIR = ["{missing}", "{file}"]
BAD_OUT_FILE = ["{emptydir}", "{file}/x.png", ""]  # where an output file is expected
BAD_OUT_FOLDER = ["{file}", ""]  # where an output folder is expected
BAD_MODEL_OUT = ["{file}", "{text}", ""]  # where a new model folder is expected (+ the kind's own model)
BAD_CONFIG_FILE = ["{missing}", "{emptydir}", "{file}", "{text}/config.json", "{config_list}/config.json"]  # where
# a config file of options is expected (a value of the wrong type in one: tests/test_config_files.py)
BAD_WAV = ["{missing}", "{junk_wav}", "{nan_wav}", "{emptydir}", "{file}"]

TRAIN_FLAGS = {
    "--epochs": POSITIVE, "--batch-size": POSITIVE, "--lr": POSITIVE_FLOAT, "--lr-schedule": CHOICE,
    "--lr-end-factor": ["0", "-1", "2", "nan", "x"], "--lr-warmup": NON_NEGATIVE_FLOAT,
    "--weight-decay": NON_NEGATIVE_FLOAT, "--beta": NON_NEGATIVE_FLOAT, "--kl-warmup": NON_NEGATIVE_FLOAT,
    "--prior-warmup": NON_NEGATIVE_FLOAT,
    "--free-bits": NON_NEGATIVE_FLOAT, "--iw-samples": POSITIVE_CAPPED, "--grad-clip": NON_NEGATIVE_FLOAT,
    "--tc-weight": NON_NEGATIVE_FLOAT, "--tc-estimator": CHOICE,
    "--early-stopping": NON_NEGATIVE, "--time-limit": NON_NEGATIVE_FLOAT, "--ema": ["1", "-0.1", "nan", "x"],
    "--precision": CHOICE, "--seed": SEED, "--device": ["bogus", "", "cuda:99"],
    "--checkpoint-every": NON_NEGATIVE, "--workers": ["-2", *NOT_INT],
}
IMAGE_FLAGS = {
    "--preset": CHOICE, "--config": BAD_CONFIG_FILE, "--log-to": CHOICE, "--data": ["{missing}", "{file}", "{emptydir}", "imagenet-9000", "", "{one_row}", "shapes:1",
                                   "shapes:x"],
    "--data-dir": BAD_DATA_DIR, "--image-size": ["0x0", "x", "-8x8", "8", "100000x100000"],
    "--val-fraction": FRACTION, "--binarize": CHOICE, "--stream": CHOICE, "--column": ["nope", ""],
    "--corrupt": ["bogus", "gaussian:-1", "gaussian:x", "mask:2", "salt-pepper:nan"],
    "--network": CHOICE, "--hidden": SIZES, "--conv-channels": SIZES, "--encoder-padding": CHOICE,
    "--activation": CHOICE, "--latent-dim": POSITIVE_CAPPED, "--likelihood": CHOICE,
    "--gaussian-scale": ["-2", "0", "x", "nan"], "--prior": CHOICE, "--prior-components": POSITIVE_CAPPED,
    "--posterior": CHOICE, "--flow-steps": [*POSITIVE_CAPPED, "65"], "--stochastic-layers": ["0", "3", "x"],
    "--bottleneck": CHOICE,
    "--codebook-size": ["1", *POSITIVE, HUGE, "2000000"], "--code-dim": POSITIVE_CAPPED,
    "--fsq-levels": ["1", "8,1", *SIZES],
    "--condition": ["bogus", "lowres:3", "lowres:0", "lowres:x", "noisy"],
    "--label-weight": NON_NEGATIVE_FLOAT, "--labelled": ["-1", *NOT_INT, HUGE], **TRAIN_FLAGS,
}
IMAGE_COMBOS = [
    ["--likelihood", "discretized_logistic", "--binarize", "dynamic"],
    ["--likelihood", "gaussian", "--gaussian-scale", "-2"],
    ["--likelihood", "gaussian", "--gaussian-scale", "nan"],
    ["--bottleneck", "vq", "--latent-dim", "16", "--posterior", "iaf"],
    ["--bottleneck", "fsq", "--latent-dim", "8", "--stochastic-layers", "2"],
    ["--semi-supervised", "--labelled", "5"], ["--semi-supervised", "--labelled", "1000000"],
    ["--semi-supervised", "--iw-samples", "2"], ["--semi-supervised", "--condition", "lowres:2"],
    ["--semi-supervised", "--data", "{binary_npy}"],
]


@dataclass(frozen=True)
class Table:
    """A subcommand's bad inputs: `base` is a working command line (placeholders in braces name the session's
    files); each entry of `bad` replaces the positional of that name, or is appended after the flag; each
    combination of `combos` is appended as it is."""

    base: str
    bad: dict[str, list[str]]
    combos: list[list[str]] = field(default_factory=list)


TABLES: dict[str, Table] = {
    "train": Table("train {run_flags} --out {new}/run",
                   {"--out": [*BAD_MODEL_OUT, "{run}"], **IMAGE_FLAGS},
                   [*IMAGE_COMBOS, ["--resume"], ["--out", "{run}", "--resume", "--data", "mnist"],
                    ["--out", "{run}", "--resume", "--latent-dim", "3"],
                    ["--out", "{corrupt_metrics}", "--resume", "--epochs", "2"],
                    ["--out", "{no_optimizer}", "--resume", "--epochs", "2"]]),
    "eval": Table("eval {run} --k 2 --limit 10",
                  {"run": BAD_RUN, "--split": CHOICE, "--k": POSITIVE_CAPPED, "--limit": POSITIVE,
                   "--data": ["{missing}", "{file}", "{wide_npy}"], "--data-dir": BAD_DATA_DIR,
                   "--samples": ["-1", "1", "x", "1.5", "100000000", HUGE], "--from": [*CHOICE, "gmm"],
                   "--inception-weights": ["{missing}", "{file}", ""]},
                  [["--k", "1000000000", "--limit", "2"], ["--disentanglement"]]),
    "sample": Table("sample {run} -n 4 -o {new}/s.png",
                    {"run": BAD_RUN, "-n": [*POSITIVE, "100000000", HUGE], "-o": [*BAD_OUT_FILE, "{new}/s.bogus"],
                     "--seed": SEED, "--label": ["0", "x"], "--from": CHOICE}),
    "train-prior": Table("train-prior {vq} --epochs 1 --width 8 --heads 2",
                         {"run": [*BAD_RUN, "{run}"], "--width": [*POSITIVE_CAPPED, "7", "5000"],
                          "--layers": [*POSITIVE_CAPPED, "65"], "--heads": [*POSITIVE_CAPPED, "3", "16"],
                          "--epochs": POSITIVE, "--batch-size": POSITIVE, "--lr": POSITIVE_FLOAT, "--seed": SEED}),
    "reconstruct": Table("reconstruct {run} -n 4 -o {new}/r.png",
                         {"run": BAD_RUN, "-n": POSITIVE, "-o": BAD_OUT_FILE, "--data": ["{missing}", "{wide_npy}"],
                          "--data-dir": BAD_DATA_DIR}),
    "interpolate": Table("interpolate {run} -o {new}/i.png --pairs 2 --steps 3",
                         {"run": BAD_RUN, "-o": BAD_OUT_FILE, "--pairs": POSITIVE, "--steps": [*POSITIVE_CAPPED, "1"],
                          "--data": ["{missing}", "{wide_npy}"], "--data-dir": BAD_DATA_DIR}),
    "embed": Table("embed {run} -o {new}/z.npy",
                   {"run": BAD_RUN, "-o": BAD_OUT_FILE, "--split": CHOICE, "--data": ["{missing}", "{wide_npy}"],
                    "--data-dir": BAD_DATA_DIR}),
    "sweep": Table("sweep --data digits --network mlp --hidden 8 --epochs 1 --k 2 --latent-dims 1 --out {new}/sweep",
                   {"--out": BAD_OUT_FOLDER, "--latent-dims": ["a,b", "", "0", "-1", "1,0", HUGE],
                    "--k": POSITIVE_CAPPED, **{k: v for k, v in IMAGE_FLAGS.items() if k != "--latent-dim"}}),
    "classify": Table("classify {m2} -o {new}/p.csv",
                      {"run": [*BAD_RUN, "{run}"], "--split": CHOICE, "-o": [*BAD_OUT_FILE, "{new}/p.png"],
                       "--data": ["{missing}", "{wide_npy}"], "--data-dir": BAD_DATA_DIR}),
    "report": Table("report {run}", {"run": BAD_RUN}),
    "card": Table("card {run}", {"folder": [*BAD_FOLDER, "{config_list}", "{corrupt_metrics}"]}),
    "config": Table("config {run}", {"run": [r for r in BAD_RUN if r != "{nan_weights}"],  # weights unread
                                      "--format": CHOICE}),
    "export": Table("export {run} -o {new}/exported",
                    {"run": BAD_RUN, "-o": ["{file}", "{run}"], "--format": CHOICE, "--opset": ["0", "-1", "x", "99"]}),
    "demo": Table("demo --data digits --epochs 1 --k 2 --limit 10 --out {new}/demo",
                  {"--out": BAD_MODEL_OUT, "--epochs": POSITIVE, "--k": POSITIVE_CAPPED, "--limit": POSITIVE,
                   "--data": ["{missing}", "{file}", "imagenet-9000"], "--data-dir": BAD_DATA_DIR}),
    "anomaly fit": Table("anomaly fit {table_numbers} -o {new}/det --epochs 1",
                         {"data": ["{missing}", "{file}", "{emptydir}", "{empty_csv}", "{table_csv}"],
                          "-o": [*BAD_MODEL_OUT, "{anomaly}"], "--label-column": ["nope", "99"],
                          "--normal-label": ["nope"], "--latent-dim": POSITIVE_CAPPED, "--hidden": SIZES,
                          "--epochs": POSITIVE, "--score": CHOICE, "--contamination": ["0", "0.5", "-1", "nan", "x"],
                          "--seed": SEED, "--scaler": CHOICE, "--val-fraction": FRACTION},
                         [["--label-column", "y"], ["--normal-label", "1"]]),
    "anomaly score": Table("anomaly score {anomaly} {table_numbers} -o {new}/s.csv",
                           {"detector": [*BAD_FOLDER, "{text}"],
                            "data": ["{missing}", "{file}", "{emptydir}", "{empty_csv}", "{table_csv}"],
                            "-o": BAD_OUT_FILE, "--label-column": ["nope"], "--chunk-rows": POSITIVE,
                            "--score": CHOICE}),
    "anomaly evaluate": Table("anomaly evaluate {anomaly} {table_labelled} --label-column y -o {new}/ev",
                              {"detector": [*BAD_FOLDER, "{text}"], "data": ["{missing}", "{table_numbers}"],
                               "-o": BAD_OUT_FOLDER, "--label-column": ["nope"], "--normal-label": ["nope"],
                               "--chunk-rows": POSITIVE, "--score": CHOICE}),
    "audio fit": Table("audio fit {wav_dir} -o {new}/audio --epochs 1 --latent-dim 2",
                       {"folder": ["{missing}", "{emptydir}", "{junk_wav}", "{file}", "{nan_wav}"],
                        "-o": [*BAD_MODEL_OUT, "{audio}"], "--epochs": POSITIVE, "--latent-dim": POSITIVE_CAPPED,
                        "--sample-rate": POSITIVE_CAPPED, "--clip-seconds": ["0", "-1", "nan", "x", "1e9"],
                        "--seed": SEED}),
    "audio sample": Table("audio sample {audio} -n 2 -o {new}/as",
                          {"model": [*BAD_FOLDER, "{run}"], "-n": POSITIVE_CAPPED, "-o": BAD_OUT_FOLDER,
                           "--seed": SEED, "--from": CHOICE}),
    "audio reconstruct": Table("audio reconstruct {audio} {wav_a} -o {new}/r.wav",
                               {"model": [*BAD_FOLDER, "{run}"], "clip": BAD_WAV, "-o": BAD_OUT_FILE}),
    "audio interpolate": Table("audio interpolate {audio} {wav_a} {wav_b} --steps 3 -o {new}/m",
                               {"model": [*BAD_FOLDER, "{run}"], "first": BAD_WAV, "second": BAD_WAV,
                                "--steps": [*POSITIVE_CAPPED, "1"], "-o": BAD_OUT_FOLDER}),
    "compress": Table("compress {run} {binary_npy} -o {new}/x.vae",
                      {"run": BAD_RUN, "data": ["{missing}", "{file}", "{emptydir}", "{wide_npy}", "{grey_npy}"],
                       "-o": BAD_OUT_FILE, "--lossy-bits": ["0", "-1", "17", "x"], "--step-log2": ["-1", "x", "100"]},
                      [["--entropy-code"]]),
    "decompress": Table("decompress {run} {lossless_vae} -o {new}/x.npy",
                        {"run": [*BAD_RUN, "{lowres}"],
                         "file": ["{missing}", "{file}", "{emptydir}", "{corrupt_vae}", "{crafted_n}",
                                  "{crafted_shape}", "{crafted_levels}", "{crafted_dtype}", "{crafted_coder}",
                                  "{crafted_kind}", "{crafted_meta}", "{crafted_lossy_n}", "{crafted_lossy_bits}",
                                  "{crafted_lossy_mask}", "{crafted_lossy_shape}", "{crafted_entropy}",
                                  "{crafted_transposed}", "{crafted_scale}"],
                         "-o": BAD_OUT_FILE}),
    "recommend fit": Table("recommend fit {ratings} -o {new}/rec --epochs 1 --hidden 4 --latent-dim 2",
                           {"data": ["{missing}", "{emptydir}", "{empty_csv}", "{file}"],
                            "-o": [*BAD_MODEL_OUT, "{recommend}"], "--sep": ["", "xyz"],
                            "--user-col": ["nope"], "--item-col": ["nope"], "--rating-col": ["nope"],
                            "--min-rating": ["x", "nan", "1000"], "--weighting": CHOICE,
                            "--min-user-count": NON_NEGATIVE, "--min-item-count": NON_NEGATIVE,
                            "--heldout-fraction": FRACTION, "--heldout-prop": FRACTION, "--model": CHOICE,
                            "--hidden": SIZES, "--latent-dim": POSITIVE_CAPPED, "--dropout": FRACTION,
                            "--beta-cap": NON_NEGATIVE_FLOAT, "--anneal-steps": NON_NEGATIVE,
                            "--gamma": NON_NEGATIVE_FLOAT, "--encoder-passes": POSITIVE,
                            "--decoder-passes": POSITIVE, "--recvae-layers": POSITIVE,
                            "--prior-weights": ["0.5,0.6,0.1", "-0.1,1,0.1", "0.5,0.5", "", "x", "nan,0.5,0.5"],
                            "--ease-lambda": ["-1", "x", "nan"], "--epochs": POSITIVE, "--batch-size": POSITIVE,
                            "--early-stopping": NON_NEGATIVE,
                            "--lr": POSITIVE_FLOAT, "--weight-decay": NON_NEGATIVE_FLOAT, "--precision": CHOICE,
                            "--seed": SEED, "--device": ["bogus", ""]}),
    "recommend evaluate": Table("recommend evaluate {recommend}", {"model": [*BAD_FOLDER, "{run}"],
                                                                    "--split": CHOICE}),
    "recommend top": Table("recommend top {recommend} --user u1 -k 3",
                           {"model": [*BAD_FOLDER, "{run}"], "--user": ["nobody", ""], "--items": ["nope", "", ","],
                            "-k": POSITIVE, "--titles": ["{missing}", "{emptydir}", "{empty_csv}"]}),
    "denoise": Table("denoise {run} {png8} -o {new}/dn",
                     {"run": BAD_RUN, "source": ["{missing}", "{file}", "{emptydir}", "{png4}"],
                      "-o": BAD_OUT_FOLDER, "--samples": ["-1", "x", HUGE]}),
    "superres": Table("superres {lowres} {png4} -o {new}/sr.png --samples 2",
                      {"run": [*BAD_RUN, "{run}"], "source": ["{missing}", "{file}", "{emptydir}", "{png8}"],
                       "-o": BAD_OUT_FILE, "--samples": POSITIVE_CAPPED, "--seed": SEED}),
    "restore-eval": Table("restore-eval {run} --levels 0.1 --limit 10 -o {new}/re",
                          {"run": BAD_RUN, "--levels": ["x", "", "-0.1", "nan", "0.1,,x"], "--limit": POSITIVE,
                           "--samples": POSITIVE, "-o": BAD_OUT_FOLDER, "--data": ["{missing}", "{wide_npy}"],
                           "--data-dir": BAD_DATA_DIR}),
    "serve": Table("serve {run} --port 0",
                   {"runs": [*(r for r in BAD_RUN if r != "{text}"), "bad name={run}", "{file}={run}"],
                    "--host": ["not a host", ""],
                    "--port": ["99999", "-1", "x"], "--device": ["bogus", ""], "--max-body-bytes": POSITIVE,
                    "--max-batch": POSITIVE, "--max-k": POSITIVE, "--cors-origin": ["", "not a url"]}),
    "tabular fit": Table("tabular fit {table_csv} -o {new}/tab --epochs 1",
                         {"data": ["{missing}", "{file}", "{emptydir}", "{empty_csv}", "{table_inf}", "{table_huge}"],
                          "-o": [*BAD_MODEL_OUT, "{tabular}"], "--categorical": ["nope"], "--continuous": ["nope"],
                          "--datetime": ["nope"], "--latent-dim": POSITIVE_CAPPED, "--hidden": SIZES,
                          "--activation": CHOICE, "--normalization": CHOICE, "--max-categories": POSITIVE,
                          "--max-integer-levels": NON_NEGATIVE, "--min-scale": POSITIVE_FLOAT, "--epochs": POSITIVE,
                          "--batch-size": POSITIVE, "--lr": POSITIVE_FLOAT, "--weight-decay": NON_NEGATIVE_FLOAT,
                          "--beta": NON_NEGATIVE_FLOAT, "--kl-warmup": NON_NEGATIVE_FLOAT, "--precision": CHOICE,
                          "--seed": SEED, "--device": ["bogus", ""]}),
    "tabular sample": Table("tabular sample {tabular} -n 5 -o {new}/s.csv",
                            {"model": [*BAD_FOLDER, "{run}"], "-n": POSITIVE_CAPPED,
                             "-o": [*BAD_OUT_FILE, "{new}/s.bogus"],
                             "--condition": ["nope", "colour=green", "size=3", "nope=1"], "--seed": SEED}),
    "tabular encode": Table("tabular encode {tabular} {table_csv} -o {new}/c.npy",
                            {"model": [*BAD_FOLDER, "{run}"], "data": ["{missing}", "{emptydir}", "{empty_csv}",
                                                                        "{table_numbers}"],
                             "-o": BAD_OUT_FILE}),
    "tabular decode": Table("tabular decode {tabular} {codes} -o {new}/d.csv",
                            {"model": [*BAD_FOLDER, "{run}"],
                             "codes": ["{missing}", "{file}", "{codes_nan}", "{codes_wide}", "{emptydir}"],
                             "-o": [*BAD_OUT_FILE, "{new}/d.bogus"]}),
    "tabular evaluate": Table("tabular evaluate {table_csv} {table_csv} -o {new}/q",
                              {"real": ["{missing}", "{empty_csv}"], "synthetic": ["{missing}", "{table_numbers}"],
                               "--holdout": ["{missing}", "{table_numbers}"], "--target": ["nope"],
                               "--model": [*BAD_FOLDER, "{run}"], "-o": BAD_OUT_FOLDER}),
    "text fit": Table("text fit {corpus} -o {new}/txt {text_flags}",
                      {"corpus": ["{missing}", "{emptydir}", "{empty_txt}"], "-o": [*BAD_MODEL_OUT, "{run}"],
                       "--val": ["{missing}", "{emptydir}"], "--column": ["nope"], "--labelled": ["{missing}"],
                       "--label-column": ["nope"], "--tokenizer": CHOICE, "--max-vocab": POSITIVE,
                       "--min-count": POSITIVE, "--max-len": POSITIVE_CAPPED, "--embed-dim": POSITIVE_CAPPED,
                       "--cell": CHOICE, "--hidden": POSITIVE_CAPPED, "--encoder-hidden": NON_NEGATIVE,
                       "--layers": POSITIVE, "--latent-dim": [*NON_NEGATIVE, HUGE], "--dropout": FRACTION,
                       "--word-dropout": FRACTION, "--bow-weight": NON_NEGATIVE_FLOAT, "--kl-schedule": CHOICE,
                       "--kl-cycles": POSITIVE, "--label-weight": NON_NEGATIVE_FLOAT,
                       "--labelled-per-batch": POSITIVE, "--val-fraction": FRACTION, **TRAIN_FLAGS},
                      [["--resume"], ["--out", "{text}", "--resume", "--latent-dim", "3"]]),
    "text sample": Table("text sample {text} -n 2",
                         {"model": [*BAD_FOLDER, "{run}"], "-n": POSITIVE_CAPPED, "--temperature": POSITIVE_FLOAT,
                          "--seed": SEED, "--method": CHOICE, "--beam-size": POSITIVE_CAPPED, "-o": BAD_OUT_FILE}),
    "text reconstruct": Table("text reconstruct {text} 'good film'",
                              {"model": [*BAD_FOLDER, "{run}"], "sentences": ["{emptydir}", "{empty_txt}"],
                               "--method": CHOICE, "--beam-size": POSITIVE_CAPPED, "-o": BAD_OUT_FILE}),
    "text interpolate": Table("text interpolate {text} 'good film' 'bad plot' --steps 3",
                              {"model": [*BAD_FOLDER, "{run}"], "a": [""], "b": [""],
                               "--steps": [*POSITIVE_CAPPED, "1"], "--method": CHOICE,
                               "--beam-size": POSITIVE_CAPPED, "-o": BAD_OUT_FILE}),
    "text embed": Table("text embed {text} {corpus} -o {new}/e.npy",
                        {"model": [*BAD_FOLDER, "{run}"], "corpus": ["{missing}", "{emptydir}", "{empty_txt}"],
                         "--column": ["nope"], "-o": BAD_OUT_FILE}),
    "text classify": Table("text classify {text} {labelled} -o {new}/p.csv --predict {corpus}",
                           {"model": [*BAD_FOLDER, "{run}"], "labelled": ["{missing}", "{emptydir}", "{empty_txt}",
                                                                           "{corpus}"],
                            "--text-column": ["nope"], "--label-column": ["nope"], "--predict": ["{missing}"],
                            "--unlabelled": ["{missing}"], "--self-training": ["0", "1.5", "-1", "x", "nan"],
                            "-o": BAD_OUT_FILE}),
    "text predict": Table("text predict {text_labelled} {corpus} -o {new}/p.csv",
                          {"model": [*BAD_FOLDER, "{run}", "{text}"], "sentences": ["{missing}", "{emptydir}",
                                                                                    "{empty_txt}"],
                           "--column": ["nope"], "-o": BAD_OUT_FILE}),
    "text eval": Table("text eval {text} {corpus} -o {new}/e.json --k 2",
                       {"model": [*BAD_FOLDER, "{run}"], "corpus": ["{missing}", "{emptydir}", "{empty_txt}"],
                        "--column": ["nope"], "--k": POSITIVE_CAPPED, "-o": BAD_OUT_FILE}),
}
# Flags no value of which is wrong (switches, free text), with the reason.
NO_BAD_VALUE = {
    "--na-values": "any string may mark a missing cell",
    "sweep --latent-dim": "ignored with a warning: --latent-dims sets the sizes",
}


# -- the session's files -------------------------------------------------------------------------------------------
RUN_FLAGS = "--data digits --network mlp --hidden 8 --latent-dim 2 --epochs 1"
TEXT_FLAGS = "--epochs 1 --embed-dim 4 --hidden 4 --latent-dim 2 --batch-size 8"
WORDS = ["good", "bad", "film", "plot", "was", "the"]


def _write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> None:
    from scipy.io import wavfile

    wavfile.write(path, rate, samples)


def _craft(source: Path, target: Path, **changes) -> None:
    """A copy of the .vae file `source` with its metadata changed and a valid checksum."""
    from vaekit.compression import container

    box = container.unpack(source.read_bytes())
    kind = changes.pop("kind", box.kind)
    meta = {**box.meta, **changes}
    target.write_bytes(container.pack(container.Container(kind, box.model_hash, box.data_hash, meta, box.payload)))


def make_world(root: Path) -> dict[str, str]:
    """The files the cases name: trained runs, copies of the saved fixtures, data files of every kind, broken
    folders and crafted compressed files. Returns {placeholder: path}."""
    from PIL import Image

    rng = np.random.default_rng(0)
    w: dict[str, Path] = {"root": root, "new": root / "new", "missing": root / "missing", "file": root / "file.txt",
                          "emptydir": root / "empty"}
    root.mkdir(parents=True, exist_ok=True)
    w["file"].write_text("just a file\n")
    w["emptydir"].mkdir()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        for name, extra in (("run", ""), ("lowres", " --condition lowres:2"),
                            ("vq", " --latent-dim 4 --code-dim 2 --codebook-size 8 --bottleneck vq"),
                            ("m2", " --semi-supervised --labelled 20")):
            w[name] = root / name
            assert main(["train", *shlex.split(RUN_FLAGS + extra), "--out", str(w[name])]) == 0, quiet.getvalue()
    for kind in ("tabular", "text", "recommend", "anomaly", "audio"):
        w[kind] = root / kind
        shutil.copytree(FIXTURES / kind, w[kind])
    for name, config in (("config_list", []), ("config_wrong_type", None)):
        w[name] = root / name
        shutil.copytree(w["run"], w[name])
        if config is None:
            config = json.loads((w["run"] / "config.json").read_text())
            config["model"]["latent_dim"] = "four"
        (w[name] / "config.json").write_text(json.dumps(config))
    w["corrupt_metrics"] = root / "corrupt_metrics"
    shutil.copytree(w["run"], w["corrupt_metrics"])
    (w["corrupt_metrics"] / "metrics.jsonl").write_text('{"epoch": 1, "loss": 4\n')
    w["no_optimizer"] = root / "no_optimizer"
    shutil.copytree(w["run"], w["no_optimizer"])
    manifest_path = w["no_optimizer"] / "checkpoint" / "latest.json"  # the manifest names the state's folder
    manifest = json.loads(manifest_path.read_text())
    state = manifest_path.parent / manifest["folder"] / "state.json"
    data = json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "optimizer"}).encode()
    state.write_bytes(data)  # ... and is kept consistent, so the resume reaches the state itself
    manifest["files"]["state.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest_path.write_text(json.dumps(manifest))
    w["nan_weights"] = root / "nan_weights"
    shutil.copytree(w["run"], w["nan_weights"])
    from safetensors.numpy import load_file, save_file

    tensors = {k: np.full_like(v, np.nan) for k, v in load_file(w["nan_weights"] / "model.safetensors").items()}
    save_file(tensors, w["nan_weights"] / "model.safetensors")

    # images
    from sklearn.datasets import load_digits

    digits = (load_digits().images[:6] / 16).astype(np.float32)[:, None]  # (6, 1, 8, 8) in [0, 1]
    for name, array in (("binary_npy", (digits > 0.5).astype(np.float32)), ("grey_npy", digits),
                        ("wide_npy", rng.random((6, 1, 5, 5)).astype(np.float32)),
                        ("one_row", digits[:1])):
        w[name] = root / f"{name}.npy"
        np.save(w[name], array)
    for name, size in (("png8", 8), ("png4", 4)):
        w[name] = root / f"{name}.png"
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(w[name])

    # compressed files, and crafted ones with valid checksums
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        for name, extra in (("lossless_vae", []), ("lossy_vae", ["--lossy-bits", "4"]),
                            ("entropy_vae", ["--lossy-bits", "4", "--entropy-code"])):
            w[name] = root / f"{name.split('_')[0]}.vae"
            assert main(["compress", str(w["run"]), str(w["binary_npy"]), "-o", str(w[name]), *extra]) == 0
    w["corrupt_vae"] = root / "corrupt.vae"
    blob = bytearray(w["lossless_vae"].read_bytes())
    blob[-1] ^= 0xFF
    w["corrupt_vae"].write_bytes(bytes(blob))
    crafted = {"crafted_n": ("lossless", dict(n=10 ** 9)), "crafted_shape": ("lossless", dict(shape=[10 ** 6] * 2)),
               "crafted_levels": ("lossless", dict(levels=0)), "crafted_dtype": ("lossless", dict(dtype="|O")),
               "crafted_coder": ("lossless", dict(coder={"step_log2": 10 ** 6})),
               "crafted_kind": ("lossless", dict(kind=7)), "crafted_meta": ("lossless", dict(n="many")),
               "crafted_transposed": ("lossless", dict(transposed="yes")),
               "crafted_lossy_n": ("lossy", dict(n=10 ** 9)), "crafted_lossy_bits": ("lossy", dict(bits=0)),
               "crafted_lossy_mask": ("lossy", dict(mask=[1] * 10 ** 5)),
               "crafted_lossy_shape": ("lossy", dict(shape=[6, 10 ** 6])),
               "crafted_scale": ("lossy", dict(scale="big")),
               "crafted_entropy": ("entropy", dict(n=10 ** 9))}
    for name, (source, changes) in crafted.items():
        w[name] = root / f"{name}.vae"
        _craft(w[f"{source}_vae"], w[name], **changes)

    # tables
    colour = rng.choice(["red", "blue"], 40)
    size = np.where(colour == "red", 10.0, -5.0) + rng.normal(0, 1, 40)
    w["table_csv"] = root / "table.csv"
    w["table_csv"].write_text("colour,size,flag\n" + "".join(f"{c},{s:.3f},{bool(i % 3)}\n"
                                                            for i, (c, s) in enumerate(zip(colour, size))))
    w["table_inf"] = root / "table_inf.csv"
    w["table_inf"].write_text(w["table_csv"].read_text().replace(f"{size[3]:.3f}", "inf", 1))
    w["table_huge"] = root / "table_huge.csv"
    w["table_huge"].write_text(w["table_csv"].read_text().replace(f"{size[3]:.3f}", "1e300", 1))
    numbers = rng.normal(size=(40, 3))
    w["table_numbers"] = root / "numbers.csv"
    w["table_numbers"].write_text("a,b,c\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f}\n" for a, b, c in numbers))
    w["table_labelled"] = root / "labelled_numbers.csv"
    w["table_labelled"].write_text("a,b,c,y\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f},{int(i % 5 == 0)}\n"
                                                         for i, (a, b, c) in enumerate(numbers)))
    w["empty_csv"] = root / "empty.csv"
    w["empty_csv"].write_text("")
    w["codes"], w["codes_nan"], w["codes_wide"] = (root / f"{n}.npy" for n in ("codes", "codes_nan", "codes_wide"))
    np.save(w["codes"], rng.normal(size=(5, 2)).astype(np.float32))
    np.save(w["codes_nan"], np.full((5, 2), np.nan, np.float32))
    np.save(w["codes_wide"], rng.normal(size=(5, 7)).astype(np.float32))
    w["ratings"] = root / "ratings.csv"
    w["ratings"].write_text("user_id,item_id\n" + "".join(f"u{u},i{(u % 2) * 5 + i}\n" for u in range(30)
                                                          for i in rng.choice(8, 5, replace=False)))

    # text
    w["corpus"] = root / "corpus.txt"
    w["corpus"].write_text("".join(" ".join(rng.choice(WORDS, 4)) + "\n" for _ in range(24)))
    w["labelled"] = root / "labelled.tsv"
    w["labelled"].write_text("".join(f"{' '.join(rng.choice(WORDS, 4))}\t{'pos' if i % 2 else 'neg'}\n"
                                     for i in range(12)))
    w["empty_txt"] = root / "empty.txt"
    w["empty_txt"].write_text("")
    w["text_labelled"] = root / "text_labelled"
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        assert main(["text", "fit", str(w["corpus"]), "--labelled", str(w["labelled"]), "-o", str(w["text_labelled"]),
                     *shlex.split(TEXT_FLAGS)]) == 0, quiet.getvalue()

    # sound
    t = np.arange(2048) / 8000
    w["wav_dir"] = root / "wavs"
    w["wav_dir"].mkdir()
    for i, f in enumerate((220.0, 330.0, 440.0, 550.0)):
        _write_wav(w["wav_dir"] / f"{i}.wav", (np.sin(2 * np.pi * f * t) * 0.5).astype(np.float32))
    w["wav_a"], w["wav_b"] = w["wav_dir"] / "0.wav", w["wav_dir"] / "1.wav"
    w["junk_wav"] = root / "junk.wav"
    riff = b"RIFF" + struct.pack("<I", 1000) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    w["junk_wav"].write_bytes(riff + b"data" + struct.pack("<I", 10 ** 9) + rng.bytes(64))
    w["nan_wav"] = root / "nan.wav"
    _write_wav(w["nan_wav"], np.full(2048, np.nan, np.float32))

    values = {name: str(path) for name, path in w.items()}
    return values


# -- running a case --------------------------------------------------------------------------------------------------
def commands(parser: argparse.ArgumentParser | None = None, argv: tuple[str, ...] = ()):
    """(name, parser) of every leaf subcommand ('train', 'tabular fit', ...) of the real parser."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from commands(sub, (*argv, name))
                else:
                    yield " ".join((*argv, name)), sub


def inputs(parser: argparse.ArgumentParser) -> list[str]:
    """The names a table entry uses for a subcommand's inputs: positionals by dest, flags by their first option
    string; switches (which take no value) are left out."""
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or (action.option_strings and action.nargs == 0):
            continue
        names.append(action.option_strings[0] if action.option_strings else action.dest)
    return names


@functools.cache
def cases() -> list[tuple[str, str, str, list[str]]]:
    """(command, input, value, argv template) of every bad input of TABLES."""
    found = []
    for command, table in TABLES.items():
        base = _tokens(table.base)
        for name, values in table.bad.items():
            for value in values:
                if name.startswith("-"):
                    argv = [*base, name, value]
                else:
                    argv = list(base)
                    argv[_positional(command, name)] = value
                found.append((command, name, value, argv))
        for combo in table.combos:
            found.append((command, "combination", " ".join(combo), [*base, *combo]))
    return found


def _tokens(line: str) -> list[str]:
    return shlex.split(line.replace("{run_flags}", RUN_FLAGS).replace("{text_flags}", TEXT_FLAGS))


@functools.cache
def _parsers() -> dict[str, argparse.ArgumentParser]:
    return dict(commands())


def _positional(command: str, name: str) -> int:
    """The index in a base command line of positional `name` (positionals come first in every base, in the
    parser's order)."""
    parser = _parsers()[command]
    order = [a.dest for a in parser._actions if not a.option_strings and not isinstance(a, argparse._HelpAction)]
    return len(command.split()) + order.index(name)


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256 (files) or 'dir'} of everything under root."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@dataclass
class Outcome:
    code: int | None  # None: did not end (subprocess mode: time or memory limit)
    stderr: str
    traceback: bool
    changed: list[str]

    @property
    def lines(self) -> list[str]:
        """The lines a terminal shows: of each line, what follows its last carriage return (a progress bar that
        erases itself leaves nothing)."""
        shown = (line.rsplit("\r", 1)[-1] for line in self.stderr.split("\n"))
        return [line for line in shown if line.strip()]

    @property
    def verdict(self) -> str:
        if self.code is None:
            return "no end"
        if self.traceback:
            return "traceback"
        if self.code == 0:
            return "accepted"
        if len(self.lines) != 1:
            return f"{len(self.lines)} lines"
        return "clean"


class NoEnd(BaseException):
    """A case ran past the script's time limit."""


def _run_in_process(argv: list[str], timeout: int = 0) -> tuple[int | None, str, bool]:
    import signal

    def stop(*_):
        raise NoEnd

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(timeout)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except NoEnd:
            code = None
        except BaseException:  # what the real entry point would print as a traceback
            traceback.print_exc()
            code = 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    return code, text, "Traceback" in text


def _run_subprocess(argv: list[str], timeout: float = 120, memory: int = 6 << 30) -> tuple[int | None, str, bool]:
    import resource
    import subprocess

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        proc = subprocess.run([sys.executable, "-m", "vaekit", *argv], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return None, "", False
    if proc.returncode < 0 or "MemoryError" in proc.stderr:
        return None, proc.stderr, False
    return proc.returncode, proc.stderr, "Traceback" in proc.stderr


def run_case(argv_template: list[str], world: dict[str, str], subprocess: bool = False, timeout: int = 0) -> Outcome:
    argv = [token.format(**world) for token in argv_template]
    root = Path(world["root"])
    before = snapshot(root)
    code, stderr, crashed = _run_subprocess(argv) if subprocess else _run_in_process(argv, timeout)
    after = snapshot(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for key in changed:  # put the world back, so one damaging case does not spoil the next
        target = root / key
        if key not in before:
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    return Outcome(code, stderr, crashed, changed)


# -- the tests ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "guard-cache"))
        patch.chdir(root)
        yield make_world(root / "world")


def test_every_subcommand_and_input_has_bad_values():
    for command, parser in commands():
        assert command in TABLES, f"vaekit {command} has no table of bad inputs in tests/test_cli_guard.py"
        missing = [name for name in inputs(parser) if name not in TABLES[command].bad and name not in NO_BAD_VALUE
                   and f"{command} {name}" not in NO_BAD_VALUE]
        assert not missing, f"vaekit {command}: no bad values for {missing}"
    assert set(TABLES) == {command for command, _ in commands()}


@pytest.mark.parametrize("command", sorted(TABLES))
def test_bad_inputs_get_one_line_and_change_nothing(command, world, monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)  # a serve case that got this far "succeeds"
    failures = []
    for name, input_name, value, argv in ((c[0], c[1], c[2], c[3]) for c in cases() if c[0] == command):
        outcome = run_case(argv, world)
        if outcome.verdict != "clean" or outcome.changed:
            failures.append(f"{input_name} {value!r}: {outcome.verdict}, changed {outcome.changed}: "
                            f"{outcome.stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)


def test_the_table_is_large_and_covers_every_subcommand():
    counts = Counter(case[0] for case in cases())
    assert len(cases()) >= 1200 and min(counts.values()) >= 5, counts


# -- what a table of bad values cannot say -------------------------------------------------------------------
MODEL_WRITERS = {"train", "sweep", "demo", "anomaly fit", "audio fit", "recommend fit", "tabular fit", "text fit",
                 "export"}  # export writes a model too: its graphs


def _run(argv: list[str]) -> Outcome:
    code, stderr, crashed = _run_in_process([str(a) for a in argv])
    return Outcome(code, stderr, crashed, [])


def test_every_command_that_saves_a_model_and_only_those_take_overwrite():
    takes = {command for command, parser in commands() if "--overwrite" in inputs(parser) or any(
        "--overwrite" in a.option_strings for a in parser._actions)}
    assert takes == MODEL_WRITERS


def test_overwrite_replaces_a_saved_model_and_nothing_else_does(world, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(world["tabular"], target)
    (target / "notes.txt").write_text("left by the old model")
    before = snapshot(target)
    refused = _run(["tabular", "fit", world["table_csv"], "-o", target, "--epochs", "1"])
    assert refused.verdict == "clean" and "--overwrite" in refused.stderr and snapshot(target) == before
    assert _run(["tabular", "fit", world["table_csv"], "-o", target, "--epochs", "1", "--overwrite"]).code == 0
    assert not (target / "notes.txt").exists()
    assert json.loads((target / "config.json").read_text())["kind"] == "tabular"  # today's format, not 0.1.0's
    other = tmp_path / "text"  # a model of another kind is replaced only with the flag too
    shutil.copytree(world["text"], other)
    assert _run(["train", *shlex.split(RUN_FLAGS), "--out", other]).verdict == "clean"
    assert _run(["train", *shlex.split(RUN_FLAGS), "--out", other, "--overwrite"]).code == 0
    assert json.loads((other / "config.json").read_text())["kind"] == "core" and not (other / "vocab.json").exists()


def test_a_full_disk_is_one_line_naming_the_folder(world, tmp_path, monkeypatch):
    import errno

    import vaekit.io

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vaekit.io.os, "fsync", full)
    picture = _run(["sample", world["run"], "-n", "4", "-o", tmp_path / "s.png"])
    assert picture.lines == [f"vaekit: error: no space left on {tmp_path}; free space and rerun"]
    training = _run(["train", *shlex.split(RUN_FLAGS), "--out", tmp_path / "run"])
    assert training.code == 2 and training.lines[-1] == (f"vaekit: error: no space left on {tmp_path / 'run'}; "
                                                         "free space and rerun with --resume")


def test_sizes_are_refused_with_the_number_and_the_limit(world, tmp_path, monkeypatch):
    import vaekit.limits

    monkeypatch.setattr(vaekit.limits, "available_memory", lambda: 10 ** 6)
    grid = _run(["sample", world["run"], "-n", "5000", "-o", tmp_path / "s.png"])
    assert grid.verdict == "clean" and "-n 5000" in grid.stderr and "800.0 kB this machine can spare" in grid.stderr
    monkeypatch.setattr(vaekit.limits.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(0, 0, 10 ** 6))
    disk = _run(["sample", world["run"], "-n", "5000", "-o", tmp_path / "s.npy"])
    assert disk.verdict == "clean" and "1.3 MB, more than the 1.0 MB free" in disk.stderr
    work = _run(["eval", world["run"], "--k", "1000000000", "--limit", "2"])
    assert work.verdict == "clean" and "1..100,000" in work.stderr and "1000000000" in work.stderr
    assert not list(tmp_path.iterdir())


def test_samples_to_npy_stream_in_chunks(world, tmp_path, monkeypatch):
    from vaekit.apps import images_pictures

    monkeypatch.setattr(images_pictures, "SAMPLE_CHUNK", 7)
    assert _run(["sample", world["run"], "-n", "30", "-o", tmp_path / "s.npy"]).code == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (30, 1, 8, 8) and samples.dtype == np.float32 and np.isfinite(samples).all()
    assert len({row.tobytes() for row in samples}) == 30  # every chunk drew afresh


def test_doubtful_inputs_get_one_line_warnings(world, tmp_path):
    """Defect 8's cases that stay accepted, each with a one-line warning (the rest are errors in the table)."""
    folder = tmp_path / "wavs"
    shutil.copytree(world["wav_dir"], folder)
    shutil.copy(world["junk_wav"], folder / "junk.wav")
    audio = _run(["audio", "fit", folder, "-o", tmp_path / "audio", "--epochs", "1", "--latent-dim", "2"])
    assert audio.code == 0 and [line for line in audio.lines if "warning" in line] == [
        f"vaekit: warning: skipped {folder / 'junk.wav'}: cannot read {folder / 'junk.wav'} as WAV (Reached EOF "
        "prematurely; finished at 108 bytes, expected 1008 bytes from header.): convert it to PCM WAV"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes(Path(world["corpus"]).read_bytes() + "the café was good\n".encode("latin-1"))
    text = _run(["text", "fit", latin, "-o", tmp_path / "text", *shlex.split(TEXT_FLAGS)])
    assert text.code == 0 and f"vaekit: warning: {latin} is not UTF-8: 1 line(s) hold bytes" in text.stderr
    sweep = _run(["sweep", *shlex.split(RUN_FLAGS), "--latent-dims", "1", "--k", "2", "--out", tmp_path / "sweep"])
    assert sweep.code == 0 and "vaekit: warning: a sweep trains one model per size of --latent-dims" in sweep.stderr
    assert not any(outcome.traceback for outcome in (audio, text, sweep))


# -- properties: any number -------------------------------------------------------------------------------------
def _numeric_fields():
    import dataclasses
    import typing

    from vaekit.apps.code_prior import CodePriorConfig
    from vaekit.apps.serve import ServeConfig
    from vaekit.compression.config import CoderConfig
    from vaekit.config import DataConfig, ModelConfig, TrainConfig
    from vaekit.recommend.models import InteractionConfig, RecommendConfig
    from vaekit.tabular.config import TabularConfig
    from vaekit.text.config import TextConfig

    found = []
    for cls in (ModelConfig, TrainConfig, DataConfig, TabularConfig, TextConfig, RecommendConfig, InteractionConfig,
                CoderConfig, ServeConfig, CodePriorConfig):
        types = typing.get_type_hints(cls)
        found += [(cls, f.name, types[f.name]) for f in dataclasses.fields(cls) if types[f.name] in (int, float)]
    return found


def test_any_number_in_any_numeric_config_field_validates_or_is_a_config_error():
    """Every int and float field of every config, given any int (or, for floats, any float: NaN, infinities,
    denormals) either validates, holding a finite value (an int within MAX_INT), or is a ConfigError: never
    another exception, so the API and the CLI fail in one line whatever number reaches them."""
    import dataclasses
    import math

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from vaekit.config import MAX_INT
    from vaekit.errors import ConfigError

    fields = _numeric_fields()
    extremes = st.sampled_from([0, -1, 1, MAX_INT, MAX_INT + 1, -MAX_INT - 1, 2 ** 63, 10 ** 30])

    @given(st.data())
    @settings(max_examples=400, deadline=None, derandomize=True)
    def check(data):
        cls, name, kind = data.draw(st.sampled_from(fields))
        numbers = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.integers(), extremes)
        if kind is float:
            numbers = st.one_of(numbers, st.floats())
        value = data.draw(numbers)
        config = dataclasses.replace(cls(), **{name: value})
        try:
            config.validate()
        except ConfigError:
            return
        assert math.isfinite(value) and (type(value) is float or abs(value) <= MAX_INT), (cls.__name__, name, value)

    check()


@pytest.mark.parametrize("argv", [["eval", "{run}", "--limit", "3", "--k"], ["sample", "{run}", "-o", "{out}", "-n"],
                                  ["text", "sample", "{text}", "-n", "2", "--temperature"]])
def test_any_number_on_a_count_flag_succeeds_or_fails_in_one_line(world, tmp_path, argv):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    values = st.one_of(st.integers(-5, 300), st.sampled_from([2 ** 31, 10 ** 12, 2 ** 63]),
                       *([st.floats(-1e3, 1e3), st.sampled_from([math.nan, math.inf])] if "--temperature" in argv
                         else []))

    @given(values)
    @settings(max_examples=25, deadline=None, derandomize=True)
    def check(value):
        outcome = _run([token.format(**world, out=tmp_path / "s.npy") for token in argv] + [str(value)])
        assert not outcome.traceback and (outcome.code == 0 or outcome.verdict == "clean"), (value, outcome.stderr)

    check()


def summarize(results: list[tuple[tuple, Outcome]]) -> str:
    verdicts = Counter(outcome.verdict for _, outcome in results)
    damaged = sum(bool(outcome.changed) for _, outcome in results)
    lines = [f"{len(results)} bad inputs over {len({case[0] for case, _ in results})} subcommands: "
             f"{verdicts['clean']} clean, {verdicts['traceback']} traceback, {verdicts['accepted']} accepted (exit 0), "
             f"{sum(v for k, v in verdicts.items() if k.endswith('lines'))} not one line, {verdicts['no end']} "
             f"without end (time or memory limit), {damaged} damaged"]
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    import resource

    use_subprocess = "--subprocess" in sys.argv
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a case that would exhaust memory fails instead
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    import uvicorn

    uvicorn.run = lambda *a, **k: None  # a serve case that got this far "succeeds"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("VAEKIT_CACHE", str(Path(tmp) / "cache"))
        os.chdir(tmp)
        world_paths = make_world(Path(tmp) / "world")
        results = []
        for case in cases():
            if only and case[0] not in only:
                continue
            outcome = run_case(case[3], world_paths, use_subprocess, timeout=60)
            results.append((case, outcome))
            if outcome.verdict != "clean" or outcome.changed or "--all" in sys.argv:
                last = outcome.lines[-1][:240] if outcome.lines else ""
                print(f"{outcome.verdict:>9} {'DAMAGED ' if outcome.changed else ''}{case[0]} {case[1]} {case[2]!r}: "
                      f"{last}", flush=True)
        print(summarize(results))
