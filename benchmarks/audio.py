"""Issue 11: the spectrogram VAE on the Free Spoken Digit Dataset ($VAEKIT_DATA/fsdd).

  python -m benchmarks.audio [--epochs 30] [--latent-dim 32] [--threads 2] [--keep DIR | --model DIR]

Official FSDD split (recording indices 0-4 of each digit and speaker are test, 5-49 train). Reports the
log-spectral distance (dB) and spectral convergence of test reconstructions, both of the decoded
spectrogram and of the Griffin-Lim audio re-analysed; a small CNN digit classifier trained on real
training spectrograms, scored on real test clips, on their reconstructions (through audio), and on prior
samples (mean confidence and entropy of its class posterior, and exp(E KL(p(y|x) || p(y))): an audio
analogue of the Inception Score), for latents drawn three ways: the prior N(0, I), the Gaussian fitted to
the aggregate posterior (what `vaekit audio sample` uses), and q(z|x) of random training clips (the
aggregate posterior itself: separates a weak decoder from a prior that misses where q(z|x) puts mass);
active latent units; the KL from the fitted Gaussian to N(0, I); and training seconds per epoch.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.common import markdown_table, write_results


def classifier_net() -> nn.Module:
    """A small CNN on (N, 1, 128, 96) standardized log-magnitudes: about 60 k weights."""
    return nn.Sequential(
        nn.AvgPool2d(2),  # (N, 1, 64, 48): speech energy below 4 kHz needs no finer grid to be told apart
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 32, 24)
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 16, 12)
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, 8, 6)
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d((2, 2)),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, 10))


class DigitClassifier:
    """The CNN above trained on real training spectrograms (natural-log magnitudes, N x 1 x F x T)."""

    def __init__(self, spectrograms: np.ndarray, labels: np.ndarray, epochs: int = 15, seed: int = 0):
        torch.manual_seed(seed)
        self.mean, self.std = float(spectrograms.mean()), float(spectrograms.std())
        self.net = classifier_net()
        x, y = self._input(spectrograms), torch.as_tensor(labels)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * -(-len(x) // 64))
        generator = torch.Generator().manual_seed(seed)
        self.net.train()
        for _ in range(epochs):
            for batch in torch.randperm(len(x), generator=generator).split(64):
                # Random time shifts (up to 8 frames, 64 ms) so the classifier keys on the sound, not its onset.
                shift = int(torch.randint(-8, 9, (), generator=generator))
                loss = nn.functional.cross_entropy(self.net(torch.roll(x[batch], shift, dims=3)), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        self.net.eval()

    def _input(self, spectrograms: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((spectrograms - self.mean) / self.std, dtype=torch.float32)

    def probabilities(self, spectrograms: np.ndarray) -> np.ndarray:
        """(N, 1, F, T) -> p(y|x), (N, 10)."""
        with torch.no_grad():
            return torch.cat([self.net(chunk).softmax(1) for chunk in self._input(spectrograms).split(256)]).numpy()


def score_samples(probs: np.ndarray, prefix: str) -> dict:
    """Mean confidence, mean entropy (nats), exp(E KL(p(y|x) || p(y))) and predicted-class counts."""
    log_probs = np.log(probs + 1e-12)
    marginal = probs.mean(0)
    kl = (probs * (log_probs - np.log(marginal + 1e-12))).sum(1)
    return {f"{prefix}_confidence": float(probs.max(1).mean()),
            f"{prefix}_entropy_nats": float(-(probs * log_probs).sum(1).mean()),
            f"{prefix}_inception_score": float(np.exp(kl.mean())),
            f"{prefix}_class_counts": np.bincount(probs.argmax(1), minlength=10).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--keep", help="write the trained model to this folder (default: a temporary one)")
    parser.add_argument("--model", help="evaluate this trained model folder instead of training one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from vaekit.apps.audio import aggregate_gaussian, fit_clips, load
    from vaekit.data.audio import (SpectrogramFormat, griffin_lim, log_spectral_distance, read_clips,
                                   spectral_convergence, spectrogram)

    root = Path(os.environ["VAEKIT_DATA"]) / "fsdd" / "recordings"
    fmt = SpectrogramFormat()
    clips, labels, files = read_clips(root, fmt)
    test = np.array([int(re.match(r"\d_[a-z]+_(\d+)\.wav", Path(f).name).group(1)) < 5 for f in files])
    real_train, real_test = spectrogram(clips[~test], fmt), spectrogram(clips[test], fmt)
    out = Path(tempfile.mkdtemp(prefix="bench-audio-"))
    try:
        if args.model:
            model = load(args.model)
        else:
            model = fit_clips(clips[~test], labels[~test], args.keep or out / "model", fmt, epochs=args.epochs,
                              latent_dim=args.latent_dim, progress=False, val_fraction=0.1)
        history = model.run.history
        vae = model.run.vae.eval()
        started = time.perf_counter()
        classifier = DigitClassifier(real_train, labels[~test])
        classifier_seconds = time.perf_counter() - started

        through_audio = lambda spec: spectrogram(griffin_lim(spec, fmt), fmt)  # noqa: E731
        batches = lambda x: [x[i:i + 100] for i in range(0, len(x), 100)]  # noqa: E731
        with torch.no_grad():
            rebuilt = np.concatenate([model.decode(model.encode_clips(c)) for c in batches(clips[test])])
            qz = [vae.encode(torch.as_tensor(model.to_model(s))) for s in batches(real_train)]
        loc = torch.cat([q.mean for q in qz])  # (N, latent)
        scale = torch.cat([q.stddev for q in qz])
        if model.latent_loc is None:  # a model saved before the fitted sampler
            model.latent_loc, model.latent_scale_tril = aggregate_gaussian(vae, model.to_model(real_train))
        rebuilt_audio = through_audio(rebuilt)
        generator = torch.Generator().manual_seed(0)
        pick = torch.randint(len(loc), (args.samples,), generator=generator)
        latents = {"sample": model.draw_latents(args.samples, generator, "standard"),
                   "fitted_sample": model.draw_latents(args.samples, generator, "fitted"),
                   "posterior_sample": loc[pick] + scale[pick] * torch.randn(args.samples, vae.latent_dim,
                                                                           generator=generator)}
        scores = {}
        for name, z in latents.items():
            scores.update(score_samples(classifier.probabilities(through_audio(model.decode(z))), name))
        # KL(N(m, L L^T) || N(0, I)) of the fitted Gaussian: how far the aggregate posterior is from the prior.
        m, tril = model.latent_loc, model.latent_scale_tril
        aggregate_kl = 0.5 * float((tril ** 2).sum() + m @ m - len(m) - 2 * tril.diagonal().log().sum())
        probs_real, probs_recon = classifier.probabilities(real_test), classifier.probabilities(rebuilt_audio)
        row = {"epochs": len(history), "seconds_per_epoch": float(np.median([r["epoch_seconds"] for r in history])),
               "val_neg_elbo": history[-1].get("val_neg_elbo"), "val_kl": history[-1].get("val_kl"),
               "lsd_db_spectrogram": log_spectral_distance(real_test, rebuilt),
               "sc_spectrogram": spectral_convergence(real_test, rebuilt),
               "lsd_db_audio": log_spectral_distance(real_test, rebuilt_audio),
               "sc_audio": spectral_convergence(real_test, rebuilt_audio),
               "classifier_acc_real": float((probs_real.argmax(1) == labels[test]).mean()),
               "classifier_acc_reconstructions": float((probs_recon.argmax(1) == labels[test]).mean()),
               "reconstruction_class_counts": np.bincount(probs_recon.argmax(1), minlength=10).tolist(),
               **scores,
               "active_units": int((loc.var(0) > 0.01).sum()),
               "aggregate_posterior_kl_to_prior": aggregate_kl,
               "classifier_train_seconds": classifier_seconds,
               "train_clips": int((~test).sum()), "test_clips": int(test.sum()), "threads": args.threads}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(markdown_table([row], [("epochs", "epochs", ""), ("seconds_per_epoch", "s/epoch", ".1f"),
                                 ("lsd_db_spectrogram", "LSD dB (spec)", ".2f"), ("sc_spectrogram", "SC (spec)", ".3f"),
                                 ("lsd_db_audio", "LSD dB (audio)", ".2f"), ("sc_audio", "SC (audio)", ".3f"),
                                 ("classifier_acc_real", "clf acc real", ".3f"),
                                 ("classifier_acc_reconstructions", "clf acc recon", ".3f"),
                                 ("sample_confidence", "sample conf.", ".3f"),
                                 ("sample_entropy_nats", "sample entropy", ".2f"),
                                 ("sample_inception_score", "IS", ".2f"),
                                 ("fitted_sample_confidence", "fitted conf.", ".3f"),
                                 ("fitted_sample_inception_score", "fitted IS", ".2f"),
                                 ("posterior_sample_inception_score", "q(z) IS", ".2f"),
                                 ("active_units", "active units", "")]))
    for key in ("sample", "fitted_sample", "posterior_sample", "reconstruction"):
        print(f"{key} classes: {row[key + '_class_counts']}")
    write_results("audio", {"row": row, "history": history})


if __name__ == "__main__":
    main()
