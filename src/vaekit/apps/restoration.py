"""Image restoration with a trained VAE: denoising and super-resolution, with PSNR/SSIM evaluation.

A thin composition of a run and image files. Denoising works with any unconditional run (encode
the noisy image, decode the mean); a run trained with `--corrupt gaussian:0.3` (a denoising VAE)
does it better, and one trained with `--condition noisy --corrupt gaussian:0.3` (a conditional VAE
p(x_clean | z, x_noisy), whose decoder sees the noisy pixels and so is not capped by what z
can carry) does it best. Super-resolution needs a run trained with `--condition lowres:F`, which models
p(x_high | z, x_low): draws z ~ p(z) give several plausible high-resolution images, their mean
and a per-pixel standard deviation (the uncertainty map).
"""

from __future__ import annotations

from pathlib import Path

from ..config import check_count
from ..data.images import read_images


# -- metrics ----------------------------------------------------------------------------------------
def psnr(x, reference):
    """Peak signal-to-noise ratio in dB per image (N,), for values in [0, 1]: 10 log10(1 / MSE)."""
    import torch

    mse = ((x - reference) ** 2).flatten(1).mean(1).clamp(min=1e-12)
    return -10 * torch.log10(mse)


def ssim(x, reference):
    """Structural similarity per image (N,) for (N, C, H, W) in [0, 1] (Wang et al. 2004): an 11x11
    Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, averaged over the valid positions and
    channels; equal to skimage's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1). Images under 11 pixels a side use the largest odd
    window that fits."""
    import torch
    import torch.nn.functional as F

    channels, side = x.shape[1], min(11, min(x.shape[-2:]) - (1 - min(x.shape[-2:]) % 2))
    grid = torch.arange(side, dtype=x.dtype, device=x.device) - side // 2
    g = torch.exp(-grid ** 2 / (2 * 1.5 ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(channels, 1, side, side)

    def blur(t):
        return F.conv2d(t, window, groups=channels)

    mx, my = blur(x), blur(reference)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(reference * reference) - my ** 2, blur(x * reference) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


# -- image files ------------------------------------------------------------------------------------
def _check_shape(x, shape: tuple[int, ...], what: str) -> None:
    from ..errors import DataError

    if tuple(x.shape[1:]) != tuple(shape):
        raise DataError(f"{what} of shape {tuple(x.shape[1:])} do not fit this model, which takes {tuple(shape)}: "
                        f"resize them to {shape[-2]}x{shape[-1]}")


def _check_draws(run, n: int, samples: int, what: str) -> None:
    """ConfigError unless `samples` decoded draws of n images fit in memory."""
    import math

    from ..limits import check_memory

    check_memory(4 * 3 * samples * n * math.prod(run.model.data_shape), what, "lower --samples")


def _write(path: Path, images) -> Path:
    """One image (1, C, H, W) as .png, or any stack as .npy (by the suffix)."""
    import numpy as np
    from PIL import Image

    from ..io import atomic_open, write_npy

    array = images.detach().cpu().numpy()
    if path.suffix == ".npy":
        return write_npy(path, array)
    pixels = (np.clip(array[0], 0, 1) * 255).round().astype(np.uint8)
    with atomic_open(path) as f:
        Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)).save(f, format="PNG")
    return path


# -- denoising --------------------------------------------------------------------------------------
def denoise(run, x, samples: int | None = None, batch_size: int = 500, seed: int = 0):
    """Denoised images (N, C, H, W) in [0, 1] from noisy x of the run's data shape.

    An unconditional run (plain or `--corrupt`) decodes E[x|z] at the posterior mean of q(z|x)
    (samples None or 0), or averages it over `samples` draws z ~ q(z|x), an estimate of the
    posterior-mean image. A `--condition noisy` run averages E[x | z, x_noisy] over `samples`
    draws z ~ p(z) (default 8), its estimate of E[x_clean | x_noisy]."""
    import torch

    from ..conditioning import NoisyCondition
    from ..errors import ConfigError
    from .images import as_run

    run = as_run(run)
    if samples is not None:
        check_count("--samples", samples, 0)
    conditional = isinstance(run.vae.condition, NoisyCondition)
    if run.vae.condition is not None and not conditional:
        raise ConfigError(f"denoise needs an unconditional or --condition noisy run; this one is conditioned on "
                          f"{run.model.condition}")
    _check_shape(x, run.model.data_shape, "the images")
    _check_draws(run, min(len(x), batch_size), samples or 8, f"--samples {samples} draws of a batch")
    if conditional:
        return torch.cat([conditional_draws(run, x[start:start + batch_size], samples or 8, seed).mean(0)
                          for start in range(0, len(x), batch_size)])
    device = next(run.vae.parameters()).device
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size].to(device)
            if not samples:
                outputs.append(run.vae.reconstruct(batch))
                continue
            z = run.vae.encode(batch).sample((samples,))  # (samples, batch, latent)
            outputs.append(run.vae.decode_mean(z.flatten(0, 1)).view(samples, len(batch), *x.shape[1:]).mean(0))
    return torch.cat(outputs).clamp(0, 1).cpu()


