"""Fitted samplers and sample quality of a core run, behind `vaekit sample RUN --from prior|gmm|two-stage` and
`vaekit eval RUN --samples N` (whose API is apps.images: it hands these functions the loaded run, a
`vaekit.apps.images.Run`, and its data).

A sampler is fitted once and saved in the run folder, `samplers/<name>.safetensors` + `samplers/<name>.json`
(which names the model file's hash: a retrained model gets its sampler refitted); the feature classifier of the
sample-quality metrics lives in vaekit's cache folder (`vaekit.sample_quality.classifier_for`).
torch and the core are imported inside the functions, as in every app.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import ConfigError
from ..io import write_json

if TYPE_CHECKING:
    import torch

    from ..data.splits import Splits
    from ..sample_quality import SampleQuality
    from ..samplers import Fit

SAMPLERS = ("prior", "gmm", "two-stage")  # where `vaekit sample --from` takes latents
SAMPLER_DIR = "samplers"
SAMPLER_FORMAT = 1  # samplers/<name>.json's layout; another version is refitted
MAX_SAMPLES = 50_000  # samples scored at most: the k-NN radii compare every pair, and the distances settle far below
NEAREST_FILE = "nearest.png"  # samples beside their nearest training images: the memorisation check
NEAREST_SHOWN = 16  # samples in that picture


def _check_name(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{sampler}': use one of {', '.join(SAMPLERS)}")


def _check_sampler(run, sampler: str) -> None:
    _check_name(sampler)
    if sampler != "prior" and run.vae.condition is not None:
        raise ConfigError(f"--from {sampler} fits the latents of an unconditional run; this one is conditioned on "
                          f"{run.model.condition}: use --from prior")


def check_quality_options(n: int, sampler: str) -> None:
    """ConfigError unless `n` samples from `sampler` can be scored: 2 <= n <= MAX_SAMPLES, a known sampler."""
    from ..config import check_count

    check_count("--samples", n, 2, "two samples for a covariance")
    if n > MAX_SAMPLES:
        raise ConfigError(f"--samples must be at most {MAX_SAMPLES:,}, got {n}: the distances settle far below, while "
                          "the k-NN radii compare every pair")
    _check_name(sampler)


def check_unconditional(run) -> None:
    """ConfigError for a conditional run: its samples need conditions, which sample quality does not draw."""
    if run.vae.condition is not None:
        raise ConfigError(f"sample quality is measured on unconditional runs; this one is conditioned on "
                          f"{run.model.condition}: leave out --samples")


def model_hash_of(run) -> str | None:
    """The sha256 of the run's model.safetensors (None for a run in memory): what was fitted to the model names it."""
    from ..checkpoint import MODEL_FILE

    model = run.path / MODEL_FILE if run.path is not None else None
    return hashlib.sha256(model.read_bytes()).hexdigest() if model is not None and model.is_file() else None


def training_latents(run, splits: Splits, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw z ~ q(z|x) per example of the run's training split, and of its validation split (the held-out
    latents; the last tenth of the training ones when the run holds out none): (n, latent_dim) each, on the CPU."""
    import torch

    from ..data.splits import model_data

    device = next(run.vae.parameters()).device
    torch.manual_seed(seed)

    def draws(x: torch.Tensor) -> torch.Tensor:
        x = model_data(run.vae, run.data, x, None, run.train.seed)
        with torch.inference_mode():
            return torch.cat([run.vae.encode(x[i:i + 1000].to(device)).sample().cpu()
                              for i in range(0, len(x), 1000)]) if len(x) else torch.zeros(0, run.vae.latent_dim)

    z_train, z_val = draws(splits.x_train), draws(splits.x_val)
    if len(z_val) == 0:
        z_train, z_val = z_train[: len(z_train) * 9 // 10], z_train[len(z_train) * 9 // 10:]
    return z_train, z_val


def fit_sampler(run, splits: Callable[[], Splits], sampler: str = "gmm", refit: bool = False, seed: int = 0) -> Fit:
    """The fitted latent sampler `sampler` (gmm or two-stage) of a run: loaded from the run folder, or fitted to the
    training latents of `splits()` (also when `refit`, or when the model changed since) and saved there."""
    from ..samplers import fit_gmm, fit_two_stage

    _check_sampler(run, sampler)
    if sampler == "prior":
        raise ConfigError("the prior is not fitted: use --from gmm or --from two-stage")
    model_hash = model_hash_of(run)
    saved = None if refit else _load_sampler(run, sampler, model_hash)
    if saved is not None:
        return saved
    z_train, z_val = training_latents(run, splits(), seed)
    fit = (fit_gmm if sampler == "gmm" else fit_two_stage)(z_train, z_val, seed=seed)
    if run.path is not None:
        _save_sampler(run, sampler, fit, model_hash)
    return fit


def _save_sampler(run, name: str, fit: Fit, model_hash: str | None) -> None:
    from ..checkpoint import save_tensors
    from ..config import to_dict

    folder = run.path / SAMPLER_DIR
    save_tensors(folder / f"{name}.safetensors", fit.sampler.state_dict())
    described = {"kind": "sampler", "sampler": name, "format_version": SAMPLER_FORMAT, "vaekit_version": __version__,
                 "model_sha256": model_hash, "fit_seconds": fit.seconds, "details": fit.details}
    if name == "two-stage":
        described["model"] = to_dict(fit.sampler.config)
    write_json(folder / f"{name}.json", described)  # written last: a sampler without it is refitted


def _load_sampler(run, name: str, model_hash: str | None) -> Fit | None:
    """The saved sampler `name` of the run, or None where there is none, or it is of another format or model."""
    from ..checkpoint import load_weights, read_json
    from ..config import ModelConfig, from_dict
    from ..samplers import Fit, GaussianMixture, TwoStage
    from ..vae import build_vae

    if run.path is None or not (run.path / SAMPLER_DIR / f"{name}.json").is_file():
        return None
    described = read_json(run.path / SAMPLER_DIR / f"{name}.json")
    if described.get("format_version") != SAMPLER_FORMAT or described.get("model_sha256") != model_hash:
        return None
    if name == "gmm":
        sampler = GaussianMixture.empty(described["details"]["components"], run.vae.latent_dim)
    else:
        config = from_dict(ModelConfig, described["model"])
        sampler = TwoStage(build_vae(config), config)
    load_weights(sampler, run.path / SAMPLER_DIR / f"{name}.safetensors")
    return Fit(sampler.to(next(run.vae.parameters()).device).eval(), described["fit_seconds"], described["details"])


def latent_draws(run, splits: Callable[[], Splits], sampler: str = "prior", seed: int = 0):
    """draw(n, generator) -> (n, latent_dim) latents from the prior or the run's fitted `sampler` (see fit_sampler)."""
    _check_sampler(run, sampler)
    if sampler == "prior":
        return run.vae.prior.sample
    return fit_sampler(run, splits, sampler, seed=seed).sampler.sample


