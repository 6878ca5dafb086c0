"""The image workflow: the Python API behind `vaekit train`, `eval`, `sample`, `reconstruct`, `interpolate`,
`embed`, `classify`, `sweep`, `report` and `demo`. A run is a directory written by `train`:

    config.json          model, train and data configs (the schema to rebuild the model)
    model.safetensors    weights (best validation epoch)
    metrics.jsonl        one JSON row per epoch
    checkpoint/          optimizer, RNG and last weights, for --resume
    curves.png, eval.json, samples.png, ... report.html   written by the other commands

This module writes runs (`train`, `save`, `sweep`, `demo`) and gathers them (`report`); a saved run is read back
in `images_run`, measured in `images_eval` and drawn from in `images_pictures`, whose names it re-exports.

torch and the core are imported inside the functions, as in every app: the CLI reads their signatures for --help.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..config import (FORMAT_VERSION, DataConfig, ModelConfig, TrainConfig, check_count, check_given_options_act,
                      check_likelihood_data, check_semi_supervised, preset, resumed_train_config, route, to_dict)
from ..errors import CheckpointError, ConfigError, DataError
from ..io import write_json, write_jsonl
from ..saved import check_new_folder, check_output_folder, clear_folder
from ..tracking import TRACKERS, tracker_names, trackers  # TRACKERS: --log-to's choices
# The commands on a saved run live beside this module; they are this API too (vaekit.train, vaekit.sample, ...).
from .images_eval import (EVAL_K, Classification, ClassPredictions, classify, eval_file, evaluate, predict_classes,
                          sample_quality)
from .images_pictures import PICTURES, SAMPLE_CHUNK, embed, fit_sampler, interpolate, reconstruct, sample, slerp
from .images_run import KIND, Run, as_run, caption, load_run, output_path, run_splits, weights_epoch

if TYPE_CHECKING:
    import numpy as np

    from .code_prior import CodePriorFit

CURVES_FILE = "curves.png"
NOT_CONFIG = ("preset", "log_to", "tensorboard")  # what train takes beside the configs' options
ACTIVATION_COPIES = 8  # decoded values one training example holds at once per importance sample (rough)
# Labelled rows drawn (with replacement) into every batch of a semi-supervised run, so that its few labels train the
# classifier at every step (Kingma et al. 2014 saw 100 labels among 50,000 images).
LABELLED_PER_BATCH = 32


def _with_file(options: dict) -> dict:
    """`options` with those of the config file named by its `config` key (if any) beneath them: the options
    given explicitly win over the file's."""
    from ..config_files import read_options

    path = options.pop("config", None)
    return options if path is None else {**read_options(path, ModelConfig, TrainConfig, DataConfig), **options}


def _configs(preset_name: str | None, overrides: dict) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """The preset's configs (or the defaults) with the keyword overrides routed to the config that owns each."""
    return route(overrides, *preset(preset_name))


