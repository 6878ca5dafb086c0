"""Datasets as float32 arrays: the built-ins (fashion-mnist, mnist, digits, shapes) and any file or
folder the readers understand, split into train and test."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from vaekit.data.download import download as fetch
from vaekit.data.readers import read_data, read_idx
from vaekit.data.shapes import DEFAULT_EXAMPLES, FACTOR_NAMES, SHAPE_NAMES, make_shapes
from vaekit.errors import ConfigError, DataError, optional_import
from vaekit.io import atomic_open, cache_dir


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split. x is float32, (N, C, H, W) for images or (N, D) for flat data, with
    uint8 sources scaled to [0, 1]; y is int64 (N,) or None. A dataset generated from known factors
    (shapes) also holds each example's factor indices, int64 (N, factors), named by factor_names."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: tuple[str, ...] | None = None
    factors_train: np.ndarray | None = None
    factors_test: np.ndarray | None = None
    factor_names: tuple[str, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) for image data, None for flat data."""
        return self.x_train.shape[1:] if self.x_train.ndim == 4 else None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one example: (C, H, W) or (D,)."""
        return self.x_train.shape[1:]


@dataclass(frozen=True)
class DatasetSource:
    """Where a built-in IDX dataset comes from: base URLs tried in order, the sha256 of each
    file's decompressed content, and optionally a system folder and the Debian package that
    fills it."""

    base_urls: tuple[str, ...]
    files: dict[str, str]
    class_names: tuple[str, ...] | None = None
    system_dir: str | None = None
    package: str | None = None


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_DIGITS = tuple("0123456789")

SOURCES = {
    "fashion-mnist": DatasetSource(
        base_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
        files=dict(zip(IDX_FILES, (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ))),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        system_dir="/usr/share/datasets/fashion-mnist",
        package="dataset-fashion-mnist",
    ),
    "mnist": DatasetSource(
        base_urls=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        files=dict(zip(IDX_FILES, (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ))),
        class_names=_DIGITS,
    ),
}


def split_validation(x: np.ndarray, y: np.ndarray | None, fraction: float, seed: int = 0):
    """Hold out round(N * fraction) random examples, deterministic given `seed`; both parts
    keep their original order. Returns (x_train, y_train, x_val, y_val), the y's None when y
    is None; fraction 0 gives empty (0, ...) validation arrays."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"split fraction {fraction!r} must be at least 0 and below 1")
    n = len(x)
    n_val = round(n * fraction)
    if n - n_val < 1:
        raise DataError(f"{n} examples are too few to hold out {fraction:.0%}; add data or lower the fraction")
    order = np.random.default_rng(seed).permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    y_train, y_val = (None, None) if y is None else (y[train], y[val])
    return x[train], y_train, x[val], y_val


def as_features(x: np.ndarray, source) -> np.ndarray:
    """float32 (N, D) or (N, C, H, W); uint8 is scaled by 1/255, other numbers kept as they are."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source} holds {x.dtype} values; vaekit needs numeric data")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 2 or x.ndim == 4 and x.shape[1] in (1, 3, 4)):
        raise DataError(f"{source} has shape {x.shape}; vaekit needs (N, D) features or images as (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4")
    if x.dtype == np.uint8:
        return np.divide(x, np.float32(255), out=np.empty(x.shape, np.float32))
    out = np.ascontiguousarray(x, dtype=np.float32)
    if bad := out.size - np.count_nonzero(np.isfinite(out)):
        raise DataError(f"{source} has {bad} NaN or infinite values; fill or drop them first")
    return out


def _as_labels(y: np.ndarray | None, n: int, source) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{source} has labels of shape {y.shape} for {n} examples; give one label per example")
    if y.dtype.kind not in "biu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise DataError(f"{source} has labels that are not whole numbers; encode classes as 0, 1, 2, ...")
    return y.astype(np.int64)


def _split_dataset(name, x, y, class_names, test_fraction, seed) -> Dataset:
    x_train, y_train, x_test, y_test = split_validation(x, y, test_fraction, seed)
    return Dataset(name, x_train, y_train, x_test, y_test, class_names)


def _find_idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files in `folder`, each gzipped or raw, or None if any is missing."""
    found = [next((p for p in (folder / f, folder / f.removesuffix(".gz")) if p.is_file()), None)
             for f in IDX_FILES]
    return None if None in found else found


