"""The image workflow: the Python API behind `vaekit train`, `eval`, `sample`, `reconstruct`, `interpolate`,
`embed`, `classify`, `sweep`, `report` and `demo`. A run is a directory written by `train`:

    config.json          model, train and data configs (the schema to rebuild the model)
    model.safetensors    weights (best validation epoch)
    metrics.jsonl        one JSON row per epoch
    checkpoint/          optimizer, RNG and last weights, for --resume
    curves.png, eval.json, samples.png, ... report.html   written by the other commands

torch and the core are imported inside the functions, as in every app: the CLI reads their signatures for --help.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..config import (FORMAT_VERSION, DataConfig, ModelConfig, TrainConfig, check_count, check_likelihood_data,
                      check_semi_supervised, from_dict, preset, resumed_train_config, route, to_dict)
from ..errors import CheckpointError, ConfigError, DataError
from ..io import atomic_write, write_json, write_jsonl, write_npy, write_npy_chunks
from ..saved import check_new_folder, check_output_file, check_output_folder, clear_folder, read_config
from ..tracking import TRACKERS, follow_up, tracker_names, trackers  # TRACKERS: --log-to's choices

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..data.splits import Splits
    from ..evaluation import Evaluation
    from ..sample_quality import SampleQuality
    from ..samplers import Fit
    from ..vae import VAE

KIND = "core"  # config.json's kind (vaekit.saved): a run of the core VAE, images or not
CURVES_FILE = "curves.png"
PICTURES = (".png", ".npy")  # what sample, reconstruct and interpolate write: a PNG grid, or the array itself
SAMPLE_CHUNK = 65536  # samples decoded at a time into an .npy file, so any -n that fits on the disk streams
NOT_CONFIG = ("preset", "log_to", "tensorboard")  # what train takes beside the configs' options
ACTIVATION_COPIES = 8  # decoded values one training example holds at once per importance sample (rough)
# Labelled rows drawn (with replacement) into every batch of a semi-supervised run, so that its few labels train the
# classifier at every step (Kingma et al. 2014 saw 100 labels among 50,000 images).
LABELLED_PER_BATCH = 32


@dataclass
class Run:
    """A trained model with its configs, on the device it was loaded to."""

    path: Path | None
    vae: VAE
    model: ModelConfig
    train: TrainConfig
    data: DataConfig
    history: list[dict]


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
    import torch

    from ..checkpoint import CONFIG_FILE, MODEL_FILE, STATE_DIR, has_checkpoint, load_weights
    from ..data.splits import IN_MEMORY, model_data, training_splits
    from ..devices import select_device
    from ..distributed import is_main_process
    from ..evaluation import CollapseWatch
    from ..training import Trainer

    arrays = None if data is None or isinstance(data, (str, Path)) else data
    out = Path(out) if out is not None else None
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
        if out is not None and is_main_process():
            check_new_folder(out, overwrite, resume=True)
    select_device(train_cfg.device)
    splits = training_splits(data_cfg, train_cfg.seed, arrays)
    streamed = not torch.is_tensor(splits.x_train)
    if streamed and (model_cfg.condition != "none" or model_cfg.semi_supervised):
        raise ConfigError(f"--condition {model_cfg.condition} or --semi-supervised needs the data in memory, but {data_cfg.data} is "
                          "streamed: drop --condition or pass --stream never")
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
    check_memory(4 * ACTIVATION_COPIES * train_cfg.iw_samples * train_cfg.batch_size * vae.decoded_elements(),
                 f"a training step of --iw-samples {train_cfg.iw_samples} x --batch-size {train_cfg.batch_size}",
                 "lower them")
    return model_cfg, vae


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


def load_run(path: str | Path, device: str = "auto", weights: bool = True) -> Run:
    """Rebuild a trained VAE from a run directory (config.json + model.safetensors)."""
    from ..accel import accelerate
    from ..checkpoint import CONFIG_FILE, MODEL_FILE, load_weights, read_jsonl
    from ..devices import select_device
    from ..training import METRICS_FILE
    from ..vae import build_vae

    path = Path(path)
    saved = read_config(path, KIND, FORMAT_VERSION)
    try:
        model_cfg, train_cfg, data_cfg = (from_dict(cls, saved[key]) for cls, key in
                                          ((ModelConfig, "model"), (TrainConfig, "train"), (DataConfig, "data")))
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{path / CONFIG_FILE} is not a vaekit run config ({err}): retrain") from None
    vae = build_vae(model_cfg)
    if weights:
        load_weights(vae, path / MODEL_FILE)
    target = select_device(device)
    accelerate(vae.to(target), target).eval()  # as the Trainer ran it
    history = read_jsonl(path / METRICS_FILE)
    return Run(path, vae, model_cfg, train_cfg, data_cfg, history)


def as_run(run: Run | str | Path) -> Run:
    """The Run itself, or the run saved in that folder."""
    return run if isinstance(run, Run) else load_run(run)


def run_splits(run: Run, data: str | None = None, data_dir: str | None = None) -> Splits:
    """The run's data split as in training, or `data` (from `data_dir`) instead; it must fit the model."""
    from ..data.splits import IN_MEMORY, training_splits

    config = run.data
    if data is not None or data_dir is not None:
        config = dataclasses.replace(config, **{k: v for k, v in (("data", data), ("data_dir", data_dir)) if v})
    if config.data == IN_MEMORY:
        raise ConfigError("this run was trained on in-memory arrays: pass --data (or data=) to name the data")
    splits = training_splits(config, run.train.seed)
    if tuple(splits.x_test.shape[1:]) != tuple(run.model.data_shape):
        raise DataError(f"data of shape {tuple(splits.x_test.shape[1:])} does not fit this model, trained on "
                        f"{tuple(run.model.data_shape)}: pass data like the training data")
    return splits


