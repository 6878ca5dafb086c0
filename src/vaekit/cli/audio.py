"""`vaekit audio fit|sample|reconstruct|interpolate`: the flags of the spectrogram VAE, each verb one call of
vaekit.apps.audio."""

from __future__ import annotations

from ..apps import audio
from .flags import add_overwrite, add_parameter, add_verbs

EXAMPLES = {
    "fit": "vaekit audio fit recordings/ -o runs/audio --epochs 30",
    "sample": "vaekit audio sample runs/audio -n 8 -o samples/",
    "reconstruct": "vaekit audio reconstruct runs/audio clip.wav -o clip_vae.wav",
    "interpolate": "vaekit audio interpolate runs/audio a.wav b.wav --steps 8 -o morph/",
}


def add_commands(subparsers) -> None:
    verb = add_verbs(subparsers, "audio", "a spectrogram VAE for short sound clips (fit, sample, ...)",
                     "Train a VAE on log-magnitude spectrograms of WAV clips and turn its outputs back into sound "
                     "with Griffin-Lim.", EXAMPLES)

    p = verb("fit", "train on a folder of .wav files")
    p.add_argument("folder")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    add_parameter(p, audio.fit_clips, "epochs", help="training epochs")
    add_parameter(p, audio.fit_clips, "latent_dim", help="size of z")
    add_parameter(p, audio.fit, "sample_rate", help="clips are resampled to this rate (Hz)")
    add_parameter(p, audio.fit, "clip_seconds", help="clips are trimmed or padded to this length")
    add_parameter(p, audio.fit_clips, "seed", help="seed of the weights and the shuffling")
    add_overwrite(p, audio.fit)
    p.set_defaults(handler=lambda a: audio.fit(a.folder, a.out, a.sample_rate, a.clip_seconds, a.overwrite,
                                               epochs=a.epochs, latent_dim=a.latent_dim, seed=a.seed).run.path)

    p = verb("sample", "generate WAV clips from the prior")
    p.add_argument("model")
    add_parameter(p, audio.sample, "n", "-n", help="number of clips")
    add_parameter(p, audio.sample, "out", "-o", "--out", help="output folder")
    add_parameter(p, audio.sample, "seed", help="seed of the draws")
    p.add_argument("--from", dest="source", choices=audio.SAMPLE_FROM,
                   help="latent draws: fitted (a Gaussian fitted to the training clips' posteriors; the default "
                   "when the model has one) or standard (the prior N(0, I))")
    p.set_defaults(handler=lambda a: tuple(audio.sample(a.model, a.n, a.out, a.seed, a.source)))

    p = verb("reconstruct", "encode and decode one clip")
    p.add_argument("model")
    p.add_argument("clip")
    p.add_argument("-o", "--out", help="output .wav (default: CLIP_reconstruction.wav)")
    p.set_defaults(handler=lambda a: tuple(audio.reconstruct(a.model, a.clip, a.out)))

    p = verb("interpolate", "morph between two clips through the latent space")
    p.add_argument("model")
    p.add_argument("first")
    p.add_argument("second")
    add_parameter(p, audio.interpolate, "steps", help="clips on the path, both ends included")
    add_parameter(p, audio.interpolate, "out", "-o", "--out", help="output folder")
    p.set_defaults(handler=lambda a: tuple(audio.interpolate(a.model, a.first, a.second, a.steps, a.out)))