def decoded_samples(run, splits: Callable[[], Splits], n: int, sampler: str = "prior", seed: int = 0,
                    chunk: int = 1000) -> torch.Tensor:
    """n samples E[x|z] of an unconditional run, z from `sampler`, (n, *data_shape) on the CPU."""
    import torch

    check_unconditional(run)
    draw = latent_draws(run, splits, sampler, seed)
    device = next(run.vae.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.inference_mode():
        return torch.cat([run.vae.decode_mean(draw(min(chunk, n - start), generator).to(device)).cpu()
                          for start in range(0, n, chunk)])


def sample_quality(run, splits: Splits, n: int = 1000, sampler: str = "prior", inception_weights: str | None = None,
                   seed: int = 0, picture: bool = True) -> SampleQuality:
    """Fréchet distance, KID and precision/recall between n samples of the run (latents from `sampler`) and n test
    images of `splits`, in the features of the dataset's own classifier (fitted once, cached), plus Inception FID when
    `inception_weights` names a local weights file. With `picture`, writes RUN/nearest.png: samples beside their
    nearest training images (Euclidean, in data space), the memorisation check."""
    import torch

    from ..sample_quality import SampleQuality, classifier_for, compare, inception_fid

    check_quality_options(n, sampler)
    _check_sampler(run, sampler)
    classifier, key = classifier_for(run.data.data, splits.x_train, splits.y_train)
    real = splits.x_test[:n]
    fake = decoded_samples(run, lambda: splits, n, sampler, seed)
    frechet, kid, precision, recall = compare(classifier.features(real), classifier.features(fake), seed)
    accuracy = classifier.accuracy(real, torch.as_tensor(splits.y_test[:n], dtype=torch.long)) \
        if splits.y_test is not None else None
    fid = inception_fid(real, fake, inception_weights) if inception_weights is not None else None
    if picture and run.path is not None and len(run.model.data_shape) == 3:
        save_nearest(run.path / NEAREST_FILE, fake[:NEAREST_SHOWN], splits.x_train,
                     f"Samples ({sampler}, odd rows) above their nearest training images (even rows): "
                     f"{run.path.name}, epoch {len(run.history)}")
    return SampleQuality(frechet, kid, precision, recall, n, sampler, key, accuracy, fid)


def nearest_rows(points: torch.Tensor, x: torch.Tensor, chunk: int = 10000) -> torch.Tensor:
    """Index of the row of x (N, ...) nearest each row of points (n, ...) in Euclidean distance, (n,)."""
    import torch

    flat = points.flatten(1).float()
    best = torch.full((len(flat),), float("inf")), torch.zeros(len(flat), dtype=torch.long)
    for start in range(0, len(x), chunk):
        distance, index = torch.cdist(flat, x[start:start + chunk].flatten(1).float()).min(1)
        closer = distance < best[0]
        best = torch.where(closer, distance, best[0]), torch.where(closer, index + start, best[1])
    return best[1]


def save_nearest(path: Path, samples: torch.Tensor, x_train: torch.Tensor, title: str, columns: int = 8) -> Path:
    """A titled grid of samples (odd rows) above their nearest training images in Euclidean distance (even rows)."""
    import torch

    from ..plotting import save_titled_grid

    nearest = x_train[nearest_rows(samples, x_train)]
    rows = [part for start in range(0, len(samples), columns)
            for part in (samples[start:start + columns], nearest[start:start + columns])]
    return save_titled_grid(path, torch.cat(rows).numpy(), columns, title)