def output_path(run: Run, out: str | Path | None, default: str, suffixes: tuple[str, ...] | None = ()) -> Path:
    """`out`, else the file `default` in the run's folder, checked to be a file ending in one of `suffixes`
    (any, when empty), or a folder when `suffixes` is None."""
    if out is None and run.path is None:
        raise ConfigError("this model has no run directory: pass an output path")
    path = Path(out) if out is not None else run.path / default
    return check_output_folder(path) if suffixes is None else check_output_file(path, suffixes)


EVAL_K = 1000  # the main protocol's importance samples: eval.json holds the whole test split at this k


def eval_file(split: str = "test", k: int = EVAL_K, limit: int | None = None) -> str:
    """The name of the JSON an evaluation of this protocol writes into its run: eval.json for the main protocol
    (the whole test split, k = EVAL_K), eval_val.json for the validation split, and the protocol in the name for any
    other k or a limit (eval-k50-limit500.json), so that a quick look never replaces the main figures."""
    name = "eval" if split == "test" else f"eval_{split}"
    return name + (f"-k{k}" if k != EVAL_K else "") + (f"-limit{limit}" if limit is not None else "") + ".json"


def evaluate(run: Run | str | Path, split: str = "test", k: int = EVAL_K, data: str | None = None,
             data_dir: str | None = None, progress: bool = True, limit: int | None = None, samples: int = 0,
             sampler: str = "prior", inception_weights: str | None = None,
             disentanglement: bool = False) -> Evaluation:
    """Evaluate a run on a split (`vaekit eval`); writes eval.json into the run directory for the main protocol,
    else a file named by its protocol beside it (see `eval_file`).
    `limit` evaluates only the first `limit` examples of the split (a quick look). `samples` > 0 also measures the
    quality of that many samples (latents from `sampler`) against as many test images (apps.sampling.sample_quality),
    with Inception FID when `inception_weights` names a local weights file. `disentanglement` adds MIG, SAP, DCI and
    the FactorVAE score of the latent means on the test split of data with known factors (shapes)."""
    from ..data.splits import model_data
    from ..evaluation import evaluate as evaluate_model

    from ..evaluation import check_importance_samples

    check_importance_samples(k)
    if limit is not None:
        check_count("--limit", limit)
    if samples:
        from .sampling import check_quality_options

        check_quality_options(samples, sampler)
    elif inception_weights is not None or sampler != "prior":
        raise ConfigError("--from and --inception-weights choose how samples are scored: add --samples N (e.g. 10000)")
    run = as_run(run)
    if samples:
        from .sampling import check_unconditional

        check_unconditional(run)
    splits = run_splits(run, data, data_dir)
    x = {"test": splits.x_test, "val": splits.x_val, "train": splits.x_train}.get(split)
    if x is None:
        raise ConfigError(f"unknown split '{split}': use test, val or train")
    if len(x) == 0:
        raise DataError(f"the {split} split is empty: choose another --split")
    if disentanglement and (splits.factors_test is None or split != "test"):
        raise DataError(f"--disentanglement needs the test split of data with known factors (--data shapes); "
                        f"this is the {split} split of {run.data.data if data is None else data}")
    y = {"test": splits.y_test, "train": splits.y_train}.get(split)
    if limit is not None:
        x, y = x[:limit], None if y is None else y[:limit]
    y_train = None if splits.y_train is None else splits.y_train[:10000]
    x_train = model_data(run.vae, run.data, splits.x_train[:10000], y_train, run.train.seed) if y is not None else None
    x = model_data(run.vae, run.data, x, y, run.train.seed)
    result = evaluate_model(run.vae, x, k=k, y=y, x_train=x_train, y_train=y_train, progress=progress,
                            seed=run.train.seed)
    if disentanglement:
        result = dataclasses.replace(result, disentanglement=_disentanglement(run, x, splits.factors_test[:len(x)]))
    if samples:
        from .sampling import sample_quality

        quality = sample_quality(run, splits, samples, sampler, inception_weights, seed=run.train.seed)
        result = dataclasses.replace(result, sample_quality=quality)
    if run.path is not None:
        written = run.path / eval_file(split, k, limit)
        write_json(written, {"split": split, "limit": limit, **result.to_dict()})
        follow_up(run.path, result.to_dict(), [written], prefix=f"{split}_")
    return result


