"""Pictures and arrays drawn from an image run: the API behind `vaekit sample`, `reconstruct`, `interpolate` and
`embed` (re-exported by vaekit.apps.images).

torch and the core are imported inside the functions, as in every app: the CLI reads their signatures for --help.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import check_count
from ..errors import ConfigError, DataError
from ..io import atomic_write, write_npy, write_npy_chunks
from ..tracking import follow_up
from .images_run import Run, as_run, caption, output_path, run_splits

if TYPE_CHECKING:
    import torch

    from ..samplers import Fit


PICTURES = (".png", ".npy")  # what sample, reconstruct and interpolate write: a PNG grid, or the array itself
SAMPLE_CHUNK = 65536  # samples decoded at a time into an .npy file, so any -n that fits on the disk streams


def _as_array(run: Run, path: Path) -> bool:
    """Whether the outputs of `run` go to `path` as an .npy array: when it says so, or when they are no images."""
    return path.suffix == ".npy" or len(run.model.data_shape) != 3


def _check_pictures(run: Run, path: Path, n: int, what: str) -> None:
    """ConfigError unless `n` outputs of the run, and their PNG grid at `path`, fit in memory."""
    from ..limits import check_memory
    from ..plotting import grid_scale

    values = math.prod(run.model.data_shape)
    scale = 1 if _as_array(run, path) else grid_scale(run.model.data_shape[-1])
    check_memory(n * values * 4 * (2 + scale ** 2), f"{what} ({n} of {values} values each)",
                 "ask for fewer, or write an .npy file (vaekit sample streams one to disk)")


def _save_images(run: Run, path: Path, images: torch.Tensor, columns: int | None = None,
                 title: str | None = None) -> Path:
    """PNG grid for image-shaped outputs (with the title line `title`), else .npy (also when the path says .npy); a
    PNG also goes to the run's tracker (vaekit.tracking.follow_up)."""
    from ..plotting import save_image_grid

    array = images.detach().cpu().numpy()
    if path.suffix == ".npy" or array.ndim != 4:
        return write_npy(path.with_suffix(".npy"), array)
    written = save_image_grid(path, array, columns, title)
    follow_up(run.path, files=[written])
    return written


