"""Audio: a conv VAE over log-magnitude spectrograms of short clips, and back to WAV by Griffin-Lim.

    vaekit audio fit recordings/ -o model/        vaekit audio sample model/ -n 8 -o out/
    vaekit audio reconstruct model/ clip.wav      vaekit audio interpolate model/ a.wav b.wav

A model directory is a core run (config.json + model.safetensors) plus audio.json (the spectrogram
format and the standardization of log-magnitudes) and latent_gaussian.safetensors (a Gaussian fitted to
the aggregate posterior, which `sample` draws from). The core's conv networks and Gaussian likelihood
do the modelling; this module only converts between sound and spectrogram images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import check_count

if TYPE_CHECKING:
    import numpy as np


KIND = "audio"  # config.json's kind (vaekit.saved): a core run of spectrograms plus AUDIO_FILE
AUDIO_FILE = "audio.json"
LATENT_FILE = "latent_gaussian.safetensors"
SAMPLE_FROM = ("fitted", "standard")


@dataclass
class AudioModel:
    run: object  # vaekit.apps.images.Run
    format: object  # SpectrogramFormat
    mean: float  # standardization of natural-log magnitudes
    std: float
    latent_loc: object = None  # (latent,) mean of the Gaussian fitted to the aggregate posterior; None: not fitted
    latent_scale_tril: object = None  # (latent, latent) Cholesky factor of its covariance
    rms: float | None = None  # the training clips' median RMS, the loudness written WAVs are scaled to; None: unknown

    def to_spectrogram(self, images) -> np.ndarray:
        import numpy as np
        return np.asarray(images) * self.std + self.mean

    def to_model(self, spectrograms: np.ndarray) -> np.ndarray:
        import numpy as np
        return ((spectrograms - self.mean) / self.std).astype(np.float32)

    def decode(self, z):
        """Latents (N, latent) -> log-magnitude spectrograms (N, 1, F, T), the decoder's mean."""
        import torch

        with torch.no_grad():
            return self.to_spectrogram(self.run.vae.decode_mean(z).cpu().numpy())

    def draw_latents(self, n: int, generator=None, source: str | None = None):
        """n latents (n, latent) from the Gaussian fitted to the aggregate posterior (source='fitted', the
        default when the model has one) or from the VAE's prior, N(0, I) (source='standard')."""
        import torch

        from ..errors import ConfigError

        if source not in (None, *SAMPLE_FROM):
            raise ConfigError(f"unknown latent source '{source}': use one of {', '.join(SAMPLE_FROM)}")
        if source == "fitted" and self.latent_loc is None:
            raise ConfigError(f"this model has no {LATENT_FILE}: sample with --from standard, or retrain it")
        if source == "standard" or self.latent_loc is None:
            return self.run.vae.prior.sample(n, generator)
        eps = torch.randn(n, self.run.vae.latent_dim, generator=generator)  # (n, latent)
        return (self.latent_loc + eps @ self.latent_scale_tril.T).to(next(self.run.vae.parameters()).device)

    def encode_clips(self, clips: np.ndarray):
        """Clips (N, samples) -> posterior means (N, latent)."""
        import torch

        from ..data.audio import spectrogram

        x = torch.as_tensor(self.to_model(spectrogram(clips, self.format)))
        with torch.no_grad():
            return self.run.vae.encode(x.to(next(self.run.vae.parameters()).device)).mean


def aggregate_gaussian(vae, x, batch_size: int = 256):
    """Moment-matched Gaussian of the aggregate posterior q(z) = mean over x of q(z|x), for model inputs
    x (N, ...): returns loc (latent,) and scale_tril (latent, latent). Decoding draws from it rather than
    from N(0, I) is ex-post density estimation (Ghosh et al. 2020, 'From variational to deterministic
    autoencoders', sec. 4): it keeps samples where the decoder was trained when q(z) does not fill the prior."""
    import torch

    device = next(vae.parameters()).device
    with torch.no_grad():
        qz = [vae.encode(chunk.to(device)) for chunk in torch.as_tensor(x).split(batch_size)]
    loc = torch.cat([q.mean for q in qz]).cpu()  # (N, latent)
    variance = torch.cat([q.variance for q in qz]).cpu()
    # Law of total covariance: Cov E[z|x] + E Var[z|x].
    covariance = torch.cov(loc.T, correction=0).reshape(loc.shape[1], -1) + torch.diag(variance.mean(0))
    return loc.mean(0), torch.linalg.cholesky(covariance)