@dataclass(frozen=True)
class Classification:
    """What `classify` found: the accuracy (None for data without labels) over n_examples, and the CSV written."""

    accuracy: float | None
    n_examples: int
    path: Path


def classify(run: Run | str | Path, data: str | None = None, data_dir: str | None = None, split: str = "test",
             out: str | Path | None = None) -> Classification:
    """Labels of a split from a semi-supervised run's classifier q(y|x) (`vaekit classify`): a CSV with each row's
    index, predicted class, its probability and the true label where known (default RUN/predictions_SPLIT.csv), and
    the accuracy where the data has labels."""
    from ..evaluation import class_probabilities, classifier_accuracy

    run = as_run(run)
    if run.vae.classifier is None:
        raise ConfigError(f"{run.path} has no classifier: classify takes a run trained with --semi-supervised")
    path = output_path(run, out, f"predictions_{split}.csv", (".csv",))
    splits = run_splits(run, data, data_dir)
    if split not in ("test", "train"):
        raise ConfigError(f"unknown split '{split}': use test or train")
    x, y = (splits.x_test, splits.y_test) if split == "test" else (splits.x_train, splits.y_train)
    if len(x) == 0:
        raise DataError(f"the {split} split is empty: choose another --split")
    probabilities = class_probabilities(run.vae, x).cpu()
    confidence, predicted = probabilities.max(-1)
    header = "row,predicted,probability" + (",label" if y is not None else "")
    lines = [f"{i},{int(label)},{float(p):.6g}" + (f",{int(y[i])}" if y is not None else "")
             for i, (label, p) in enumerate(zip(predicted, confidence))]
    atomic_write(path, "\n".join([header, *lines]) + "\n")
    accuracy = None if y is None else classifier_accuracy(probabilities, y)
    return Classification(accuracy, len(x), path)


