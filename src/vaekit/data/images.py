"""Image files in, tensors out, for the applications that take a user's pictures (restoration).
Imports numpy, torch and Pillow when first used."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_images(source: str | Path, channels: int):
    """Images from a .png/.jpg file, a .npy array ((H, W), (N, H, W) or (N, C, H, W), values in
    [0, 1] or uint8) or a folder of image files -> ((N, C, H, W) float tensor in [0, 1], names)."""
    import numpy as np
    import torch

    from ..errors import DataError

    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        arrays = [_read_image(p, channels) for p in files]
        if len({a.shape for a in arrays}) > 1:
            raise DataError(f"the images in {source} differ in size: give images of one size")
        return torch.as_tensor(np.stack(arrays)), [p.stem for p in files]
    if not source.exists():
        raise DataError(f"{source} not found: give a .png/.jpg image, a .npy array or a folder of images")
    if source.suffix.lower() == ".npy":
        array = np.load(source, allow_pickle=False)
        array = array.astype(np.float32) / 255 if array.dtype == np.uint8 else array.astype(np.float32)
        array = array.reshape((1,) * (4 - array.ndim) + array.shape) if array.ndim < 4 else array
        if array.ndim != 4 or array.shape[1] != channels or not np.isfinite(array).all():
            raise DataError(f"{source} holds an array of shape {array.shape}: give finite (N, {channels}, H, W) images")
        return torch.as_tensor(array), [f"{source.stem}_{i}" for i in range(len(array))]
    if source.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"cannot read {source}: give a .png/.jpg image, a .npy array or a folder of images")
    return torch.as_tensor(_read_image(source, channels))[None], [source.stem]


def _read_image(path: Path, channels: int):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ..errors import DataError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path} ({err}): give a valid image file") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