def fit_clips(clips: np.ndarray, labels, out: str | Path, fmt=None, epochs: int = 30, latent_dim: int = 32,
              conv_channels=(32, 64, 128), batch_size: int = 64, seed: int = 0, progress: bool = True,
              overwrite: bool = False, **options):
    """Train on clips (N, clip_samples) already read at fmt.sample_rate; returns the AudioModel. A folder `out`
    holding a saved model is refused unless `overwrite`."""
    import numpy as np

    from . import images
    from ..checkpoint import CONFIG_FILE, read_json, save_tensors
    from ..io import write_json
    from ..data.audio import SpectrogramFormat, loudness, spectrogram

    fmt = fmt or SpectrogramFormat()
    rms = float(np.median(loudness(clips)))
    spec = spectrogram(clips, fmt)
    mean, std = float(spec.mean()), float(spec.std())
    model_x = ((spec - mean) / std).astype(np.float32)
    run = images.train(out, data=(model_x, labels), network="conv", conv_channels=tuple(conv_channels),
                       likelihood="gaussian", latent_dim=latent_dim, epochs=epochs, batch_size=batch_size,
                       seed=seed, progress=progress, overwrite=overwrite, **options)
    latent_loc, latent_scale_tril = aggregate_gaussian(run.vae, model_x)  # train() returns the model in eval mode
    if out is not None:
        write_json(Path(out) / AUDIO_FILE, {"format": fmt.to_dict(), "mean": mean, "std": std, "rms": rms})
        save_tensors(Path(out) / LATENT_FILE, {"loc": latent_loc, "scale_tril": latent_scale_tril})
        # Last, as the core run's config.json was written first: a complete folder says it is audio.
        write_json(Path(out) / CONFIG_FILE, {**read_json(Path(out) / CONFIG_FILE), "kind": KIND})
    return AudioModel(run, fmt, mean, std, latent_loc, latent_scale_tril, rms)


def fit(folder: str | Path, out: str | Path, sample_rate: int = 8000, clip_seconds: float = 0.768,
        overwrite: bool = False, **options):
    """Train a spectrogram VAE on every .wav under folder (`vaekit audio fit`); a file that cannot be read as
    a clip is skipped with a warning. A folder `out` holding a saved model is refused unless `overwrite`."""
    import math

    from ..data.audio import SpectrogramFormat, read_clips
    from ..errors import ConfigError
    from ..saved import check_new_folder

    if not (clip_seconds > 0 and math.isfinite(clip_seconds)):
        raise ConfigError(f"--clip-seconds must be a positive number, got {clip_seconds}")
    hop = 64
    fmt = SpectrogramFormat(sample_rate=sample_rate, clip_samples=int(round(clip_seconds * sample_rate / hop)) * hop,
                            hop=hop)
    fmt.validate()
    check_new_folder(out, overwrite)
    clips, labels, _ = read_clips(folder, fmt)
    return fit_clips(clips, labels, out, fmt, overwrite=overwrite, **options)


def load(path: str | Path, device: str = "auto") -> AudioModel:
    from . import images
    from ..checkpoint import load_tensors, read_json
    from ..config import FORMAT_VERSION
    from ..data.audio import SpectrogramFormat
    from ..saved import read_config

    read_config(path, KIND, FORMAT_VERSION)  # config.json is the core run's, in its format
    run = images.load_run(path, device=device)
    saved = read_json(Path(path) / AUDIO_FILE)
    # Models saved before the fitted sampler existed have no LATENT_FILE and sample from N(0, I).
    latent = load_tensors(Path(path) / LATENT_FILE) if (Path(path) / LATENT_FILE).exists() else {}
    return AudioModel(run, SpectrogramFormat(**saved["format"]), saved["mean"], saved["std"],
                      latent.get("loc"), latent.get("scale_tril"), saved.get("rms"))  # models before it: no rms


def _pictures(path: Path, spectrograms: np.ndarray, columns: int, model: AudioModel, what: str) -> Path:
    """Spectrograms as a grey image grid, low frequencies at the bottom, one shared dB scale, under the title line
    `what` (with the model and its epoch)."""
    import numpy as np

    from ..plotting import save_image_grid

    low, high = np.percentile(spectrograms, [1, 99.9])
    images = np.clip((spectrograms - low) / (high - low), 0, 1)[:, :, ::-1, :]
    from .images import caption

    return save_image_grid(path, np.ascontiguousarray(images), columns,
                           caption(model.run, f"{what} (log-magnitude, low frequencies at the bottom)"))