def conditional_draws(run, c, samples: int, seed: int = 0):
    """E[x | z, c] for `samples` draws z ~ p(z) per condition: (samples, N, *data_shape) in [0, 1]."""
    import torch

    device = next(run.vae.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    c = c.to(device)
    z = torch.randn(samples * len(c), run.vae.latent_dim, generator=generator, device=device)
    with torch.no_grad():
        draws = run.vae.decode_mean(z, c.repeat(samples, *([1] * (c.dim() - 1))))
    return draws.view(samples, len(c), *run.model.data_shape).clamp(0, 1).cpu()


def denoise_files(run, source: str | Path, out: str | Path, samples: int | None = None) -> list[Path]:
    """`vaekit denoise`: denoise an image, a .npy stack or a folder into the folder `out`
    (one .png per image; a .npy input gives one .npy)."""
    from ..saved import check_output_folder
    from .images import as_run

    out = check_output_folder(out)
    run = as_run(run)
    x, names = read_images(source, run.model.data_shape[0])
    clean = denoise(run, x, samples)
    if Path(source).suffix.lower() == ".npy":
        return [_write(out / f"{Path(source).stem}_denoised.npy", clean)]
    return [_write(out / f"{name}.png", clean[i:i + 1]) for i, name in enumerate(names)]


# -- super-resolution -------------------------------------------------------------------------------
def superres(run, low, samples: int = 8, seed: int = 0):
    """Super-resolve low-resolution images (N, C, h, w) with a `--condition lowres:F` run.

    Returns (draws (samples, N, C, H, W), mean (N, C, H, W), std (N, C, H, W)): E[x|z, x_low] for
    z ~ p(z), their mean (the estimate to use) and per-pixel standard deviation (uncertainty)."""
    from ..conditioning import LowResCondition
    from ..errors import ConfigError
    from .images import as_run

    run = as_run(run)
    if not isinstance(run.vae.condition, LowResCondition):
        raise ConfigError("superres needs a run trained with --condition lowres:2 (or lowres:4)")
    check_count("--samples", samples)
    check_count("--seed", seed, 0)
    _check_shape(low, run.vae.condition.feature_shape, "the low-resolution images")
    _check_draws(run, len(low), samples, f"--samples {samples} draws of {len(low)} images")
    draws = conditional_draws(run, low, samples, seed)
    return draws, draws.mean(0), draws.std(0, unbiased=False)


def superres_files(run, source: str | Path, out: str | Path, samples: int = 8, seed: int = 0) -> list[Path]:
    """`vaekit superres`: write the mean high-resolution image to `out` (.png, or .npy for a stack),
    and beside it OUT_uncertainty (per-pixel std, scaled to its maximum for the .png) and
    OUT_samples.png (per image a row: input upscaled, the draws, the mean, the uncertainty)."""
    import torch
    import torch.nn.functional as F

    from ..plotting import save_image_grid
    from ..saved import check_output_file
    from .images import PICTURES, as_run, caption

    run = as_run(run)
    out = check_output_file(out, PICTURES)
    low, _ = read_images(source, run.model.data_shape[0])
    draws, mean, std = superres(run, low, samples, seed)
    stem = out.with_suffix("")
    if out.suffix == ".npy" or len(low) > 1:
        out = out.with_suffix(".npy")
        paths = [_write(out, mean), _write(Path(f"{stem}_uncertainty.npy"), std)]
    else:
        paths = [_write(out, mean), _write(Path(f"{stem}_uncertainty.png"), std / std.max().clamp(min=1e-6))]
    shown = F.interpolate(low, size=mean.shape[-2:], mode="nearest")
    rows = [torch.cat([shown[i:i + 1], draws[:, i], mean[i:i + 1], std[i:i + 1] / std[i].max().clamp(min=1e-6)])
            for i in range(min(len(low), 16))]
    paths.append(save_image_grid(Path(f"{stem}_samples.png"), torch.cat(rows).numpy(), samples + 3,
                                 caption(run, f"per image: input, {samples} draws, their mean, their spread")))
    return paths


# -- evaluation -------------------------------------------------------------------------------------
def _levels(levels) -> list[float]:
    """restore-eval's noise levels: the list itself, or a comma-separated string of numbers."""
    from ..errors import ConfigError

    if not isinstance(levels, str):
        return levels
    try:
        return [float(v) for v in levels.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--levels must be comma-separated numbers, got '{levels}'") from None


def restore_eval(run, levels=(0.1, 0.2, 0.3, 0.5), limit: int | None = 1000, out: str | Path | None = None,
                 samples: int = 8, data: str | None = None, data_dir: str | None = None, seed: int = 0) -> list[dict]:
    """PSNR (dB) and SSIM on the first `limit` test images (`vaekit restore-eval`).

    A super-resolution run is compared with bicubic upsampling at its factor (mean of `samples`
    draws); any other run denoises the test images corrupted at each of `levels` (the run's noise
    kind, Gaussian sigma by default) and is compared with the noisy input. Writes
    restore_eval.json and a grid per setting (rows of 8: input, output, ground truth) into `out`
    (default RUN/restore); returns the table rows. `levels` may be a comma-separated string."""
    import torch
    import torch.nn.functional as F

    from ..io import write_json
    from ..conditioning import Corruption, downscale, parse_corruption
    from ..errors import ConfigError
    from ..plotting import save_image_grid
    from .images import as_run, caption, output_path, run_splits

    levels = _levels(levels)
    if limit is not None:
        check_count("--limit", limit)
    check_count("--samples", samples)
    run = as_run(run)
    out = output_path(run, out, "restore", None)
    x = run_splits(run, data, data_dir).x_test[:limit]
    rows, grids = [], []

    def score(setting: str, method: str, output, shown=None):
        rows.append({"setting": setting, "method": method, "psnr": float(psnr(output, x).mean()),
                     "ssim": float(ssim(output, x).mean()), "n_images": len(x)})
        if shown is not None:
            name = f"grid_{setting.replace(':', '_')}.png"
            grid = torch.cat([t[:8] for t in (shown, output, x)]).numpy()
            grids.append(save_image_grid(out / name, grid, min(8, len(x)),
                                         caption(run, f"{setting} {method}: input, output, ground truth rows")))

    if run.vae.condition is not None and run.model.condition.startswith("lowres"):
        factor = run.vae.condition.factor
        low = downscale(x, factor)
        setting = f"x{factor}"
        for mode in ("nearest", "bilinear", "bicubic"):
            score(setting, mode, F.interpolate(low, size=x.shape[-2:], mode=mode).clamp(0, 1))
        score(setting, "vae", superres(run, low, samples, seed)[1],
              shown=F.interpolate(low, size=x.shape[-2:], mode="nearest"))
    elif run.vae.condition is not None and run.model.condition != "noisy":
        raise ConfigError(f"restore-eval needs a denoising or super-resolution run, not one conditioned on "
                          f"{run.model.condition}")
    else:
        kind = (parse_corruption(run.data.corrupt) or Corruption("gaussian", 0)).kind
        for level in levels:
            corruption = parse_corruption(f"{kind}:{level}")
            noisy = corruption(x, torch.Generator().manual_seed(seed))
            setting = f"{kind}:{level:g}"
            score(setting, "input", noisy)
            score(setting, "vae", denoise(run, noisy, seed=seed), shown=noisy)
    write_json(out / "restore_eval.json", {"run": str(run.path), "rows": rows})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'setting':<16} {'method':<10} {'PSNR dB':>8} {'SSIM':>7}"]
    lines += [f"{r['setting']:<16} {r['method']:<10} {r['psnr']:>8.2f} {r['ssim']:>7.4f}" for r in rows]
    return "\n".join(lines)