def _save_quietly(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz atomically and drop older siblings; skipped if the folder is not writable."""
    try:
        with atomic_open(path) as f:
            np.savez(f, **arrays)
        for stale in path.parent.glob("decoded-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        pass


def _decode_idx(name: str, paths: list[Path]) -> list[np.ndarray]:
    """The stored arrays of `paths`, keyed by each source's path, size and mtime, so a changed source is decoded
    again."""
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    return _through_cache(name, stats, lambda: [read_idx(p) for p in paths])


def _through_cache(name: str, source, read) -> list[np.ndarray]:
    """The arrays `read()` returns, kept in a decoded .npz in the cache whose name hashes `source` (what identifies
    the data's origin), so the next run loads them with numpy alone."""
    decoded = cache_dir() / name / f"decoded-{hashlib.sha256(repr(source).encode()).hexdigest()[:16]}.npz"
    try:
        with np.load(decoded, allow_pickle=False) as archive:
            return [archive[f"array{i}"] for i in range(len(archive.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    arrays = read()
    _save_quietly(decoded, {f"array{i}": array for i, array in enumerate(arrays)})
    return arrays


def _idx_dataset(name: str, paths: list[Path], class_names=None) -> Dataset:
    x_train, y_train, x_test, y_test = _decode_idx(name, paths)
    return Dataset(
        name,
        as_features(x_train, paths[0]), _as_labels(y_train, len(x_train), paths[1]),
        as_features(x_test, paths[2]), _as_labels(y_test, len(x_test), paths[3]),
        class_names,
    )


def _locate(name: str, data_dir, download: bool) -> list[Path]:
    """The IDX files of built-in `name`: the first complete folder among data_dir/<name>,
    $VAEKIT_DATA/<name>, the system folder and the cache, else downloaded into the cache."""
    source = SOURCES[name]
    folders = [Path(d).expanduser() / name for d in (data_dir, os.environ.get("VAEKIT_DATA")) if d]
    folders += [Path(source.system_dir)] if source.system_dir else []
    folders.append(cache_dir() / name)
    for folder in folders:
        if found := _find_idx_files(folder):
            return found
    if not download:
        apt = f"install it with `apt-get install {source.package}`, " if source.package else ""
        raise DataError(f"{name} not found in {', '.join(map(str, folders))}; {apt}put its four IDX files in DIR/{name} and pass --data-dir DIR, or allow downloading")
    cached = folders[-1]
    return [_fetch_one(source, cached / f) for f in IDX_FILES]


def _fetch_one(source: DatasetSource, dest: Path) -> Path:
    if dest.is_file():
        return dest
    error = DataError(f"no download address for {dest.name}; pass --data-dir DIR")
    for base in source.base_urls:
        try:
            return fetch(base + dest.name, dest, content_sha256=source.files[dest.name])
        except DataError as e:
            error = e
    raise error


def _load_idx(name: str, *, data_dir, test_fraction, seed, download) -> Dataset:
    return _idx_dataset(name, _locate(name, data_dir, download), SOURCES[name].class_names)


def _load_digits(*, data_dir, test_fraction, seed, download) -> Dataset:
    # Cached by scikit-learn's version and place: importing it to read 1,797 images takes ~2 s, numpy's load ~0.02.
    x, y = _through_cache("digits", _installed("scikit-learn"), _read_digits)
    return _split_dataset("digits", x, y, _DIGITS, test_fraction, seed)


def _read_digits() -> list[np.ndarray]:
    digits = optional_import("sklearn.datasets", "the digits dataset (it ships with scikit-learn)",
                             "scikit-learn").load_digits()
    return [(digits.images / 16).astype(np.float32)[:, None], digits.target.astype(np.int64)]  # values 0..16 there


def _installed(distribution: str) -> tuple[str, str] | None:
    """(version, folder) of an installed distribution, read without importing it; None where it is missing."""
    from importlib import metadata

    try:
        found = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    return found.version, str(found.locate_file(""))


def _load_shapes(*, data_dir, test_fraction, seed, download, n: int = DEFAULT_EXAMPLES) -> Dataset:
    x, factors = make_shapes(n)  # (n, 1, 64, 64), (n, 5)
    train, _, test, _ = split_validation(np.arange(n), None, test_fraction, seed)
    return Dataset("shapes", x[train], factors[train, 0], x[test], factors[test, 0], SHAPE_NAMES,
                   factors[train], factors[test], FACTOR_NAMES)


# name -> loader(*, data_dir, test_fraction, seed, download) -> Dataset. Datasets with a split
# of their own (the IDX ones) ignore test_fraction and seed.
DATASETS = {
    "fashion-mnist": partial(_load_idx, "fashion-mnist"),
    "mnist": partial(_load_idx, "mnist"),
    "digits": _load_digits,
    "shapes": _load_shapes,
}
# Generated built-ins whose size `NAME:N` chooses (N examples, split into train and test).
SIZED = {"shapes": _load_shapes}


def _sized_loader(spec: str):
    """The loader of `NAME:N` for a generated built-in NAME, else None."""
    name, colon, count = spec.partition(":")
    if not colon or name not in SIZED:
        return None
    if not count.isdigit() or not 2 <= int(count) <= 10_000_000:
        raise ConfigError(f"--data {spec}: the number of examples after '{name}:' must be 2..10,000,000, e.g. {name}:20000")
    return partial(SIZED[name], n=int(count))


def dataset_names() -> tuple[str, ...]:
    """The names of the built-in datasets."""
    return tuple(DATASETS)


def load_dataset(name_or_path: str, data_dir: str | None = None, image_size=None,
                 test_fraction: float = 0.2, seed: int = 0, download: bool = True) -> Dataset:
    """Load a built-in dataset by name, or a dataset from a path: .npy, .npz, .csv, an IDX file,
    a folder holding the four MNIST-style IDX files, or an image folder (class subfolders give
    labels; `image_size=(H, W)` resizes). `shapes:N` makes the generated shapes dataset with N examples
    (data.shapes; plain `shapes` has 20,000). Paths without a test split of their own lose
    `test_fraction` of their examples to the test set, chosen with `seed`.

    Arrays of shape (N, D) stay flat, (N, H, W) become (N, 1, H, W) and (N, H, W, C) with C in
    1, 3, 4 become (N, C, H, W). uint8 data is scaled by 1/255; other numbers are kept as they
    are and must be finite. The IDX built-ins are looked up in data_dir/<name>,
    $VAEKIT_DATA/<name>, the system folder (fashion-mnist: /usr/share/datasets/fashion-mnist)
    and the cache (see `cache_dir`), in that order, and downloaded into the cache if missing
    and `download` is true."""
    loader, path = DATASETS.get(name_or_path) or _sized_loader(name_or_path), Path(name_or_path).expanduser()
    if loader is None and not path.exists():
        raise DataError(f"unknown dataset {name_or_path!r}: use one of {', '.join(DATASETS)}, or a path to .npy/.npz/.csv/IDX/an image folder")
    idx_files = _find_idx_files(path) if loader is None and path.is_dir() else None
    if image_size is not None and (loader or idx_files or not path.is_dir()):
        raise ConfigError(f"--image-size applies to image folders, not to {name_or_path}; drop it")
    if loader:
        return loader(data_dir=data_dir, test_fraction=test_fraction, seed=seed, download=download)
    if idx_files:
        return _idx_dataset(path.name, idx_files)
    x, y, class_names = read_data(path, image_size)
    x = as_features(x, path)
    return _split_dataset(path.name, x, _as_labels(y, len(x), path), class_names, test_fraction, seed)
