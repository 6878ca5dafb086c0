"""Training data read as it is needed instead of loaded: the sources `vaekit train --data PATH` streams.

- a folder or glob of .npy shards (memory-mapped, `NpyShards`);
- a folder written by Hugging Face `datasets`' save_to_disk (Arrow, memory-mapped; `column` names the feature);
- WebDataset .tar shards (a folder, a glob or a brace pattern such as 'train-{000..099}.tar'): an IterableDataset
  read shard after shard, in an order shuffled per epoch, from any shard and offset;
- an image folder of any size, each image decoded when its batch is read (by DataLoader worker processes).

Every source gives float32 rows as the model reads them: uint8 scaled to [0, 1], images as (C, H, W).
Whether a source is streamed or loaded into memory is `hold_in_memory`'s rule: loaded when its float32 rows
take at most a quarter of the memory available now.
"""

from __future__ import annotations

import glob
import io
import itertools
import math
import os
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vaekit.errors import ConfigError, DataError, optional_import
from vaekit.limits import available_memory

from .datasets import as_features
from .images import check_image_size, decode_image, image_files, peek_image
from .shards import NpyShards

MEMORY_SHARE = 0.25  # of the memory available now, what data held in memory may take (training needs the rest)
SCALE_EXTRA = "vaekit[scale]"
HF_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")


def stream_kind(path: str) -> str | None:
    """Which streamed source `path` names: 'npy', 'datasets', 'tar' or 'images'; None for any other --data."""
    if any(c in path for c in "*?[{"):
        return "tar" if ".tar" in path else "npy"
    p = Path(path).expanduser()
    if p.suffix == ".tar":
        return "tar"
    if not p.is_dir():
        return None
    if any((p / marker).exists() for marker in HF_MARKERS):
        return "datasets"
    names = {child.suffix for child in p.iterdir()}
    if ".tar" in names:
        return "tar"
    if ".npy" in names:
        return "npy"
    return None if _holds_idx(p) else "images"


def _holds_idx(folder: Path) -> bool:
    return any("idx" in child.name for child in folder.iterdir())


def open_source(path: str, column: str | None = None, image_size: str | None = None, seed: int = 0):
    """The streamed dataset `path` names (see stream_kind): a map-style reader or, for .tar shards, TarShards."""
    kind = stream_kind(path)
    if kind == "npy":
        return Features(NpyShards(path), path)
    if kind == "datasets":
        return ArrowRows(path, column)
    if kind == "tar":
        return TarShards(path, column, seed=seed)
    if kind == "images":
        from vaekit.config import parse_image_size

        return ImageFiles(path, parse_image_size(image_size))
    raise DataError(f"{path} is not a streamed source: give a folder or glob of .npy shards, a datasets folder, "
                    ".tar shards or an image folder")


def row_bytes(source) -> int:
    """Bytes one row of `source` takes as float32."""
    return 4 * math.prod(source.row_shape)


def hold_in_memory(source) -> bool:
    """The rule: a source is read into memory when its float32 rows take at most MEMORY_SHARE of the memory
    available now (limits.available_memory), and streamed otherwise."""
    available = available_memory()
    return available is None or len(source) * row_bytes(source) <= MEMORY_SHARE * available


def layout(batch: np.ndarray, source) -> torch.Tensor:
    """A batch of stored rows as the model reads them: float32, uint8 scaled to [0, 1], images (N, C, H, W)."""
    return torch.from_numpy(as_features(batch, source))


class Rows:
    """What every source has: len() rows of `row_shape`, and `shape` (rows, *row_shape) as a tensor would."""

    row_shape: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.row_shape)


def read_all(source) -> torch.Tensor:
    """Every row of a source, in order, as one tensor: how a source that fits is held in memory."""
    if isinstance(source, IterableDataset):
        source.set_position(0, 0, 1)
        return torch.stack([row for shard in range(len(source.shards)) for row in source.subset([shard])])
    return source[torch.arange(len(source))]


class Features(Rows):
    """A map-style reader's rows (a tensor per `[index_tensor]`) in the model's layout (see `layout`)."""

    def __init__(self, reader, name: str):
        self.reader, self.name = reader, name
        self.row_shape = tuple(self[torch.zeros(1, dtype=torch.long)].shape[1:])

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index) -> torch.Tensor:
        rows = self.reader[index]
        return layout(rows.numpy() if torch.is_tensor(rows) else rows, self.name)


class RowSubset(Rows):
    """The rows `rows` (an int64 array) of a map-style dataset, renumbered 0..len(rows)-1."""

    def __init__(self, dataset, rows: np.ndarray):
        self.dataset, self.rows = dataset, torch.from_numpy(np.asarray(rows, dtype=np.int64))
        self.row_shape = dataset.row_shape

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> torch.Tensor:
        return self.dataset[self.rows[torch.as_tensor(index, dtype=torch.long)]]