def sample(run: Run | str | Path, n: int = 100, out: str | Path | None = None, seed: int = 0,
           label: int | None = None, sampler: str = "prior") -> Path:
    """Decode n draws from the prior into a PNG grid (or .npy) (`vaekit sample`). A label-conditional
    run draws class `label`, or without one a row per class. An .npy file is written SAMPLE_CHUNK draws at a
    time, so any n whose array fits on the disk can be drawn. `sampler` gmm or two-stage draws the latents from a
    density fitted to the training latents instead (fitted once, saved in RUN/samplers/; apps.sampling)."""
    import torch

    from ..limits import check_disk
    from ..bottlenecks import UniformCodes
    from .sampling import latent_draws

    check_count("-n", n)
    check_count("--seed", seed, 0)
    run = as_run(run)
    path = output_path(run, out, "samples.png", PICTURES)
    device = next(run.vae.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    columns = None
    if run.model.condition == "label":
        classes = run.model.n_classes
        if label is not None and not 0 <= label < classes:
            raise ConfigError(f"--label must be in [0, {classes}) for this run, got {label}")
        columns = None if label is not None else math.ceil(n / classes)
    elif label is not None:
        raise ConfigError("--label needs a run trained with --condition label")
    elif run.vae.condition is not None:
        tool = "denoise" if run.model.condition == "noisy" else "superres"
        raise ConfigError(f"this run is conditioned on {run.model.condition}: use 'vaekit {tool}' to sample it")

    latents = None if sampler == "prior" else latent_draws(run, lambda: run_splits(run), sampler, seed)
    if sampler == "prior" and isinstance(run.vae.prior, UniformCodes):
        warnings.warn(f"{run.path} has no learned prior over its codes: these samples decode uniform random codes; "
                      f"`vaekit train-prior {run.path}` fits one", stacklevel=2)

    def draws(start: int, stop: int) -> torch.Tensor:  # samples start..stop-1; a label run's row i is of class i // columns
        if latents is not None:
            with torch.no_grad():
                return run.vae.decode_mean(latents(stop - start, generator).to(device))
        rows = torch.arange(start, stop, device=device)
        c = None if columns is None else rows // columns
        if label is not None:
            c = torch.full_like(rows, label)
        return run.vae.sample(stop - start, generator=generator, c=c).detach()

    if _as_array(run, path):
        path = path.with_suffix(".npy")
        shape = (n, *run.model.data_shape)
        check_disk(path, 4 * math.prod(shape), f"-n {n} samples", "ask for fewer, or free space")
        chunks = (draws(start, min(n, start + SAMPLE_CHUNK)).cpu().numpy() for start in range(0, n, SAMPLE_CHUNK))
        return write_npy_chunks(path, shape, "<f4", chunks)
    _check_pictures(run, path, n, f"a grid of -n {n} samples")
    what = "samples from the prior" + (f", label {label}" if label is not None else ", a row per label" if columns
                                       else "")
    return _save_images(run, path, draws(0, n), columns, caption(run, f"{what} (seed {seed})"))


def fit_sampler(run: Run | str | Path, sampler: str = "gmm", refit: bool = False, seed: int = 0) -> Fit:
    """The latent sampler gmm or two-stage of a run, as `vaekit sample --from` uses it: loaded from RUN/samplers/, or
    fitted to the training latents (also when `refit`, or when the model changed since) and saved there."""
    from .sampling import fit_sampler as fit

    run = as_run(run)
    return fit(run, lambda: run_splits(run), sampler, refit, seed)


def reconstruct(run: Run | str | Path, n: int = 16, out: str | Path | None = None, data: str | None = None,
                data_dir: str | None = None) -> Path:
    """Test images (top rows) above their reconstructions (bottom rows) (`vaekit reconstruct`)."""
    import torch

    from ..data.splits import model_data

    check_count("-n", n)
    run = as_run(run)
    path = output_path(run, out, "reconstructions.png", PICTURES)
    splits = run_splits(run, data, data_dir)
    y = None if splits.y_test is None else splits.y_test[:n]
    x = model_data(run.vae, run.data, splits.x_test[:n], y, run.train.seed)
    x = x.to(next(run.vae.parameters()).device)
    columns = min(len(x), 8)
    shown = x if torch.is_tensor(x) else x[:].x  # the encoder's input: noisy for a denoising run
    rows = [torch.cat([shown[i:i + columns], run.vae.reconstruct(x[i:i + columns])]) for i in range(0, len(x), columns)]
    return _save_images(run, path, torch.cat(rows), columns,
                        caption(run, "test images (odd rows) above their reconstructions (even rows)"))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of a and b (batch, d) at fractions t (steps,) -> (batch, steps, d)."""
    import torch

    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(cos)[:, None, None]
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / torch.sin(omega)


def interpolate(run: Run | str | Path, out: str | Path | None = None, pairs: int = 6, steps: int = 10,
                spherical: bool = False, data: str | None = None, data_dir: str | None = None) -> Path:
    """Paths in latent space between pairs of test images, one row per pair (`vaekit interpolate`)."""
    import torch

    check_count("--pairs", pairs)
    check_count("--steps", steps, 2, "both ends of a path")
    run = as_run(run)
    if run.vae.condition is not None:
        raise ConfigError(f"interpolate needs an unconditional run; this one is conditioned on {run.model.condition}")
    target = output_path(run, out, "interpolation.png", PICTURES)
    _check_pictures(run, target, pairs * steps, f"--pairs {pairs} x --steps {steps} images")
    x = run_splits(run, data, data_dir).x_test[: 2 * pairs].to(next(run.vae.parameters()).device)
    if len(x) < 2:
        raise DataError("interpolation needs at least two test examples")
    with torch.no_grad():
        z = run.vae.encode(x).mean
        a, b = z[0::2], z[1::2][: len(z[0::2])]
        a = a[: len(b)]
        t = torch.linspace(0, 1, steps, device=z.device)
        path = slerp(a, b, t) if spherical else a[:, None] + t[None, :, None] * (b - a)[:, None]
        images = run.vae.decode_mean(path.reshape(-1, run.vae.latent_dim))
    kind = "spherical" if spherical else "straight-line"
    return _save_images(run, target, images, steps, caption(run, f"{kind} latent paths between pairs of test images"))


def embed(run: Run | str | Path, out: str | Path | None = None, data: str | None = None,
          data_dir: str | None = None, split: str = "test") -> tuple[Path, Path]:
    """Latent means of a split to .npy or .csv, plus a 2-D map coloured by label (`vaekit embed`).

    The map shows the latent itself when it is 2-D, else its first two principal components."""
    import numpy as np
    import torch

    from ..data.splits import model_data
    from ..evaluation import latent_means
    from ..plotting import save_latent_map

    run = as_run(run)
    path = output_path(run, out, "embeddings.npy")
    splits = run_splits(run, data, data_dir)
    x, y = (splits.x_test, splits.y_test) if split == "test" else (splits.x_train, splits.y_train)
    means = latent_means(run.vae, model_data(run.vae, run.data, x, y, run.train.seed)).cpu().numpy()

    if path.suffix == ".csv":
        header = ",".join(f"z{i}" for i in range(means.shape[1])) + (",label" if y is not None else "")
        table = means if y is None else np.column_stack([means, y])
        lines = [header] + [",".join(f"{v:.6g}" for v in row) for row in table]
        atomic_write(path, "\n".join(lines) + "\n")
    else:
        write_npy(path, means)
    if means.shape[1] == 2:
        points, title = means, "latent means"
    else:
        centred = torch.as_tensor(means, dtype=torch.float64) - torch.as_tensor(means, dtype=torch.float64).mean(0)
        directions = torch.linalg.svd(centred, full_matrices=False).Vh[:2]  # the two principal axes
        points, title = (centred @ directions.T).numpy(), f"PCA of {means.shape[1]}-d latent means"
    picture = save_latent_map(path.with_name("latent_map.png"), points, y, splits.class_names, title,
                              caption(run, f"latent map of the {split} split"))
    return path, picture