def train(out: str | Path | None = "runs/latest", data: str | np.ndarray | tuple | None = None,
          preset: str | None = None, resume: bool = False, overwrite: bool = False, **options) -> Run:
    """Train a VAE and write its run directory (`vaekit train`).

    `data` is a dataset name or path (default: DataConfig's, or on resume the run's own, which another name may
    not replace), or in-memory arrays x or (x, y); `options` are any field of
    ModelConfig, TrainConfig or DataConfig (e.g. latent_dim=8, epochs=5, binarize='dynamic'), and
    `config=FILE` a JSON or YAML file of such options (`config_text` writes one; a run's config.json is one),
    beneath the preset's and above the other options. `log_to` names trackers ('tensorboard', 'mlflow':
    vaekit.tracking) that get the configs, each epoch's metrics and the curves; `tensorboard=True` is
    log_to='tensorboard'.
    With resume=True the configs are read from `out` and training continues from its last checkpoint, or starts
    again from the first epoch if it stopped before saving one; temporaries that a killed run left are removed.
    Without it, a folder that holds a saved model is refused unless overwrite=True, which replaces it.
    """
    # Long: a training run's steps in their order (configs, data, model, folder, trackers, Trainer), each one call.
    import torch

    from ..checkpoint import CONFIG_FILE, MODEL_FILE, STATE_DIR, has_checkpoint, load_weights
    from ..data.splits import IN_MEMORY, model_data, training_splits
    from ..devices import select_device
    from ..distributed import is_main_process
    from ..evaluation import CollapseWatch
    from ..training import Trainer

    arrays = None if data is None or isinstance(data, (str, Path)) else data
    out = Path(out) if out is not None else None
    given = set(options)  # by name, before the config file's options join them
    options = _with_file(options)
    log_to = tracker_names([*tracker_names(options.pop("log_to", ())),
                            *(["tensorboard"] if options.pop("tensorboard", False) else [])])
    if isinstance(data, (str, Path)):
        options["data"] = str(data)
    if resume:
        model_cfg, train_cfg, data_cfg = _resumed_configs(out, options)
    else:
        model_cfg, train_cfg, data_cfg = _configs(preset, options)
        if arrays is not None:
            data_cfg = dataclasses.replace(data_cfg, data=IN_MEMORY)
        check_likelihood_data(model_cfg, data_cfg)
        check_semi_supervised(model_cfg, train_cfg, data_cfg)
        check_given_options_act(model_cfg, given)
        if out is not None and is_main_process():
            check_new_folder(out, overwrite, resume=True)
    select_device(train_cfg.device)
    splits = training_splits(data_cfg, train_cfg.seed, arrays)
    streamed = not torch.is_tensor(splits.x_train)
    if streamed and (model_cfg.condition != "none" or model_cfg.semi_supervised):
        flag = "--semi-supervised" if model_cfg.semi_supervised else f"--condition {model_cfg.condition}"
        raise ConfigError(f"{flag} needs the data in memory, but {data_cfg.data} is streamed: drop {flag.split()[0]} "
                          "or pass --stream never")
    if len(splits.x_train) < 2:
        raise DataError(f"the training set has {len(splits.x_train)} example(s): a VAE needs at least 2 to learn "
                        "from; give more data or a smaller --val-fraction")
    model_cfg, vae = _build_for(splits, model_cfg, train_cfg, resume)
    vae.likelihood.check_data(splits.x_val if streamed else splits.x_train)  # a stream: its held-out rows
    dynamic = data_cfg.binarize == "dynamic"
    x_train = model_data(vae, data_cfg, splits.x_train, splits.y_train, seed=None, binarize=dynamic)
    if model_cfg.semi_supervised:
        from ..conditioning import LabelledData, balanced_labels

        labels = torch.as_tensor(splits.y_train).long()
        if data_cfg.labelled:
            labels = balanced_labels(labels, data_cfg.labelled, train_cfg.seed)
        x_train = LabelledData(x_train, labels, LABELLED_PER_BATCH)
    x_val = model_data(vae, data_cfg, splits.x_val, splits.y_val, seed=train_cfg.seed)
    # Under torchrun only rank 0 writes; the others would otherwise race it to config.json.
    if out is not None and is_main_process():
        _prepare_folder(out, resume, overwrite, model_cfg, train_cfg, data_cfg)
    tracked = trackers(log_to, out, resume) if is_main_process() else []
    if not resume:
        for tracker in tracked:
            tracker.start({f"{section}.{key}": value for section, config in
                           (("model", model_cfg), ("train", train_cfg), ("data", data_cfg))
                           for key, value in to_dict(config).items()})
    watch = CollapseWatch(x_val, train_cfg.beta, train_cfg.epochs) if x_val is not None and len(x_val) else None
    trainer = Trainer(vae, train_cfg, out, dynamic_binarization=dynamic and x_train is splits.x_train,
                      on_epoch=(lambda row: [tracker.epoch(row) for tracker in tracked]) if tracked else None,
                      probe=watch)
    if resume and has_checkpoint(out / STATE_DIR):
        trainer.resume()
    elif resume and is_main_process():
        warnings.warn(f"{out} holds no checkpoint (the run stopped in its first epoch): it starts again from epoch 1 "
                      "with its saved configuration")
    history = trainer.fit(x_train, x_val)
    if out is not None:
        load_weights(vae, out / MODEL_FILE)
        if history and is_main_process():
            from ..plotting import save_curves

            save_curves(out / CURVES_FILE, history, f"training curves | {out} | {len(history)} epochs")
    for tracker in tracked:
        tracker.finish([path for path in (out / CONFIG_FILE, out / CURVES_FILE) if path.is_file()] if out else [])
    vae.eval()  # the Trainer already gave its convolutions the device's fast layout
    return Run(out, vae, model_cfg, train_cfg, data_cfg, history)


def _saved_config(model: ModelConfig, train: TrainConfig, data: DataConfig) -> dict:
    """A run's config.json."""
    return {"kind": KIND, "format_version": FORMAT_VERSION, "vaekit_version": __version__, "model": to_dict(model),
            "train": to_dict(train), "data": to_dict(data)}


def save(run: Run, folder: str | Path, overwrite: bool = False) -> Path:
    """Save a run's model in `folder` as `train` does (config.json + model.safetensors, and metrics.jsonl when
    it has a history), without its checkpoint: a folder `load_run` and `vaekit.load` read. A folder that holds
    a saved model is refused unless `overwrite`."""
    from ..checkpoint import CONFIG_FILE, MODEL_FILE, save_tensors
    from ..training import METRICS_FILE

    folder = check_new_folder(folder, overwrite)
    clear_folder(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / MODEL_FILE, run.vae.state_dict())
    if run.history:
        write_jsonl(folder / METRICS_FILE, run.history)
    write_json(folder / CONFIG_FILE, _saved_config(run.model, run.train, run.data))  # last: the folder is whole
    return folder