class ArrowRows(Rows):
    """The rows of one column of a Hugging Face `datasets` folder (save_to_disk), memory-mapped by Arrow; of a
    DatasetDict, the 'train' split (or the first). `column` defaults to the first column holding arrays or images."""

    def __init__(self, path: str, column: str | None = None):
        datasets = optional_import("datasets", "a Hugging Face datasets folder", SCALE_EXTRA)
        try:
            table = datasets.load_from_disk(str(Path(path).expanduser()))
        except (FileNotFoundError, ValueError, OSError) as err:
            raise DataError(f"cannot open {path} as a datasets folder ({err}): give a folder written by "
                            "Dataset.save_to_disk") from None
        if isinstance(table, datasets.DatasetDict):
            table = table["train"] if "train" in table else table[next(iter(table))]
        if column is None:
            column = next((name for name, feature in table.features.items()
                           if not isinstance(feature, (datasets.Value, datasets.ClassLabel))), None)
        if column not in table.column_names:
            raise DataError(f"{path} has no column {column!r} to train on: pass --column, one of "
                            f"{', '.join(table.column_names)}")
        self.name, self.column = path, column
        self.dtype = _stored_dtype(table.features[column])
        self.table = table.with_format("numpy", columns=[column])
        self.row_shape = tuple(self[torch.zeros(1, dtype=torch.long)].shape[1:])

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index) -> torch.Tensor:
        rows = self.table[torch.as_tensor(index).reshape(-1).tolist()][self.column]
        if rows.dtype == object:  # rows of unequal shapes come back one array each
            rows = np.stack(list(rows))
        return layout(rows.astype(self.dtype, copy=False) if self.dtype else rows, f"{self.name} column {self.column}")


def _stored_dtype(feature) -> str | None:
    """The numpy dtype a datasets feature stores (numpy formatting widens nested lists of uint8 to int64, which would
    skip the scaling of 8-bit values); None for images, which decode to uint8 themselves."""
    while hasattr(feature, "feature"):  # List / Sequence
        feature = feature.feature
    return getattr(feature, "dtype", None) if type(feature).__name__ != "Image" else None


class ImageFiles(Rows):
    """The PNG/JPEG files under a folder (see readers.image_files), each decoded when its batch is read; all of the
    first image's size and mode (L or RGB) unless `size` (H, W) resizes them."""

    def __init__(self, path: str, size: tuple[int, int] | None = None):
        self.root = Path(path).expanduser()
        self.files = image_files(self.root)
        (width, height), self.mode = peek_image(self.root / self.files[0])
        self.size = check_image_size(size) or (height, width)
        self.row_shape = (1 if self.mode == "L" else 3, *self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index) -> torch.Tensor:
        images = [decode_image(self.root / self.files[i], self.mode, self.size)
                  for i in torch.as_tensor(index).reshape(-1).tolist()]
        return layout(np.stack(images), self.root)


