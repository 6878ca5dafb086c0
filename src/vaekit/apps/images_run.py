"""A saved image run read back: `Run`, `load_run` and what the commands on a run share (its data splits, where
its outputs go, the caption of its pictures). vaekit.apps.images writes runs and re-exports these names.

torch and the core are imported inside the functions, as in every app: the CLI reads their signatures for --help.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import FORMAT_VERSION, DataConfig, ModelConfig, TrainConfig, from_dict
from ..errors import CheckpointError, ConfigError, DataError
from ..saved import check_output_file, check_output_folder, read_config

if TYPE_CHECKING:
    from ..data.splits import Splits
    from ..vae import VAE


KIND = "core"  # config.json's kind (vaekit.saved): a run of the core VAE, images or not


@dataclass
class Run:
    """A trained model with its configs, on the device it was loaded to."""

    path: Path | None
    vae: VAE
    model: ModelConfig
    train: TrainConfig
    data: DataConfig
    history: list[dict]


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
        # Runs saved before flow_context existed had IAF steps without a context.
        saved["model"] = {"flow_context": False, **saved["model"]}
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
    run = Run(path, vae, model_cfg, train_cfg, data_cfg, history)
    if weights and model_cfg.bottleneck != "gaussian":
        from .code_prior import attach_code_prior

        attach_code_prior(run)  # codes drawn and counted under the learned prior `vaekit train-prior` fitted
    return run


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