def _disentanglement(run: Run, x, factors: np.ndarray) -> dict:
    from ..disentanglement import disentanglement
    from ..evaluation import latent_means

    codes = latent_means(run.vae, x).float().cpu().numpy()
    return disentanglement(codes, factors, seed=run.train.seed).to_dict()


def _as_array(run: Run, path: Path) -> bool:
    """Whether the outputs of `run` go to `path` as an .npy array: when it says so, or when they are no images."""
    return path.suffix == ".npy" or len(run.model.data_shape) != 3


def _check_pictures(run: Run, path: Path, n: int, what: str) -> None:
    """ConfigError unless `n` outputs of the run, and their PNG grid at `path`, fit in memory."""
    from ..limits import check_memory
    from ..plotting import grid_scale

    values = math.prod(run.model.data_shape)
    scale = 1 if _as_array(run, path) else grid_scale(run.model.data_shape[-1])
    check_memory(n * values * 4 * (2 + scale ** 2), f"{what} ({n} of {values} values each)",
                 "ask for fewer, or write an .npy file (vaekit sample streams one to disk)")


def weights_epoch(history: list[dict]) -> str:
    """Which epoch's weights a run holds, as the Trainer keeps them: the first best validation -ELBO, else the last."""
    if not history:
        return "untrained"
    scored = [row for row in history if "val_neg_elbo" in row]
    best = min(scored, key=lambda row: row["val_neg_elbo"])["epoch"] if scored else history[-1]["epoch"]
    return f"weights of epoch {best} of {history[-1]['epoch']}"


def caption(run: Run, what: str) -> str:
    """The title line of a picture of the run: what it shows, which run, which epoch's weights."""
    return f"{what} | {run.path if run.path is not None else 'run in memory'} | {weights_epoch(run.history)}"


def _save_images(run: Run, path: Path, images: torch.Tensor, columns: int | None = None,
                 title: str | None = None) -> Path:
    """PNG grid for image-shaped outputs (with the title line `title`), else .npy (also when the path says .npy); a
    PNG also goes to the run's tracker (vaekit.tracking.follow_up)."""
    from ..plotting import save_image_grid

    array = images.detach().cpu().numpy()
    if path.suffix == ".npy" or array.ndim != 4:
        return write_npy(path.with_suffix(".npy"), array)
    written = save_image_grid(path, array, columns, title)
    follow_up(run.path, files=[written])
    return written