def _check_clips(model: AudioModel, n: int, what: str) -> None:
    """ConfigError unless n clips, their spectrograms and Griffin-Lim's STFTs fit in memory."""
    import math

    from ..limits import check_memory

    check_memory(4 * n * (10 * math.prod(model.format.shape) + 2 * model.format.clip_samples), what, "ask for fewer")


def _to_wavs(model: AudioModel, spectrograms: np.ndarray, out: Path, stem: str,
             target_rms: float | None = None) -> list[Path]:
    """WAVs of the spectrograms, each scaled to `target_rms` (default: the training clips' median RMS) with its
    peak at most -1 dBFS (data.audio.match_loudness); one warning when they came out far quieter than that."""
    import warnings

    import numpy as np

    from ..data.audio import QUIET_DB, griffin_lim, loudness, match_loudness, write_wav

    audio = griffin_lim(spectrograms, model.format)
    target_rms = model.rms if target_rms is None else target_rms
    if target_rms:
        level = 20 * np.log10(np.maximum(loudness(audio), 1e-12) / target_rms)  # dB against the target
        quiet = level < -QUIET_DB
        if quiet.any():
            warnings.warn(f"{int(quiet.sum())} of {len(audio)} decoded clips are up to {-level.min():.0f} dB quieter "
                          f"than the training clips (RMS {target_rms:.3g}): the model has not learned their loudness "
                          "(a short fit?); the WAVs are scaled up to it, noise included: train longer (--epochs)",
                          stacklevel=3)
    audio = match_loudness(audio, target_rms)
    return [write_wav(out / f"{stem}_{i}.wav", clip, model.format.sample_rate) for i, clip in enumerate(audio)]


def sample(path: str | Path, n: int = 8, out: str | Path = "audio_samples", seed: int = 0,
           source: str | None = None) -> list[Path]:
    """Decode n latent draws to WAV files (at the training clips' loudness) and a spectrogram grid
    (`vaekit audio sample`); source is
    'fitted' (the aggregate-posterior Gaussian, the default when saved) or 'standard' (N(0, I))."""
    import torch

    from ..saved import check_output_folder

    check_count("-n", n)
    check_count("--seed", seed, 0)
    out = check_output_folder(out)
    model = load(path)
    _check_clips(model, n, f"-n {n} clips")
    spectrograms = model.decode(model.draw_latents(n, torch.Generator().manual_seed(seed), source))
    picture = _pictures(out / "samples.png", spectrograms, min(n, 8), model, "spectrograms of sampled clips")
    return [*_to_wavs(model, spectrograms, out, "sample"), picture]


def reconstruct(path: str | Path, clip: str | Path, out: str | Path | None = None) -> list[Path]:
    """Encode a clip, decode its posterior mean, write the WAV (at the clip's loudness) and original|reconstruction
    spectrograms."""
    import numpy as np

    from ..data.audio import fit_length, loudness, read_wav, spectrogram
    from ..saved import check_output_file

    out = check_output_file(out if out is not None else Path(clip).with_name(Path(clip).stem + "_reconstruction.wav"),
                            (".wav",))
    model = load(path)
    audio = fit_length(read_wav(clip, model.format.sample_rate), model.format.clip_samples)[None]
    rebuilt = model.decode(model.encode_clips(audio))
    wav = _to_wavs(model, rebuilt, out.parent, out.stem, float(loudness(audio)[0]))[0].replace(out)  # as the input
    picture = _pictures(out.with_suffix(".png"), np.concatenate([spectrogram(audio, model.format), rebuilt]), 2,
                        model, f"{Path(clip).name} | its reconstruction")
    return [wav, picture]


def interpolate(path: str | Path, first: str | Path, second: str | Path, steps: int = 8,
                out: str | Path = "audio_morph") -> list[Path]:
    """A morph between two clips along the straight line between their latent means."""
    import numpy as np
    import torch

    from ..data.audio import fit_length, read_wav
    from ..saved import check_output_folder

    check_count("--steps", steps, 2, "both ends of the morph")
    out = check_output_folder(out)
    model = load(path)
    _check_clips(model, steps, f"--steps {steps} clips")
    clips = np.stack([fit_length(read_wav(f, model.format.sample_rate), model.format.clip_samples)
                      for f in (first, second)])
    z = model.encode_clips(clips)
    t = torch.linspace(0, 1, steps, device=z.device)[:, None]
    spectrograms = model.decode(z[0] + t * (z[1] - z[0]))
    return [*_to_wavs(model, spectrograms, out, "morph"), _pictures(out / "morph.png", spectrograms, steps, model,
                                                                    f"morph {Path(first).name} -> {Path(second).name}")]
