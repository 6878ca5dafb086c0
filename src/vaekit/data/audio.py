"""Audio adapter: WAV files <-> fixed-size log-magnitude spectrogram images, and back to sound.

Reading and resampling use SciPy; the STFT is torch's own. Phase is recovered with Griffin-Lim
(Griffin & Lim 1984) written on torch.stft/istft: librosa's version runs one clip at a time, while
this one reconstructs a whole batch of clips in a few vectorized STFT calls, measured faster and at
least as exact on real speech (benchmarks/audio_phase.py).
Log-magnitude features are used (not mel) so that a spectrogram maps back to an STFT magnitude
exactly, without the lossy inversion of a mel filter bank.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

FLOOR = 1e-4  # magnitude floor before the log: -80 dB below a full-scale sinusoid bin
MAX_SAMPLE_RATE = 384_000  # Hz: the highest rate audio files are recorded at


@dataclass(frozen=True)
class SpectrogramFormat:
    """How clips become spectrograms (saved with a model as JSON)."""

    sample_rate: int = 8000  # Hz; every clip is resampled to this rate
    clip_samples: int = 6144  # clips are trimmed or zero-padded to this length (0.768 s at 8 kHz)
    n_fft: int = 256  # STFT window; n_fft // 2 frequency bins are kept (the Nyquist bin is dropped)
    hop: int = 64  # STFT hop; 75% overlap keeps Griffin-Lim's reconstructions clean

    @property
    def shape(self) -> tuple[int, int, int]:
        """(1, frequency bins, frames) of one spectrogram image."""
        return 1, self.n_fft // 2, self.clip_samples // self.hop

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        """ConfigError unless the rate is one audio has and a clip holds at least one STFT window."""
        if not 1 <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ConfigError(f"--sample-rate must be in 1..{MAX_SAMPLE_RATE:,} Hz, got {self.sample_rate}")
        if self.clip_samples < self.n_fft:
            raise ConfigError(f"a clip must hold at least {self.n_fft} samples (one STFT window), got "
                              f"{self.clip_samples}: raise --clip-seconds")


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """A WAV file as mono float32 in [-1, 1], resampled to sample_rate."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    if Path(path).is_dir():
        raise DataError(f"{path} is a folder: pass a .wav file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", wavfile.WavFileWarning)  # a truncated or junk body is not a clip
            rate, data = wavfile.read(str(path))
    except FileNotFoundError:
        raise DataError(f"{path} not found: pass an existing .wav file or folder") from None
    except (ValueError, OSError, wavfile.WavFileWarning) as err:
        raise DataError(f"cannot read {path} as WAV ({err}): convert it to PCM WAV") from None
    if data.size == 0:
        raise DataError(f"{path} holds no audio samples: remove it")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise DataError(f"{path} holds NaN or infinite samples: re-export it")
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    audio = data.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if rate != sample_rate:
        divisor = math.gcd(rate, sample_rate)
        audio = resample_poly(audio, sample_rate // divisor, rate // divisor).astype(np.float32)
    return audio


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim to `length` samples or zero-pad at the end."""
    return audio[:length] if len(audio) >= length else np.pad(audio, (0, length - len(audio)))


# The ceiling of a loudness-matched clip's peak: -1 dBFS, the usual headroom against clipping in later resampling
PEAK_CEILING = 10 ** (-1 / 20)
# Decoded clips quieter than the training clips by more than this (20 dB: a tenth of their RMS) get a warning
QUIET_DB = 20.0


def loudness(audio: np.ndarray) -> np.ndarray:
    """The RMS of each clip (..., samples) -> (...), in full-scale units (1.0 = a full-scale square wave)."""
    return np.sqrt(np.mean(np.square(audio, dtype=np.float64), axis=-1))


def match_loudness(audio: np.ndarray, target_rms: float | None) -> np.ndarray:
    """Clips (N, samples) each scaled to RMS `target_rms`, or less where its peak would pass PEAK_CEILING (-1 dBFS);
    with target_rms None, each peak to PEAK_CEILING. Silent clips stay silent."""
    peak = np.abs(audio).max(axis=-1, keepdims=True)
    level = loudness(audio)[..., None]
    gain = PEAK_CEILING / np.maximum(peak, 1e-12)
    if target_rms is not None:
        gain = np.minimum(gain, target_rms / np.maximum(level, 1e-12))
    return (audio * np.where(peak > 0, gain, 0.0)).astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio as 16-bit PCM, atomically; peaks above full scale are normalized."""
    from scipy.io import wavfile

    from ..io import atomic_write

    peak = float(np.abs(audio).max()) if audio.size else 0.0
    pcm = (audio / max(1.0, peak) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    wavfile.write(buffer, sample_rate, pcm)
    atomic_write(path, buffer.getvalue())
    return Path(path)


def _window(fmt: SpectrogramFormat):
    import torch

    return torch.hann_window(fmt.n_fft)


def _stft(audio, fmt: SpectrogramFormat):
    import torch

    return torch.stft(audio, fmt.n_fft, fmt.hop, window=_window(fmt), return_complex=True)


def spectrogram(audio: np.ndarray, fmt: SpectrogramFormat) -> np.ndarray:
    """Clips (N, clip_samples) -> log-magnitude spectrograms (N, 1, n_fft/2, clip_samples/hop)."""
    import torch

    stft = _stft(torch.as_tensor(audio, dtype=torch.float32), fmt)  # (N, n_fft/2 + 1, frames + 1)
    magnitude = stft.abs()[:, : fmt.n_fft // 2, : fmt.shape[2]]
    return torch.log(magnitude.clamp(min=FLOOR)).unsqueeze(1).numpy()


def griffin_lim(log_magnitude: np.ndarray, fmt: SpectrogramFormat, iterations: int = 64, seed: int = 0,
                momentum: float = 0.99) -> np.ndarray:
    """Spectrograms (N, 1, F, T) -> audio (N, clip_samples) by the 'fast Griffin-Lim' of Perraudin et
    al. (2013): c_n = t_n + momentum (t_n - t_{n-1}), t_n the re-analysed STFT of iteration n."""
    import torch

    magnitude = torch.exp(torch.as_tensor(log_magnitude, dtype=torch.float32)[:, 0])
    magnitude = torch.where(magnitude <= FLOOR * 1.0001, torch.zeros_like(magnitude), magnitude)
    # Restore the dropped Nyquist bin and last frame as zeros.
    magnitude = torch.nn.functional.pad(magnitude, (0, 1, 0, 1))
    generator = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=generator))
    previous = torch.zeros_like(angles)
    window = _window(fmt)
    for _ in range(iterations):
        audio = torch.istft(magnitude * angles, fmt.n_fft, fmt.hop, window=window, length=fmt.clip_samples)
        rebuilt = torch.stft(audio, fmt.n_fft, fmt.hop, window=window, return_complex=True)
        # c_n / (1 + momentum): the same phases as c_n, which is all that is kept.
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp(min=1e-8)
    return torch.istft(magnitude * angles, fmt.n_fft, fmt.hop, window=window, length=fmt.clip_samples).numpy()


_FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def read_clips(folder: str | Path, fmt: SpectrogramFormat) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Every .wav under folder (recursively) as clips (N, clip_samples). Labels come from class
    subfolders, or from FSDD's `{digit}_{speaker}_{index}.wav` names; None otherwise."""
    folder = Path(folder)
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(folder.rglob("*.wav"))
    else:
        raise DataError(f"{folder} not found: pass a .wav file or a folder of .wav files")
    if not files:
        raise DataError(f"no .wav files under {folder}: pass a folder holding WAV clips")
    from ..limits import check_memory

    check_memory(len(files) * fmt.clip_samples * 4 * 3, f"{len(files)} clips of {fmt.clip_samples} samples",
                 "shorten --clip-seconds or lower --sample-rate")
    clips, kept = [], []
    for f in files:
        try:
            clips.append(fit_length(read_wav(f, fmt.sample_rate), fmt.clip_samples))
            kept.append(f)
        except DataError as err:
            if len(files) == 1:
                raise
            warnings.warn(f"skipped {f}: {err}", stacklevel=2)
    if not clips:
        raise DataError(f"none of the {len(files)} .wav files under {folder} could be read: convert them to PCM WAV")
    files, clips = kept, np.stack(clips)
    labels = None
    if all(_FSDD_NAME.match(f.name) for f in files):
        labels = np.array([int(_FSDD_NAME.match(f.name).group(1)) for f in files])
    elif folder.is_dir() and all(f.parent != folder for f in files):
        names = sorted({f.parent.name for f in files})
        labels = np.array([names.index(f.parent.name) for f in files])
    return clips, labels, [str(f) for f in files]


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean over clips and frames of sqrt(mean over bins of (20 log10 |X| - 20 log10 |Y|)^2), in dB.
    Inputs are natural-log magnitudes (N, 1, F, T)."""
    difference_db = (20 / math.log(10)) * (reference - estimate)
    return float(np.sqrt((difference_db ** 2).mean(axis=2)).mean())


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean over clips of || |X| - |Y| ||_F / || |X| ||_F (lower is better; 0 is exact)."""
    x, y = np.exp(reference), np.exp(estimate)
    axes = tuple(range(1, x.ndim))
    return float((np.sqrt(((x - y) ** 2).sum(axes)) / np.sqrt((x ** 2).sum(axes))).mean())