class TarShards(IterableDataset, Rows):
    """The samples of WebDataset .tar shards, read with the `webdataset` package: each epoch the shards in an order
    shuffled with (seed, epoch), each read front to back. `column` is the sample's entry to train on (an extension:
    'npy', 'png', 'jpg'...; default: the first one). Shards are counted once, from their headers, for len().

    The Trainer reads an epoch through `batches(epoch, step, batch_size, rank, world)`: under `world` processes rank r
    reads only its own shards, the epoch's order dealt round-robin (order[r], order[r + world], ...), at the pace of
    the whole (`batch_bounds`), so every rank takes the same number of steps; one process reads the epoch's order in
    batches of batch_size. With DataLoader workers, worker w reads batches w, w + W, ... (it skips past the others'
    samples without decoding them), so the batches arrive in the same order with any number of workers. Iterating
    the object itself gives single rows from where `set_position` says."""

    def __init__(self, pattern: str, column: str | None = None, seed: int = 0):
        optional_import("webdataset", "WebDataset .tar shards", SCALE_EXTRA)
        self.shards = _tar_files(pattern)
        self.counts = np.array([_count_samples(shard) for shard in self.shards], dtype=np.int64)
        if not self.counts.sum():
            raise DataError(f"the .tar shards at {pattern} hold no samples")
        self.column, self.seed = column, seed
        self.epoch, self.first, self.batch_size = 0, 0, 1
        self.row_shape = tuple(next(iter(self._samples(self.shards[:1], 0))).shape)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def subset(self, shards: list[int]) -> TarShards:
        """The same reader over some of its shards (by index), e.g. to hold one out for validation."""
        part = object.__new__(TarShards)
        part.__dict__.update(self.__dict__, shards=[self.shards[i] for i in shards], counts=self.counts[shards])
        return part

    def set_position(self, epoch: int, sample: int, batch_size: int) -> None:
        """Start the next iteration in epoch `epoch` at its sample `sample` (the first of a batch of `batch_size`)."""
        if sample % batch_size:
            raise ValueError(f"sample {sample} does not start a batch of {batch_size}")
        self.epoch, self.first, self.batch_size = epoch, sample, batch_size

    def epoch_order(self, epoch: int) -> list[int]:
        """The shards' order in `epoch`: a permutation drawn from (seed, epoch) alone."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.shards), generator=generator).tolist()

    def rank_shards(self, epoch: int, world: int) -> list[list[int]]:
        """Each of `world` ranks' shards (by index) in `epoch`: the epoch's order dealt round-robin."""
        if len(self.shards) < world:
            raise DataError(f"{len(self.shards)} .tar shards cannot give each of {world} processes its own: write at "
                            f"least {world} shards (many more spread the work evenly), or run fewer processes")
        order = self.epoch_order(epoch)
        return [order[r::world] for r in range(world)]

    def batch_bounds(self, epoch: int, batch_size: int, world: int = 1) -> np.ndarray:
        """(world, steps + 1) where each rank's batches of `epoch` start among its own n_r samples: batch k is
        [n_r * c_k // n, n_r * c_(k+1) // n) with c_k = min(k * batch_size, n), so every rank takes the same
        ceil(n / batch_size) steps and the ranks' batch k together hold about batch_size samples (one process:
        exactly batch_size, the last one the rest). A rank with fewer samples than steps gets empty batches."""
        n = len(self)
        held = np.array([self.counts[shards].sum() for shards in self.rank_shards(epoch, world)], dtype=np.int64)
        cuts = np.minimum(np.arange(math.ceil(n / batch_size) + 1, dtype=np.int64) * batch_size, n)
        return held[:, None] * cuts[None, :] // n

    def batches(self, epoch: int, step: int, batch_size: int, rank: int = 0, world: int = 1):
        """Rank `rank`'s batches of `epoch` from step `step` on (see batch_bounds), each (size, *row_shape); in a
        DataLoader worker only the worker's own. An empty batch is one row of zeros, which the Trainer counts 0."""
        worker = get_worker_info()
        workers, me = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        bounds = self.batch_bounds(epoch, batch_size, world)[rank]
        mine = range(step + me, len(bounds) - 1, workers)

        def owned(sample: int) -> bool:
            return (np.searchsorted(bounds, sample, side="right") - 1 - step) % workers == me

        rows = self._rows(self.rank_shards(epoch, world)[rank], int(bounds[step]), owned)
        for k in mine:
            batch = list(itertools.islice(rows, int(bounds[k + 1] - bounds[k])))
            if len(batch) < bounds[k + 1] - bounds[k]:
                raise DataError("the .tar shards ended before the samples their file names count: keep each sample's "
                                "files next to each other in its shard, named KEY.EXTENSION")
            yield torch.stack(batch) if batch else torch.zeros(1, *self.row_shape)

    def __iter__(self):
        for batch in self.batches(self.epoch, self.first // self.batch_size, self.batch_size):
            yield from batch

    def _rows(self, shards: list[int], first: int, wanted):
        """The decoded samples of `shards` read one after the other, from sample `first` of them on, where
        wanted(its number among them)."""
        starts = np.concatenate([[0], np.cumsum(self.counts[shards])])  # (shards + 1,) first sample of each
        for place, shard in enumerate(shards):
            if starts[place + 1] > first:  # a shard before the start is not even opened
                yield from self._samples([self.shards[shard]], max(first - starts[place], 0),
                                         lambda k, begin=starts[place]: wanted(begin + k))

    def _samples(self, shards: list[str], offset: int, mine=lambda k: True):
        """The decoded rows of `shards` from sample `offset` of the first on; sample k (its number in the first
        shard) only where mine(k)."""
        import webdataset

        reader = webdataset.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=None,
                                       empty_check=False)
        for k, sample in enumerate(reader):
            if k >= offset and mine(k):
                yield self._decode(sample)

    def _decode(self, sample: dict) -> torch.Tensor:
        entries = [key for key in sample if not key.startswith("__")]
        key = self.column if self.column is not None else entries[0]
        if key not in sample:
            raise DataError(f"a sample of {sample.get('__url__')} has no entry {key!r}: pass --column, one of "
                            f"{', '.join(entries)}")
        data = sample[key]
        if key.endswith("npy"):
            row = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                row = np.asarray(image)
        return layout(row[None], sample.get("__url__"))[0]


def _tar_files(pattern: str) -> list[str]:
    path = Path(pattern).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.glob("*.tar"))
    elif "{" in pattern:
        from webdataset.shardlists import expand_urls

        files = expand_urls(pattern)
    else:
        files = sorted(glob.glob(os.path.expanduser(pattern)))
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise DataError(f"no .tar shards at {missing[0] if missing else pattern}: give a folder of .tar files, a glob "
                        "such as 'train-*.tar' or a brace pattern such as 'train-{000..099}.tar'")
    return files


def _count_samples(shard: str) -> int:
    """Samples in a WebDataset shard: the distinct keys (names up to the first dot) of its files, read from the
    headers alone."""
    try:
        with tarfile.open(shard) as tar:
            keys = {member.name.split(".", 1)[0] for member in tar if member.isfile()}
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"cannot read {shard} ({err}): give uncompressed .tar shards") from None
    return len(keys)


def check_streamable(column: str | None, kind: str | None) -> None:
    """--column names a datasets column or a .tar sample's entry; elsewhere it is a mistake."""
    if column is not None and kind not in ("datasets", "tar"):
        raise ConfigError("--column applies to a datasets folder or .tar shards: drop it")
