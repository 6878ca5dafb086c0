"""Readers that turn the user's files into numpy arrays: IDX (raw or gzipped), .npy, .npz,
numeric .csv and folders of PNG/JPEG images. They return arrays as stored; scaling and
layout belong to `vaekit.data.datasets`."""

from __future__ import annotations

import csv
import gzip
import math
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from vaekit.errors import DataError

from vaekit.data.images import FORMATS, check_image_size, image_files, read_image_files

REFETCH = "re-download it or delete it so vaekit fetches a fresh copy"
LABEL_COLUMNS = ("label", "y")

# IDX type codes (http://yann.lecun.com/exdb/mnist/), stored big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _unreadable(path, reason: str, fix: str = REFETCH) -> DataError:
    return DataError(f"cannot read {path}: {reason}; {fix}")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such file {path}; check the path") from None
    except OSError as e:
        raise _unreadable(path, e.strerror or str(e), "check that it is a readable file") from None


def decompress(raw: bytes) -> bytes:
    """`raw`, decompressed if it is gzip (by its magic bytes); ValueError with a short reason
    if the gzip stream is truncated or corrupt."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise ValueError("truncated gzip stream") from None
    except (OSError, zlib.error) as e:
        raise ValueError(f"corrupt gzip stream ({e})") from None


def read_bytes(path) -> bytes:
    """The content of the file at `path`, decompressed if it is gzipped."""
    path = Path(path)
    try:
        return decompress(_read_file(path))
    except ValueError as e:
        raise _unreadable(path, str(e)) from None


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST format), raw or gzipped, into an array of the stored shape and
    type in native byte order, e.g. uint8 (N, 28, 28) for images and (N,) for labels."""
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0":
        raise DataError(f"{path} is not an IDX file (bad magic number); vaekit reads {FORMATS}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES or ndim == 0:
        raise _unreadable(path, f"unknown IDX type code 0x{code:02x} or rank {ndim}")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise _unreadable(path, "file ends inside the IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - start != expected:
        reason = f"payload is {len(data) - start} bytes but the header {dims} needs {expected}"
        raise _unreadable(path, reason)
    array = np.frombuffer(data, dtype, offset=start).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def read_arrays(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read features and optional labels from .npy (features only), .npz (keys `x`/`X` and
    optional `y`/`labels`, or a single array) or numeric .csv (optional header; a column named
    `label` or `y` becomes the labels). Returns (x, y) as stored, y of shape (N,) or None."""
    path = Path(path)
    reader = _ARRAY_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"cannot read {path}: unknown file type; vaekit reads {FORMATS}")
    if not path.is_file():
        raise DataError(f"no such file {path}; check the path")
    return reader(path)


def _read_npy(path: Path) -> tuple[np.ndarray, None]:
    try:
        return np.load(path, allow_pickle=False), None
    except (OSError, ValueError, EOFError) as e:
        raise _unreadable(path, str(e), "save it with numpy.save from a numeric array") from None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise _unreadable(path, str(e), "save it with numpy.savez(path, x=..., y=...)") from None
    if len(arrays) == 1:
        return next(iter(arrays.values())), None
    x = next((arrays[k] for k in ("x", "X") if k in arrays), None)
    if x is None:
        keys = ", ".join(sorted(arrays)) or "none"
        raise DataError(f"{path} has arrays {keys} but no 'x'; save the features under the key 'x'")
    y = next((arrays[k] for k in ("y", "labels") if k in arrays), None)
    return x, y


def is_number(cell: str) -> bool:
    """True when a CSV cell parses as a float."""
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with open(path, newline="") as f:
            first = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError) as e:
        raise _unreadable(path, str(e), "save it as a UTF-8 CSV file") from None
    header = [c.strip() for c in first] if first and not any(map(is_number, first)) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
            table = np.loadtxt(path, delimiter=",", skiprows=int(header is not None), ndmin=2,
                               dtype=np.float64, quotechar='"')
    except ValueError:
        raise _bad_csv_cell(path, header) from None
    if table.size == 0:
        raise DataError(f"{path} has no data rows; add rows of numbers")
    label = next((i for i, name in enumerate(header or ()) if name.lower() in LABEL_COLUMNS), None)
    if label is None:
        return table, None
    if table.shape[1] == 1:
        raise DataError(f"{path} has only a label column; add feature columns")
    return np.delete(table, label, axis=1), table[:, label]


def _bad_csv_cell(path: Path, header: list[str] | None) -> DataError:
    """Find the first cell numpy refused, to name it in a one-line error."""
    with open(path, newline="") as f:
        rows = csv.reader(f)
        width = len(header) if header else None
        for line, row in enumerate(rows, start=1):
            if line == 1 and header is not None or not row:
                continue
            width = width or len(row)
            if len(row) != width:
                return DataError(f"{path} row {line} has {len(row)} cells, expected {width}; make every row the same length")
            for column, cell in enumerate(row):
                if not is_number(cell):
                    name = repr(header[column]) if header else column + 1
                    what = "is empty" if not cell.strip() else f"holds {cell.strip()!r}, not a number"
                    return DataError(f"{path} row {line} column {name} {what}; vaekit reads numeric CSV only, so fill gaps and encode categories as numbers")
    return _unreadable(path, "malformed CSV", "save it as comma-separated numbers")


_ARRAY_READERS = {".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv}
ARRAY_SUFFIXES = tuple(_ARRAY_READERS)


def read_image_folder(path, size=None, grayscale: bool | None = None):
    """Read every PNG/JPEG under `path` (recursively, in sorted order; hidden entries skipped) with
    vaekit.data.images' reader.

    If every image sits in a subfolder, the first-level subfolders are the classes and labels
    are their indices in sorted order. `size=(H, W)` resizes every image; without it all images
    must share one size. `grayscale` forces L (True) or RGB (False); by default the majority
    mode wins. Returns (x uint8 (N, H, W, C) with C 1 or 3, labels int64 (N,) or None,
    class_names tuple or None)."""
    root, size = Path(path), check_image_size(size)
    relative = image_files(root)
    x = read_image_files(root, relative, None if grayscale is None else "L" if grayscale else "RGB", size)
    if not all(len(r.parts) > 1 for r in relative):
        return x, None, None
    class_names = tuple(sorted({r.parts[0] for r in relative}))
    index = {name: i for i, name in enumerate(class_names)}
    return x, np.array([index[r.parts[0]] for r in relative], dtype=np.int64), class_names


def read_data(path, image_size=None) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
    """The arrays stored at `path`, as stored: an image folder's (see `read_image_folder`, resized to `image_size`),
    a .npy/.npz/.csv file's (`read_arrays`) or an IDX file's. Returns (x, y or None, class_names or None)."""
    path = Path(path)
    if path.is_dir():
        return read_image_folder(path, image_size)
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return (*read_arrays(path), None)
    return read_idx(path), None, None
