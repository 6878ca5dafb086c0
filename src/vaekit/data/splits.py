"""A run's data as training saw it: the dataset loaded, split, binarized, and paired with the condition a
conditional model reads (`model_data`). The image workflow (vaekit.apps.images) and the apps built on its runs
read their tensors here."""

from __future__ import annotations

from dataclasses import dataclass
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..conditioning import PairedData, binarize, parse_corruption
from ..config import DataConfig, parse_image_size
from ..errors import ConfigError, DataError
from .datasets import DATASETS, Dataset, load_dataset, split_validation
from .streams import RowSubset, TarShards, check_streamable, hold_in_memory, open_source, read_all, stream_kind

if TYPE_CHECKING:
    from ..vae import VAE

IN_MEMORY = "<array>"
VAL_ROWS = 10_000  # at most this many rows of a streamed source are held out (in memory) for validation


@dataclass(frozen=True)
class Splits:
    """Tensors of one dataset, split and preprocessed as a run saw them."""

    x_train: torch.Tensor
    x_val: torch.Tensor
    x_test: torch.Tensor
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...] | None = None
    y_val: np.ndarray | None = None
    factors_test: np.ndarray | None = None  # (n_test, factors) indices of a dataset made from known factors
    factor_names: tuple[str, ...] | None = None


def load_splits(data: DataConfig, seed: int = 0, arrays=None) -> Splits:
    """Load and split data as `data` says; `arrays` (x, or (x, y)) replaces the named dataset."""
    if arrays is not None:
        x, y = arrays if isinstance(arrays, tuple) else (arrays, None)
        dataset = _dataset_from_array(np.asarray(x), None if y is None else np.asarray(y), seed)
    else:
        if data.data_dir is not None and not Path(data.data_dir).expanduser().is_dir():
            raise DataError(f"--data-dir {data.data_dir} is not a folder: pass the folder that holds the datasets")
        size = parse_image_size(data.image_size)
        dataset = load_dataset(data.data, data_dir=data.data_dir, image_size=size, seed=seed)
    x_train, y_train, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, data.val_fraction, seed)
    tensors = [torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32) for a in (x_train, x_val, dataset.x_test)]
    if data.binarize != "none":
        _check_unit_range(tensors[0])
        generator = torch.Generator().manual_seed(seed + 1)
        # Validation and test are binarized once with a fixed seed, the field's convention.
        start = 0 if data.binarize == "static" else 1
        tensors[start:] = [binarize(t, generator) for t in tensors[start:]]
    return Splits(*tensors, y_train, dataset.y_test, getattr(dataset, "class_names", None), y_val,
                  getattr(dataset, "factors_test", None), getattr(dataset, "factor_names", None))


def training_splits(data: DataConfig, seed: int = 0, arrays=None) -> Splits:
    """What a run trains on: `load_splits`, except that a streamed source (streams.stream_kind) too big to hold in
    memory (streams.hold_in_memory), or any under --stream always, is split by `streamed_splits` and read as needed."""
    kind = None if arrays is not None or data.data in DATASETS else stream_kind(data.data)
    check_streamable(data.column, kind)
    if kind is None or (kind == "images" and data.stream == "never"):
        return load_splits(data, seed, arrays)
    source = open_source(data.data, data.column, data.image_size, seed)
    if data.stream == "always" or (data.stream == "auto" and not hold_in_memory(source)):
        return streamed_splits(source, data, seed)
    return load_splits(data, seed, None if kind == "images" else read_all(source).numpy())


def streamed_splits(source, data: DataConfig, seed: int = 0) -> Splits:
    """A streamed source split for training: val_fraction of its rows (at most VAL_ROWS; of .tar shards, the first
    rows of the last shard) held out in memory for validation and as the test split; the rest read as needed."""
    if data.binarize == "static" or data.corrupt != "none":
        raise ConfigError(f"--{'binarize static' if data.binarize == 'static' else 'corrupt'} needs the data in memory, "
                          "but it is streamed: use --binarize dynamic or none and no --corrupt, or --stream never")
    n_val = min(VAL_ROWS, round(data.val_fraction * len(source)))
    if isinstance(source, TarShards):
        held = len(source.shards) - 1 if n_val and len(source.shards) > 1 else None
        train = source.subset([i for i in range(len(source.shards)) if i != held])
        rows = [] if held is None else list(itertools.islice(source.subset([held]), n_val))
        x_val = torch.stack(rows) if rows else torch.empty(0, *source.row_shape)
    else:
        order = np.random.default_rng(seed).permutation(len(source))
        train = RowSubset(source, np.sort(order[n_val:]))  # sorted: neighbouring rows stay neighbours on disk
        x_val = source[torch.from_numpy(np.sort(order[:n_val]))]
    if data.binarize != "none" and len(x_val):
        _check_unit_range(x_val)
        x_val = binarize(x_val, torch.Generator().manual_seed(seed + 1))
    return Splits(train, x_val, x_val, None, None)


def _dataset_from_array(x: np.ndarray, y, seed: int):
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if not np.isfinite(x).all():
        raise DataError(f"the data holds {int((~np.isfinite(x)).sum())} NaN or infinite values: clean or impute them")
    x_train, y_train, x_test, y_test = split_validation(x, y, 0.2, seed)
    return Dataset(name=IN_MEMORY, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _check_unit_range(x: torch.Tensor) -> None:
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise DataError("--binarize needs data in [0, 1]: rescale the data or use --binarize none")


def model_data(vae: VAE, data: DataConfig, x: torch.Tensor, y=None, seed: int | None = 0, binarize: bool = False):
    """x as `vae` consumes it: the tensor itself for a plain VAE, else a PairedData that adds the
    condition taken from the data (labels y, x downscaled, or x corrupted) and the corruption of `data`, drawn
    once with `seed` (None: afresh on every read, as training wants). A semi-supervised VAE takes no labels
    here: it reads them from x with its classifier (training adds the labels it keeps: LabelledData)."""
    corruption = parse_corruption(data.corrupt)
    conditioned = vae.condition is not None and vae.classifier is None
    if not conditioned and corruption is None and not (binarize and vae.classifier is not None):
        return x
    c = vae.condition.from_data(x, y) if conditioned else None
    paired = PairedData(x, c, corruption, binarize=binarize,
                        corrupt_condition=getattr(vae.condition, "corrupts", False))
    return paired if seed is None else paired.fixed(seed)
