"""Image files in, arrays and tensors out: the one reader of image files. A folder (recursively or not), a glob
pattern or a single file (`find_images`) is read as one uint8 array (`read_image_files`): grayscale or RGB (or the
majority's mode), all of one size or resized to one. Training folders (readers.read_image_folder), streamed folders
(streams) and the pictures restoration takes (`read_images`) all read through it. Imports torch and Pillow when
first used."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

FOLDER_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a folder of training images holds
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # what restoration takes
KINDS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF",
         ".tiff": "TIFF", ".webp": "WebP"}  # a suffix's name in messages
FORMATS = ".npy, .npz, .csv, IDX files or an image folder"  # what vaekit reads as data
REEXPORT = "re-export it as PNG or JPEG or remove it from the folder"
RESTORE_INPUTS = "give a .png/.jpg image, a glob of them, a .npy array or a folder of images"
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _kinds(suffixes: tuple[str, ...]) -> str:
    """'PNG or JPEG' for the suffixes (.png, .jpg, .jpeg)."""
    names = list(dict.fromkeys(KINDS.get(suffix, suffix) for suffix in suffixes))
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
def image_files(root: Path, suffixes: tuple[str, ...] = FOLDER_SUFFIXES, recursive: bool = True,
                hint: str = f"point vaekit at a folder of images or at {FORMATS}") -> list[Path]:
    """The image files under `root` (recursively unless not `recursive`, hidden entries skipped), relative to it,
    in sorted order; a DataError ending in `hint` when there are none."""
    if not root.is_dir():
        raise DataError(f"no such folder {root}; check the path")
    relative = sorted(
        p.relative_to(root) for p in (root.rglob("*") if recursive else root.iterdir())
        if p.suffix.lower() in suffixes and p.is_file() and not _hidden(p.relative_to(root))
    )
    if not relative:
        raise DataError(f"no {_kinds(suffixes)} images in {root}; {hint}")
    return relative


def _hidden(relative: Path) -> bool:
    """Whether a path below a root passes through a hidden entry (a name starting with a dot)."""
    return any(part.startswith(".") for part in relative.parts)


def check_image_size(size) -> tuple[int, int] | None:
    """(H, W) as two positive ints, or None; anything else is a ConfigError."""
    if size is None:
        return None
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ConfigError(f"image size {size!r} must be two positive integers (H, W), e.g. --image-size 28x28")
    return int(size[0]), int(size[1])


def _unreadable(path: Path, error: Exception) -> DataError:
    return DataError(f"cannot read {path}: {error}; {REEXPORT}")


def _open_image(path: Path):
    from PIL import Image

    try:
        return Image.open(path)
    except (OSError, Image.DecompressionBombError) as e:
        raise _unreadable(path, e) from None


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
            raise _unreadable(path, e) from None


def find_images(source: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, recursive: bool = False,
                hint: str = RESTORE_INPUTS) -> tuple[Path, list[Path]]:
    """(root, the image files of `source` relative to it, sorted): a folder's (see `image_files`), a glob pattern's
    matches (e.g. 'scans/*.png'; the root is the pattern's folder; hidden entries only where the pattern names them,
    as in a shell) or a single file; a DataError ending in `hint` when there are none."""
    source = Path(source)
    if source.is_dir():
        return source, image_files(source, suffixes, recursive, hint)
    if any(char in str(source) for char in "*?["):
        fixed = next((i for i, part in enumerate(source.parts) if any(char in part for char in "*?[")))
        root = Path(*source.parts[:fixed]) if fixed else Path(".")
        pattern = Path(*source.parts[fixed:])
        named = _hidden(pattern)  # as a shell's glob: hidden entries only where the pattern names them ('.*.png')
        relative = sorted(path.relative_to(root) for path in root.glob(str(pattern))
                          if path.suffix.lower() in suffixes and path.is_file()
                          and (named or not _hidden(path.relative_to(root))))
        if not relative:
            raise DataError(f"no {_kinds(suffixes)} images match {source}: {hint}")
        return root, relative
    if not source.exists():
        raise DataError(f"{source} not found: {hint}")
    if source.suffix.lower() not in suffixes:
        raise DataError(f"cannot read {source}: {hint}")
    return source.parent, [Path(source.name)]


def read_image_files(root: Path, relative: list[Path], mode: str | None = None, size=None,
                     fix: str = "pass --image-size HxW to resize them") -> np.ndarray:
    """The images root/r for r in `relative` as uint8 (N, H, W, C): C 1 for mode "L", 3 for "RGB", and without a
    mode the one most of them have. `size` (H, W) resizes each (bilinear); without it they must share one size,
    else a DataError naming two that differ and ending in `fix`. An unreadable file is a DataError naming it."""
    size = check_image_size(size)
    headers = [peek_image(root / r) for r in relative]
    odd = next((i for i, (wh, _) in enumerate(headers) if wh != headers[0][0]), None)
    if size is None and odd is not None:
        shapes = ", ".join(f"{relative[i]} is {headers[i][0][1]}x{headers[i][0][0]}" for i in (0, odd))
        raise DataError(f"images in {root} have different sizes ({shapes}); {fix}")
    if mode is None:
        modes = Counter(mode for _, mode in headers)
        mode = "L" if modes["L"] > modes["RGB"] else "RGB"
    x = np.stack([decode_image(root / r, mode, size) for r in relative])
    return x[..., None] if x.ndim == 3 else x  # (N, H, W, C)


def output_names(relative: list[Path]) -> list[str]:
    """What the outputs made from the image files `relative` (paths relative to their source's root, see
    `find_images`) are called, one distinct name each: the relative path without its suffix, so that a glob across
    folders ('scans/*/*.png') keeps its subfolders and a/001.png, b/001.png give 'a/001' and 'b/001' (a mirrored
    layout, as a recursive copy makes), with the suffix kept where two files differ only by it ('001.png',
    '001.jpg'). A DataError if two names still coincide."""
    stems = [r.with_suffix("").as_posix() for r in relative]
    twice = {stem for stem, count in Counter(stems).items() if count > 1}
    names = [r.as_posix() if stem in twice else stem for r, stem in zip(relative, stems)]
    seen: dict[str, Path] = {}
    for r, name in zip(relative, names):
        if name in seen:
            raise DataError(f"{seen[name]} and {r} would both be written as '{name}': rename one of them")
        seen[name] = r
    return names


def read_images(source: str | Path, channels: int):
    """Images from an image file, a glob pattern of them (e.g. 'scans/*.png'), a folder of image files (not its
    subfolders) or a .npy array ((H, W), (N, H, W) or (N, C, H, W), values in [0, 1] or uint8), as `channels`
    channels -> ((N, C, H, W) float tensor in [0, 1], names): each image's distinct name for what is written from
    it (`output_names`: 'a/001' for a glob's scans/a/001.png), a .npy array's rows STEM_0, STEM_1, ..."""
    import torch

    source = Path(source)
    if source.suffix.lower() == ".npy" and source.is_file():
        array = np.load(source, allow_pickle=False)
        array = array.astype(np.float32) / 255 if array.dtype == np.uint8 else array.astype(np.float32)
        array = array.reshape((1,) * (4 - array.ndim) + array.shape) if array.ndim < 4 else array
        if array.ndim != 4 or array.shape[1] != channels or not np.isfinite(array).all():
            raise DataError(f"{source} holds an array of shape {array.shape}: give finite (N, {channels}, H, W) images")
        return torch.as_tensor(array), [f"{source.stem}_{i}" for i in range(len(array))]
    root, relative = find_images(source)
    names = output_names(relative)
    x = read_image_files(root, relative, "L" if channels == 1 else "RGB", fix="give images of one size")
    return torch.as_tensor(x.transpose(0, 3, 1, 2).astype(np.float32) / 255), names