def sample(run: Run | str | Path, n: int = 100, out: str | Path | None = None, seed: int = 0,
           label: int | None = None, sampler: str = "prior") -> Path:
    """Decode n draws from the prior into a PNG grid (or .npy) (`vaekit sample`). A label-conditional
    run draws class `label`, or without one a row per class. An .npy file is written SAMPLE_CHUNK draws at a
    time, so any n whose array fits on the disk can be drawn. `sampler` gmm or two-stage draws the latents from a
    density fitted to the training latents instead (fitted once, saved in RUN/samplers/; apps.sampling)."""
    import torch

    from ..limits import check_disk
    from .sampling import latent_draws

    check_count("-n", n)
    check_count("--seed", seed, 0)
    run = as_run(run)
    path = output_path(run, out, "samples.png", PICTURES)
    device = next(run.vae.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    columns = None
    if run.model.condition == "label":
        classes = run.model.n_classes
        if label is not None and not 0 <= label < classes:
            raise ConfigError(f"--label must be in [0, {classes}) for this run, got {label}")
        columns = None if label is not None else math.ceil(n / classes)
    elif label is not None:
        raise ConfigError("--label needs a run trained with --condition label")
    elif run.vae.condition is not None:
        tool = "denoise" if run.model.condition == "noisy" else "superres"
        raise ConfigError(f"this run is conditioned on {run.model.condition}: use 'vaekit {tool}' to sample it")

    latents = None if sampler == "prior" else latent_draws(run, lambda: run_splits(run), sampler, seed)

    def draws(start: int, stop: int) -> torch.Tensor:  # samples start..stop-1; a label run's row i is of class i // columns
        if latents is not None:
            with torch.no_grad():
                return run.vae.decode_mean(latents(stop - start, generator).to(device))
        rows = torch.arange(start, stop, device=device)
        c = None if columns is None else rows // columns
        if label is not None:
            c = torch.full_like(rows, label)
        return run.vae.sample(stop - start, generator=generator, c=c).detach()

    if _as_array(run, path):
        path = path.with_suffix(".npy")
        shape = (n, *run.model.data_shape)
        check_disk(path, 4 * math.prod(shape), f"-n {n} samples", "ask for fewer, or free space")
        chunks = (draws(start, min(n, start + SAMPLE_CHUNK)).cpu().numpy() for start in range(0, n, SAMPLE_CHUNK))
        return write_npy_chunks(path, shape, "<f4", chunks)
    _check_pictures(run, path, n, f"a grid of -n {n} samples")
    what = "samples from the prior" + (f", label {label}" if label is not None else ", a row per label" if columns
                                       else "")
    return _save_images(run, path, draws(0, n), columns, caption(run, f"{what} (seed {seed})"))


def fit_sampler(run: Run | str | Path, sampler: str = "gmm", refit: bool = False, seed: int = 0) -> Fit:
    """The latent sampler gmm or two-stage of a run, as `vaekit sample --from` uses it: loaded from RUN/samplers/, or
    fitted to the training latents (also when `refit`, or when the model changed since) and saved there."""
    from .sampling import fit_sampler as fit

    run = as_run(run)
    return fit(run, lambda: run_splits(run), sampler, refit, seed)


def sample_quality(run: Run | str | Path, n: int = 1000, sampler: str = "prior", inception_weights: str | None = None,
                   seed: int = 0, picture: bool = True) -> SampleQuality:
    """Fréchet distance, KID and precision/recall of n samples against n test images, in the features of a classifier
    fitted to the dataset (cached), as `vaekit eval --samples` measures them; with `picture`, RUN/nearest.png."""
    from .sampling import check_quality_options, sample_quality as measure

    check_quality_options(n, sampler)
    run = as_run(run)
    return measure(run, run_splits(run), n, sampler, inception_weights, seed, picture)


def reconstruct(run: Run | str | Path, n: int = 16, out: str | Path | None = None, data: str | None = None,
                data_dir: str | None = None) -> Path:
    """Test images (top rows) above their reconstructions (bottom rows) (`vaekit reconstruct`)."""
    import torch

    from ..data.splits import model_data

    check_count("-n", n)
    run = as_run(run)
    path = output_path(run, out, "reconstructions.png", PICTURES)
    splits = run_splits(run, data, data_dir)
    y = None if splits.y_test is None else splits.y_test[:n]
    x = model_data(run.vae, run.data, splits.x_test[:n], y, run.train.seed)
    x = x.to(next(run.vae.parameters()).device)
    columns = min(len(x), 8)
    shown = x if torch.is_tensor(x) else x[:].x  # the encoder's input: noisy for a denoising run
    rows = [torch.cat([shown[i:i + columns], run.vae.reconstruct(x[i:i + columns])]) for i in range(0, len(x), columns)]
    return _save_images(run, path, torch.cat(rows), columns,
                        caption(run, "test images (odd rows) above their reconstructions (even rows)"))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of a and b (batch, d) at fractions t (steps,) -> (batch, steps, d)."""
    import torch

    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(cos)[:, None, None]
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / torch.sin(omega)


def interpolate(run: Run | str | Path, out: str | Path | None = None, pairs: int = 6, steps: int = 10,
                spherical: bool = False, data: str | None = None, data_dir: str | None = None) -> Path:
    """Paths in latent space between pairs of test images, one row per pair (`vaekit interpolate`)."""
    import torch

    check_count("--pairs", pairs)
    check_count("--steps", steps, 2, "both ends of a path")
    run = as_run(run)
    if run.vae.condition is not None:
        raise ConfigError(f"interpolate needs an unconditional run; this one is conditioned on {run.model.condition}")
    target = output_path(run, out, "interpolation.png", PICTURES)
    _check_pictures(run, target, pairs * steps, f"--pairs {pairs} x --steps {steps} images")
    x = run_splits(run, data, data_dir).x_test[: 2 * pairs].to(next(run.vae.parameters()).device)
    if len(x) < 2:
        raise DataError("interpolation needs at least two test examples")
    with torch.no_grad():
        z = run.vae.encode(x).mean
        a, b = z[0::2], z[1::2][: len(z[0::2])]
        a = a[: len(b)]
        t = torch.linspace(0, 1, steps, device=z.device)
        path = slerp(a, b, t) if spherical else a[:, None] + t[None, :, None] * (b - a)[:, None]
        images = run.vae.decode_mean(path.reshape(-1, run.vae.latent_dim))
    kind = "spherical" if spherical else "straight-line"
    return _save_images(run, target, images, steps, caption(run, f"{kind} latent paths between pairs of test images"))


def embed(run: Run | str | Path, out: str | Path | None = None, data: str | None = None,
          data_dir: str | None = None, split: str = "test") -> tuple[Path, Path]:
    """Latent means of a split to .npy or .csv, plus a 2-D map coloured by label (`vaekit embed`).

    The map shows the latent itself when it is 2-D, else its first two principal components."""
    import numpy as np
    import torch

    from ..data.splits import model_data
    from ..evaluation import latent_means
    from ..plotting import save_latent_map

    run = as_run(run)
    path = output_path(run, out, "embeddings.npy")
    splits = run_splits(run, data, data_dir)
    x, y = (splits.x_test, splits.y_test) if split == "test" else (splits.x_train, splits.y_train)
    means = latent_means(run.vae, model_data(run.vae, run.data, x, y, run.train.seed)).cpu().numpy()

    if path.suffix == ".csv":
        header = ",".join(f"z{i}" for i in range(means.shape[1])) + (",label" if y is not None else "")
        table = means if y is None else np.column_stack([means, y])
        lines = [header] + [",".join(f"{v:.6g}" for v in row) for row in table]
        atomic_write(path, "\n".join(lines) + "\n")
    else:
        write_npy(path, means)
    if means.shape[1] == 2:
        points, title = means, "latent means"
    else:
        centred = torch.as_tensor(means, dtype=torch.float64) - torch.as_tensor(means, dtype=torch.float64).mean(0)
        directions = torch.linalg.svd(centred, full_matrices=False).Vh[:2]  # the two principal axes
        points, title = (centred @ directions.T).numpy(), f"PCA of {means.shape[1]}-d latent means"
    picture = save_latent_map(path.with_name("latent_map.png"), points, y, splits.class_names, title,
                              caption(run, f"latent map of the {split} split"))
    return path, picture


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
    options = _with_file(options)
    options.pop("latent_dim", None)  # a config file's, which the sizes replace as well
    out = check_output_folder(out, "--out")
    for size in latent_dims:
        _configs(options.get("preset"), {**{k: v for k, v in options.items() if k not in NOT_CONFIG},
                                         "latent_dim": size})
        check_new_folder(out / f"latent-{size}", overwrite)
    rows = []
    for size in latent_dims:
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