def _build_for(splits, model_cfg, train_cfg, resume: bool):
    """(model_cfg completed with the data's shape and, for a new label-conditioned run, its classes; the VAE it
    builds), once the model and a training step are known to fit in memory."""
    import numpy as np
    import torch

    from ..limits import build_within_memory, check_memory
    from ..vae import build_vae

    model_cfg = dataclasses.replace(model_cfg, data_shape=tuple(splits.x_train.shape[1:]))
    if model_cfg.semi_supervised:
        model_cfg = dataclasses.replace(model_cfg, condition="label")
    if model_cfg.condition == "label" and not resume:
        if splits.y_train is None:
            flag = "--semi-supervised" if model_cfg.semi_supervised else "--condition label"
            raise DataError(f"{flag} needs labelled data: use a dataset with labels or drop {flag}")
        model_cfg = dataclasses.replace(model_cfg, n_classes=int(np.max(splits.y_train)) + 1)
    torch.manual_seed(train_cfg.seed)
    vae = build_within_memory(lambda: build_vae(model_cfg), "a model of these sizes",
                              "lower --latent-dim, --hidden or --conv-channels")
    if not resume:
        _pseudo_inputs_from_data(vae, splits.x_train, train_cfg.seed)
    check_memory(4 * ACTIVATION_COPIES * train_cfg.iw_samples * train_cfg.batch_size * vae.decoded_elements(),
                 f"a training step of --iw-samples {train_cfg.iw_samples} x --batch-size {train_cfg.batch_size}",
                 "lower them")
    return model_cfg, vae


def _pseudo_inputs_from_data(vae, x_train, seed: int) -> None:
    """Start a new run's VampPrior (one layer's, or the top of two) at distinct training examples, drawn with `seed`;
    examples streamed from files keep the default start."""
    import numpy as np
    import torch

    from ..priors import VampPrior

    for prior in (m for m in vae.prior.modules() if isinstance(m, VampPrior)):
        if isinstance(x_train, (np.ndarray, torch.Tensor)):
            k = len(prior.pseudo_inputs)
            rows = np.sort(np.random.default_rng(seed).choice(len(x_train), k, replace=k > len(x_train)))
            prior.start_at(torch.as_tensor(x_train[rows], dtype=torch.float32))


def _prepare_folder(out: Path, resume: bool, overwrite: bool, model_cfg, train_cfg, data_cfg) -> None:
    """Empty `out` for a new run (or keep a resumed one's), remove a killed run's temporaries, and write a new
    run's config.json."""
    from ..checkpoint import CONFIG_FILE, MODEL_FILE, remove_leftovers
    from ..training import METRICS_FILE

    if not resume:
        clear_folder(out, overwrite)
    remove_leftovers(out, (CONFIG_FILE, MODEL_FILE, METRICS_FILE, CURVES_FILE))
    if not resume:
        write_json(out / CONFIG_FILE, _saved_config(model_cfg, train_cfg, data_cfg))


def _resumed_configs(out: Path | None, options: dict):
    from ..checkpoint import CONFIG_FILE

    if out is None or not (out / CONFIG_FILE).exists():
        raise CheckpointError(f"nothing to resume: {out}/{CONFIG_FILE} not found; drop --resume to start a new run")
    saved = load_run(out, device="cpu", weights=False)
    # the data must be the saved run's; where it lies (data_dir) may change
    train_cfg = resumed_train_config((saved.model, saved.train, saved.data), saved.train,
                                     {k: v for k, v in options.items() if k != "data_dir"})
    data_cfg = dataclasses.replace(saved.data, data_dir=options.get("data_dir", saved.data.data_dir))
    data_cfg.validate()
    return saved.model, train_cfg, data_cfg


def train_prior(run: Run | str | Path, **options) -> CodePriorFit:
    """Fit the learned prior over a quantized run's codes (`vaekit train-prior`): a small causal transformer over the
    code indices of its training split (apps.code_prior), saved in RUN/code_prior/ and from then on the prior that
    `sample` draws codes from and `evaluate` counts their bits under. `options` are fields of CodePriorConfig
    (width, layers, heads) and of the TrainConfig (epochs, batch_size, lr, seed; defaults CODE_PRIOR_TRAIN)."""
    from .code_prior import CODE_PRIOR_TRAIN, CodePriorConfig, fit_code_prior

    config, train_cfg = route(options, CodePriorConfig(), CODE_PRIOR_TRAIN)
    run = as_run(run)
    return fit_code_prior(run, run_splits(run), config, train_cfg)


