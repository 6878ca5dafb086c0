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
from collections import Counter
from pathlib import Path

import numpy as np

from vaekit.errors import ConfigError, DataError

FORMATS = ".npy, .npz, .csv, IDX files or an image folder"
REFETCH = "re-download it or delete it so vaekit fetches a fresh copy"
REEXPORT = "re-export it as PNG or JPEG or remove it from the folder"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_COLUMNS = ("label", "y")

# IDX type codes (http://yann.lecun.com/exdb/mnist/), stored big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


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


def image_files(root: Path) -> list[Path]:
    """The PNG/JPEG files under `root` (recursively, hidden entries skipped), relative to it, in sorted order."""
    if not root.is_dir():
        raise DataError(f"no such folder {root}; check the path")
    relative = sorted(
        p.relative_to(root) for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not relative:
        raise DataError(f"no PNG or JPEG images in {root}; point vaekit at a folder of images or at {FORMATS}")
    return relative


def check_image_size(size) -> tuple[int, int] | None:
    """(H, W) as two positive ints, or None; anything else is a ConfigError."""
    if size is None:
        return None
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ConfigError(f"image size {size!r} must be two positive integers (H, W), e.g. --image-size 28x28")
    return int(size[0]), int(size[1])


def _open_image(path: Path):
    from PIL import Image

    try:
        return Image.open(path)
    except (OSError, Image.DecompressionBombError) as e:
        raise _unreadable(path, str(e), REEXPORT) from None


def peek_image(path: Path) -> tuple[tuple[int, int], str]:
    """(W, H) and "L" or "RGB", from the header only."""
    with _open_image(path) as image:
        return image.size, "L" if image.mode in _GRAY_MODES else "RGB"


def decode_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image as uint8 (H, W) for mode L or (H, W, 3) for RGB."""
    from PIL import Image

    with _open_image(path) as image:
        try:
            image = image.convert(mode)
            if size is not None and image.size != size[::-1]:
                image = image.resize(size[::-1], Image.Resampling.BILINEAR)
            return np.asarray(image)
        except OSError as e:
            raise _unreadable(path, str(e), REEXPORT) from None


def read_image_folder(path, size=None, grayscale: bool | None = None):
    """Read every PNG/JPEG under `path` (recursively, in sorted order; hidden entries skipped).

    If every image sits in a subfolder, the first-level subfolders are the classes and labels
    are their indices in sorted order. `size=(H, W)` resizes every image; without it all images
    must share one size. `grayscale` forces L (True) or RGB (False); by default the majority
    mode wins. Returns (x uint8 (N, H, W, C) with C 1 or 3, labels int64 (N,) or None,
    class_names tuple or None)."""
    root, size = Path(path), check_image_size(size)
    relative = image_files(root)
    headers = [peek_image(root / r) for r in relative]
    odd = next((i for i, (wh, _) in enumerate(headers) if wh != headers[0][0]), None)
    if size is None and odd is not None:
        shapes = ", ".join(f"{relative[i]} is {headers[i][0][1]}x{headers[i][0][0]}" for i in (0, odd))
        raise DataError(f"images in {root} have different sizes ({shapes}); pass --image-size HxW to resize them")
    if grayscale is None:
        modes = Counter(mode for _, mode in headers)
        grayscale = modes["L"] > modes["RGB"]
    x = np.stack([decode_image(root / r, "L" if grayscale else "RGB", size) for r in relative])
    x = x[..., None] if x.ndim == 3 else x  # (N, H, W, C)
    if not all(len(r.parts) > 1 for r in relative):
        return x, None, None
    class_names = tuple(sorted({r.parts[0] for r in relative}))
    index = {name: i for i, name in enumerate(class_names)}
    return x, np.array([index[r.parts[0]] for r in relative], dtype=np.int64), class_names
