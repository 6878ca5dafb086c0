"""Pictures: image grids (Pillow), training curves, latent maps and trade-off plots (matplotlib, Agg).

Every writer saves atomically and returns the path it wrote."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .io import atomic_write


def _save_png(path: str | Path, image) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())
    return Path(path)


def save_figure(path: str | Path, fig, caption: str | None = None) -> Path:
    """Write a matplotlib figure as a PNG, atomically, and close it; `caption` is its title line (what, which run,
    which epoch) above everything."""
    import matplotlib.pyplot as plt

    if caption:
        fig.suptitle(caption, fontsize=10, y=1.0, va="bottom")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return Path(path)


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2, scale: int = 2) -> np.ndarray:
    """Tile images (N, C, H, W) with values in [0, 1] into one uint8 (rows*H, cols*W, C) array."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    n, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones(((height + padding) * rows + padding, (width + padding) * columns + padding, channels), np.float32)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top:top + height, left:left + width] = image.transpose(1, 2, 0)
    grid = (grid * 255).round().astype(np.uint8)
    return np.kron(grid, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else grid


def grid_scale(width: int) -> int:
    """How many times `save_image_grid` enlarges images `width` pixels wide: small ones to about 56 pixels."""
    return max(1, 56 // width)


def save_image_grid(path: str | Path, images: np.ndarray, columns: int | None = None,
                    caption: str | None = None) -> Path:
    """Write images (N, C, H, W) in [0, 1] as a PNG grid; grey for C=1, RGB for C=3; `caption` (what, which run,
    which epoch) is written in a white band above the grid."""
    from PIL import Image

    grid = image_grid(images, columns, scale=grid_scale(images.shape[-1]))
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid[..., :3])
    return _save_png(path, with_caption(image, caption) if caption else image)


def with_caption(image, caption: str):
    """A PIL image with `caption` in black on a white band above it (widened to the text where it is narrower)."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1: the bitmap font of one size
        font = ImageFont.load_default()
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((0, 0), caption, font=font)
    band = bottom - top + 8
    framed = Image.new(image.mode, (max(image.width, right - left + 8), image.height + band), "white")
    framed.paste(image, (0, band))
    ImageDraw.Draw(framed).text((4 - left, 4 - top), caption, fill="black", font=font)
    return framed


def save_curves(path: str | Path, history: list[dict], caption: str | None = None) -> Path:
    """Training curves: -ELBO (train loss and validation), reconstruction and KL per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    style = {"marker": "o", "markersize": 3}  # markers keep a one-epoch run visible
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [row["loss"] for row in history], label="train loss", **style)
    if "val_neg_elbo" in history[0]:
        axes[0].plot(epochs, [row["val_neg_elbo"] for row in history], label="validation -ELBO", **style)
    axes[1].plot(epochs, [-row["reconstruction"] for row in history], label="train", **style)
    axes[2].plot(epochs, [row["kl"] for row in history], label="train", **style)
    if "val_kl" in history[0]:
        axes[1].plot(epochs, [-row["val_reconstruction"] for row in history], label="validation", **style)
        axes[2].plot(epochs, [row["val_kl"] for row in history], label="validation", **style)
    from matplotlib.ticker import MaxNLocator

    for ax, title in zip(axes, ("loss (nats)", "-reconstruction (nats)", "KL (nats)")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(path, fig, caption)


def save_latent_map(path: str | Path, points: np.ndarray, labels=None, class_names=None, title: str = "",
                    caption: str | None = None) -> Path:
    """Scatter 2-D points (N, 2), coloured by label when given; the legend outside the axes, right of them, so
    that it covers no point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            mask = labels == value
            name = class_names[value] if class_names is not None and value < len(class_names) else str(value)
            ax.scatter(points[mask, 0], points[mask, 1], s=3, alpha=0.6, label=name)
        ax.legend(markerscale=4, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  ncol=1 if len(np.unique(labels)) <= 20 else 2, title="label")
    ax.set_title(title)
    return save_figure(path, fig, caption)


def save_tradeoff(path: str | Path, rows: list[dict], caption: str | None = None) -> Path:
    """The latent-size sweep: -ELBO, reconstruction, KL and active units against latent size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["latent_dim"] for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, label in (("neg_elbo", "-ELBO"), ("nll", "NLL (IWAE)"), ("kl", "KL")):
        axes[0].plot(sizes, [row[key] for row in rows], marker="o", label=label)
    axes[0].plot(sizes, [-row["reconstruction"] for row in rows], marker="o", label="-reconstruction")
    axes[1].plot(sizes, [row["active_units"] for row in rows], marker="o", label="active units")
    axes[1].plot(sizes, sizes, ls="--", color="grey", label="latent size")
    for ax, title in zip(axes, ("test nats per example", "active units")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("latent size")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(path, fig, caption)


def save_titled_grid(path: str | Path, images: np.ndarray, columns: int, title: str) -> Path:
    """Images (N, C, H, W) in [0, 1] as a grid under a title line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, columns, scale=1)
    fig, ax = plt.subplots(figsize=(max(4.0, grid.shape[1] / 40), max(2.0, grid.shape[0] / 40 + 0.4)))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid[..., :3], cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_title(title, fontsize=9, wrap=True)
    ax.axis("off")
    return save_figure(path, fig)
