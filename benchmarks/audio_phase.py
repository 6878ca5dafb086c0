"""Griffin-Lim on torch.stft/istft (vaekit's) against librosa's, on real spectrograms (issue 11).

  VAEKIT_DATA=../shared/data python -m benchmarks.audio_phase [--clips 100] [--iterations 64] [--threads 1]

Both recover phase for the exact log-magnitude spectrograms of the first FSDD test clips (recording
indices 0-4), with the same iterations, momentum 0.99 and a random initial phase; each output is
re-analysed and compared with the original: log-spectral distance (dB) and spectral convergence (lower
is better for both), and wall seconds for all clips (librosa: one clip per call, as its API takes).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import markdown_table, write_results


def librosa_griffin_lim(log_magnitude: np.ndarray, fmt, iterations: int) -> np.ndarray:
    import librosa

    # The same magnitudes vaekit's griffin_lim inverts: Nyquist bin and last frame restored as zeros.
    magnitude = np.pad(np.exp(log_magnitude[:, 0]), ((0, 0), (0, 1), (0, 1)))
    window = np.hanning(fmt.n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
    return np.stack([librosa.griffinlim(m, n_iter=iterations, hop_length=fmt.hop, n_fft=fmt.n_fft, window=window,
                                        length=fmt.clip_samples, momentum=0.99, init="random", random_state=0)
                     for m in magnitude]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from vaekit.data.audio import (SpectrogramFormat, griffin_lim, log_spectral_distance, read_clips,
                                   spectral_convergence, spectrogram)

    fmt = SpectrogramFormat()
    clips, _, files = read_clips(Path(os.environ["VAEKIT_DATA"]) / "fsdd" / "recordings", fmt)
    test = [int(re.match(r"\d_[a-z]+_(\d+)\.wav", Path(f).name).group(1)) < 5 for f in files]
    original = spectrogram(clips[np.array(test)][: args.clips], fmt)
    methods = {"vaekit (torch.stft/istft, batched)": lambda: griffin_lim(original, fmt, args.iterations),
               "librosa.griffinlim (per clip)": lambda: librosa_griffin_lim(original, fmt, args.iterations)}
    librosa_griffin_lim(original[:1], fmt, 2)  # numba compiles on the first call: keep it out of the timing
    rows = []
    for name, invert in methods.items():
        started = time.perf_counter()
        audio = invert()
        seconds = time.perf_counter() - started
        rebuilt = spectrogram(audio, fmt)
        rows.append({"method": name, "clips": len(original), "seconds": seconds,
                     "lsd_db": log_spectral_distance(original, rebuilt),
                     "spectral_convergence": spectral_convergence(original, rebuilt)})
    table = markdown_table(rows, [("method", "Griffin-Lim", ""), ("clips", "clips", ""), ("seconds", "wall s", ".2f"),
                                  ("lsd_db", "LSD dB", ".2f"), ("spectral_convergence", "SC", ".3f")])
    print(table)
    path = write_results("audio_phase", {"config": vars(args), "rows": rows, "table": table})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
