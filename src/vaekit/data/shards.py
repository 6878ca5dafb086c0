"""Data larger than memory: rows of several .npy files read lazily through memory maps.

`NpyShards` is a dataset the Trainer accepts in place of a tensor (len() and `[index_tensor]`):
only the rows of each batch are read from disk, so each rank of a distributed job touches only
its share of every epoch. `write_npy_shards` cuts an array (or an iterable of row blocks) into
such files.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vaekit.errors import DataError


class NpyShards:
    """The rows of .npy files (a glob pattern, a folder, or a list of paths), in file-name order.

    `shards[index]` returns a float32 torch tensor (len(index), *row_shape); uint8 data is divided
    by 255 (pixels to [0, 1]) unless `scale` says otherwise. Files are opened with mmap_mode='r'.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], scale: float | None = None):
        files = _expand(paths)
        self.arrays = []
        for path in files:
            try:
                self.arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
            except (OSError, ValueError) as err:
                raise DataError(f"cannot memory-map {path} ({err}): give uncompressed .npy files") from None
        first = self.arrays[0]
        for path, array in zip(files, self.arrays):
            if array.ndim < 2 or array.shape[1:] != first.shape[1:] or array.dtype != first.dtype:
                raise DataError(f"{path} holds rows {array.shape[1:]} of {array.dtype} but {files[0]} holds "
                                f"{first.shape[1:]} of {first.dtype}: every shard needs the same row shape and dtype")
            if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
                raise DataError(f"{path} holds {array.dtype}: shards must hold real numbers")
        self.paths = files
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])  # (files + 1,) first row of each file
        self.shape = (int(self.offsets[-1]), *first.shape[1:])
        self.scale = scale if scale is not None else (1 / 255 if first.dtype == np.uint8 else 1.0)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        import torch

        rows = np.asarray(index.cpu() if torch.is_tensor(index) else index, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        rows = rows % max(len(self), 1)
        out = np.empty((rows.size, *self.shape[1:]), dtype=np.float32)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            local = rows[where] - self.offsets[s]
            order = np.argsort(local, kind="stable")  # read each file front to back
            out[where[order]] = self.arrays[s][local[order]]
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return torch.from_numpy(out)


def write_npy_shards(blocks: np.ndarray | Iterable[np.ndarray], folder: str | os.PathLike,
                     rows_per_shard: int = 100_000, prefix: str = "shard") -> list[Path]:
    """Write rows to folder/prefix-00000.npy, ... with at most rows_per_shard rows each; returns the paths.

    `blocks` is one array (N, *row_shape) or an iterable of such blocks (e.g. read chunk by chunk),
    so the whole data set never has to fit in memory.
    """
    from vaekit.io import atomic_write

    if rows_per_shard < 1:
        raise DataError(f"rows_per_shard must be positive, got {rows_per_shard}")
    folder = Path(folder)
    paths: list[Path] = []
    pending: list[np.ndarray] = []
    held = 0

    def flush(rows: np.ndarray) -> None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(rows), allow_pickle=False)
        paths.append(folder / f"{prefix}-{len(paths):05d}.npy")
        atomic_write(paths[-1], buffer.getvalue())

    for block in [blocks] if isinstance(blocks, np.ndarray) else blocks:
        block = np.asarray(block)
        while len(block):
            take = min(rows_per_shard - held, len(block))
            pending.append(block[:take])
            held += take
            block = block[take:]
            if held == rows_per_shard:
                flush(np.concatenate(pending))
                pending, held = [], 0
    if held:
        flush(np.concatenate(pending))
    if not paths:
        raise DataError("no rows to write: the data is empty")
    return paths


def _expand(paths) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        text = str(paths)
        files = sorted(glob.glob(os.path.join(text, "*.npy"))) if os.path.isdir(text) else sorted(glob.glob(text))
    else:
        files = [str(p) for p in paths]
    if not files:
        raise DataError(f"no .npy shards found at {paths}: give a folder of .npy files, a glob such as "
                        "'train-*.npy', or a list of paths")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(f"{missing[0]} not found: check the shard paths")
    return files