def sweep(latent_dims=(2, 8, 16, 32), out: str | Path = "runs/sweep", k: int = 100, overwrite: bool = False,
          **options) -> list[dict]:
    """Train one model per latent size, evaluate each, and plot the trade-off (`vaekit sweep`). Every size, option
    and folder is checked before the first model trains."""
    from ..evaluation import check_importance_samples
    from ..plotting import save_tradeoff

    if not latent_dims:
        raise ConfigError("--latent-dims must list at least one size, e.g. 2,8,16")
    if options.pop("latent_dim", None) is not None:
        warnings.warn("a sweep trains one model per size of --latent-dims: --latent-dim is ignored", stacklevel=2)
    check_importance_samples(k)
    merged = _with_file(dict(options))  # train reads the file itself: only `options` count as given by name
    out = check_output_folder(out, "--out")
    for size in latent_dims:
        model_cfg, _, _ = _configs(merged.get("preset"), {**{k: v for k, v in merged.items() if k not in NOT_CONFIG},
                                                          "latent_dim": size})
        check_given_options_act(model_cfg, options)
        check_new_folder(out / f"latent-{size}", overwrite)
    rows = []
    for size in latent_dims:  # the sizes win over a config file's latent_dim, as every option given here does
        run = train(out / f"latent-{size}", latent_dim=int(size), overwrite=overwrite, **options)
        rows.append({"latent_dim": int(size), **evaluate(run, k=k).to_dict()})
    write_json(out / "sweep.json", rows)
    save_tradeoff(out / "sweep.png", rows, f"latent-size sweep | {out} | test split, k = {k} | "
                  f"{weights_epoch(run.history)} (latent {latent_dims[-1]})")
    return rows


def config_text(run: Run | str | Path, format: str = "json") -> str:
    """The configuration of a run as the text of a config file (`vaekit config`): its model, train and data
    options in `format` (json or yaml), which `train(config=...)` / `vaekit train --config` reads back."""
    from ..config_files import dump, editable

    run = run if isinstance(run, Run) else load_run(run, device="cpu", weights=False)
    return dump({"model": editable(run.model), "train": editable(run.train), "data": editable(run.data)}, format)


def report(run: Run | str | Path, make_missing: bool = True) -> Path:
    """Gather metrics, curves and pictures of a run into report.html (`vaekit report`). With `make_missing`, the
    pictures that take seconds (samples, reconstructions, interpolation, latent map) are drawn first where the run
    lacks them; what is still missing, the test metrics above all, is named at the top of the page with the
    command that makes it, and in one warning."""
    from ..html_report import evaluations, write_report

    run = as_run(run)
    notes = _make_missing_pictures(run) if make_missing else []
    if not evaluations(run.path):
        notes.append(f"no test metrics yet: `vaekit eval {run.path}` measures them (k = {EVAL_K} on the whole test "
                     f"split; `--k 50 --limit 500` is a quick look, written beside as {eval_file('test', 50, 500)})")
    if notes:
        warnings.warn(f"report of {run.path}: " + "; ".join(notes), stacklevel=2)
    return write_report(run, notes)


def _make_missing_pictures(run: Run) -> list[str]:
    """Draw the pictures the run lacks (image runs; the latent map for any); a note for each that cannot be."""
    makers = {"latent_map.png": (embed, "embed")}
    if len(run.model.data_shape) == 3:
        makers = {"samples.png": (sample, "sample"), "reconstructions.png": (reconstruct, "reconstruct"),
                  "interpolation.png": (interpolate, "interpolate"), **makers}
    notes = []
    for name, (make, command) in makers.items():
        if not (run.path / name).exists():
            try:
                make(run)
            except (ConfigError, DataError) as err:
                notes.append(f"no {name} ({err}): `vaekit {command} {run.path}` with what it asks for")
    return notes


def demo(out: str | Path = "runs/demo", epochs: int = 3, k: int = 100, data: str = "fashion-mnist",
         data_dir: str | None = None, limit: int | None = 2000, overwrite: bool = False) -> Path:
    """The README's main job: train the default conv VAE on Fashion-MNIST, evaluate it (the IWAE
    NLL on the first `limit` test images, to stay within minutes), draw every picture and write
    report.html. Returns the report's path. A run already in `out` is continued, or with overwrite replaced."""
    from ..checkpoint import CONFIG_FILE
    from ..evaluation import check_importance_samples

    check_importance_samples(k)
    if limit is not None:
        check_count("--limit", limit)
    out = Path(out)
    options = {"data_dir": data_dir} if data_dir else {}
    run = train(out, data=data, network="conv", epochs=epochs, resume=not overwrite and (out / CONFIG_FILE).exists(),
                overwrite=overwrite, **options)
    evaluate(run, k=k, limit=limit)
    sample(run)
    reconstruct(run)
    interpolate(run)
    embed(run)
    return report(run)
