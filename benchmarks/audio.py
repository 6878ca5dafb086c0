"""Issue 11: the spectrogram VAE on the Free Spoken Digit Dataset ($VAEKIT_DATA/fsdd).

  python -m benchmarks.audio [--epochs 30] [--latent-dim 32] [--threads 2]

Official FSDD split (recording indices 0-4 of each digit and speaker are test, 5-49 train). Reports the
log-spectral distance (dB) and spectral convergence of test reconstructions, both of the decoded
spectrogram and of the Griffin-Lim audio re-analysed; a logistic-regression digit classifier trained on
real training spectrograms, scored on real test clips, on their reconstructions (through audio), and on
prior samples (mean confidence and entropy of its class posterior: an audio analogue of the Inception
Score); and training seconds per epoch.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import markdown_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from vaekit.apps.audio import fit_clips
    from vaekit.data.audio import (SpectrogramFormat, griffin_lim, log_spectral_distance, read_clips,
                                   spectral_convergence, spectrogram)

    root = Path(os.environ["VAEKIT_DATA"]) / "fsdd" / "recordings"
    fmt = SpectrogramFormat()
    clips, labels, files = read_clips(root, fmt)
    test = np.array([int(re.match(r"\d_[a-z]+_(\d+)\.wav", Path(f).name).group(1)) < 5 for f in files])
    out = Path(tempfile.mkdtemp(prefix="bench-audio-"))
    try:
        model = fit_clips(clips[~test], labels[~test], out / "model", fmt, epochs=args.epochs,
                          latent_dim=args.latent_dim, progress=False, val_fraction=0.1)
        history = model.run.history
        seconds = [row["epoch_seconds"] for row in history]
        real_test = spectrogram(clips[test], fmt)
        with torch.no_grad():
            rebuilt = np.concatenate([model.decode(model.encode_clips(clips[test][i:i + 100]))
                                      for i in range(0, int(test.sum()), 100)])
        rebuilt_audio = spectrogram(griffin_lim(rebuilt, fmt), fmt)
        generator = torch.Generator().manual_seed(0)
        z = torch.randn(args.samples, args.latent_dim, generator=generator)
        samples_audio = spectrogram(griffin_lim(model.decode(z), fmt), fmt)

        scaler = StandardScaler().fit(spectrogram(clips[~test], fmt).reshape(int((~test).sum()), -1))
        features = lambda spec: scaler.transform(spec.reshape(len(spec), -1))  # noqa: E731
        classifier = LogisticRegression(max_iter=300, C=0.01).fit(
            features(spectrogram(clips[~test], fmt)), labels[~test])
        probs = classifier.predict_proba(features(samples_audio))
        entropy = float(-(probs * np.log(probs + 1e-12)).sum(1).mean())
        marginal = probs.mean(0)
        inception = float(np.exp((probs * (np.log(probs + 1e-12) - np.log(marginal + 1e-12))).sum(1).mean()))
        row = {"epochs": len(history), "seconds_per_epoch": float(np.median(seconds)),
               "val_neg_elbo": history[-1].get("val_neg_elbo"),
               "lsd_db_spectrogram": log_spectral_distance(real_test, rebuilt),
               "sc_spectrogram": spectral_convergence(real_test, rebuilt),
               "lsd_db_audio": log_spectral_distance(real_test, rebuilt_audio),
               "sc_audio": spectral_convergence(real_test, rebuilt_audio),
               "classifier_acc_real": float(classifier.score(features(real_test), labels[test])),
               "classifier_acc_reconstructions": float(classifier.score(features(rebuilt_audio), labels[test])),
               "sample_confidence": float(probs.max(1).mean()), "sample_entropy_nats": entropy,
               "sample_inception_score": inception, "sample_class_counts": np.bincount(probs.argmax(1), minlength=10).tolist(),
               "train_clips": int((~test).sum()), "test_clips": int(test.sum()), "threads": args.threads}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(markdown_table([row], [("epochs", "epochs", ""), ("seconds_per_epoch", "s/epoch", ".1f"),
                                 ("lsd_db_spectrogram", "LSD dB (spec)", ".2f"), ("sc_spectrogram", "SC (spec)", ".3f"),
                                 ("lsd_db_audio", "LSD dB (audio)", ".2f"), ("sc_audio", "SC (audio)", ".3f"),
                                 ("classifier_acc_real", "clf acc real", ".3f"),
                                 ("classifier_acc_reconstructions", "clf acc recon", ".3f"),
                                 ("sample_confidence", "sample conf.", ".3f"), ("sample_inception_score", "IS", ".2f")]))
    write_results("audio", {"row": row, "history": history})


if __name__ == "__main__":
    main()
