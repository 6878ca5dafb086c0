"""Lossless bits-back coding with ANS (BB-ANS; Townsend, Bird & Barber 2019, "Practical lossless
compression with latent variables using bits back coding", Algorithm 1).

Per image x, on one ANS stack (constriction's AnsCoder, last in first out):

    encode:  z ~ Q(z|x)  decoded off the stack  (the bits we get back)
             x           pushed with p(x|z): Bernoulli per pixel for binary images; for 8-bit images
                         a categorical over the 256 levels, the discretized logistic's exact pmf
             z           pushed with P(z)
    decode:  the same three steps reversed: pop z with P(z), pop x with p(x|z), push z with Q(z|x).

Images are chained on one stack, so each image's bits back come from the images before it; the
expected cost per image is -ELBO (in bits) plus discretization overheads, which
`benchmarks/compression.py` measures. Latents live on a grid z = k * 2**-step_log2, |z| <= z_max;
P and Q are the prior and the posterior Gaussians integrated over the grid's buckets (constriction's
QuantizedGaussian), so the bucket width cancels in the rate log Q - log P. constriction gives every
symbol of a model's alphabet at least probability 2**-24; over the whole grid that leak would send about
1 in 20 images to a far-away latent (measured: +2.7% over -ELBO), so Q is coded over a window of
+-8 posterior standard deviations around its mean (half-width rounded up to a power of two).

Determinism: decoding needs bit-identical distributions to the ones used when encoding. Every
network call here sees one image (batch 1, the same shape on both sides), runs under
`torch.set_num_threads(1)` in inference mode on the CPU, and the distribution parameters are
converted to float64 before constriction turns them into fixed-point tables (its Rust code is
deterministic). Decoding on the machine and torch build that encoded is therefore exact; another
machine may compute a last bit differently, which the data hash in the file header catches.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ..errors import ConfigError
from ..likelihoods.discrete import Bernoulli
from ..likelihoods.discretized import LEVELS, DiscretizedLogistic, DiscretizedLogisticDistribution
from ..posteriors import DiagonalGaussian
from ..progress import progress_bar
from .config import CoderConfig
from .lossy import gaussian_prior


@contextlib.contextmanager
def deterministic_torch():
    """One thread and inference mode for the duration; the thread count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(threads)


def _bernoulli_model(likelihood, params: torch.Tensor):
    """constriction family and per-value parameters (float64 probability of a 1)."""
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False), (torch.sigmoid(params.double()).reshape(-1).numpy(),)


def _discretized_logistic_model(likelihood, params: torch.Tensor):
    """A categorical over the 256 levels per value: its exact pmf, (values, 256) float64."""
    import constriction

    px = likelihood.distribution(params)
    pmf = DiscretizedLogisticDistribution(px.loc.double(), px.scale.double(), px.event_dims).probs()
    return constriction.stream.model.Categorical(perfect=False), (pmf.reshape(-1, LEVELS).numpy(),)


# Likelihood class -> function(likelihood, decoder output (1, ...)) -> (constriction family, parameter
# arrays). A likelihood whose values are not discrete symbols (Gaussian) has no lossless code.
SYMBOL_MODELS = {Bernoulli: _bernoulli_model, DiscretizedLogistic: _discretized_logistic_model}


def check_codable(vae) -> None:
    """ConfigError unless this VAE's likelihood and prior can drive the bits-back coder."""
    if type(vae.likelihood) not in SYMBOL_MODELS:
        raise ConfigError(f"lossless coding needs a discrete likelihood (bernoulli, discretized_logistic); this run "
                          f"uses {type(vae.likelihood).__name__.lower()}: train with --likelihood bernoulli on "
                          "binarized images or --likelihood discretized_logistic on 8-bit images")
    if not isinstance(vae.posterior, DiagonalGaussian):
        raise ConfigError(f"lossless coding codes z with a diagonal Gaussian posterior; this run's is "
                          f"{type(vae.posterior).__name__}: train with --posterior gaussian")
    gaussian_prior(vae)


class BitsBackCoder:
    """Chains images on one ANS stack. `x` arrays are symbols, uint8 (n, *data_shape): 0/1 for a
    Bernoulli likelihood, the levels 0..255 for a discretized logistic (`levels` says which)."""

    def __init__(self, vae, config: CoderConfig = CoderConfig()):
        import constriction

        config.validate()
        check_codable(vae)
        self.vae, self.config = vae, config
        self.latents = constriction.stream.model.QuantizedGaussian(-config.max_symbol, config.max_symbol)
        pz = gaussian_prior(vae)
        self.prior_loc = (pz.loc.double() / config.step).cpu().numpy()
        self.prior_scale = (pz.scale.double() / config.step).cpu().numpy()
        self.symbol_model = SYMBOL_MODELS[type(vae.likelihood)]
        self.levels = LEVELS if isinstance(vae.likelihood, DiscretizedLogistic) else 2
        self._windows: dict[int, object] = {}  # half-width W -> QuantizedGaussian(-W, W)

    def initial_words(self) -> np.ndarray:
        """Random words the first image's posterior sample is decoded from, enough for one pop of
        ~(step_log2 + 3) bits per latent. They are part of the message (and checked when decoding)."""
        n = math.ceil(self.vae.latent_dim * (self.config.step_log2 + 3) / 32) + 1
        words = np.random.default_rng(self.config.seed).integers(1, 2 ** 32, n, dtype=np.uint32)
        return words

    def _posterior(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, object, np.ndarray, np.ndarray]]:
        """Q(z|x) as groups (dims, centres, family, loc, scale): symbols j of a group's window
        [-W, W] stand for grid indices k = centre + j; groups share one W."""
        qz = self.vae.encode(torch.from_numpy(x[None].astype(np.float32) / np.float32(self.levels - 1)))  # in [0, 1]
        loc, scale = ((t[0].double() / self.config.step).numpy() for t in (qz.mean, qz.stddev))
        top = self.config.max_symbol
        width = np.minimum(2 ** np.ceil(np.log2(np.maximum(8 * scale, 1))), top).astype(np.int64)
        centre = np.clip(np.round(loc), -top + width, top - width).astype(np.int64)
        groups = []
        for w in np.unique(width):
            dims = np.flatnonzero(width == w)
            if int(w) not in self._windows:
                import constriction

                self._windows[int(w)] = constriction.stream.model.QuantizedGaussian(-int(w), int(w))
            groups.append((dims, centre[dims], self._windows[int(w)], loc[dims] - centre[dims], scale[dims]))
        return groups

    def _pop_posterior(self, coder, x: np.ndarray) -> np.ndarray:
        k = np.empty(self.vae.latent_dim, dtype=np.int64)
        for dims, centre, family, loc, scale in self._posterior(x):
            k[dims] = centre + coder.decode(family, loc, scale)
        return k.astype(np.int32)

    def _push_posterior(self, coder, x: np.ndarray, k: np.ndarray) -> None:
        for dims, centre, family, loc, scale in reversed(self._posterior(x)):
            coder.encode_reverse((k[dims] - centre).astype(np.int32), family, loc, scale)

    def _likelihood(self, k: np.ndarray):
        z = torch.from_numpy(k * self.config.step).float()[None]  # (1, latent), exact on the grid
        return self.symbol_model(self.vae.likelihood, self.vae.decoder(z))

    def encode(self, x: np.ndarray, progress: bool = False) -> np.ndarray:
        """Compress symbols x (n, *data_shape) into uint32 words (LIFO order of constriction); `progress` shows a
        bar with an ETA on a terminal."""
        import constriction

        coder = constriction.stream.stack.AnsCoder(self.initial_words())
        with deterministic_torch():
            for image in progress_bar(x, desc="bits-back coding", enabled=progress, unit="image"):
                k = self._pop_posterior(coder, image)
                family, params = self._likelihood(k)
                coder.encode_reverse(image.reshape(-1).astype(np.int32), family, *params)
                coder.encode_reverse(k, self.latents, self.prior_loc, self.prior_scale)
        return coder.get_compressed()

    def decode(self, words: np.ndarray, n: int, shape: tuple[int, ...],
               progress: bool = False) -> tuple[np.ndarray, bool]:
        """Symbols (n, *shape) uint8 back from words; the flag says whether the stack ended exactly
        on the initial words (it does unless the words are corrupt or the numerics differ). `progress` shows a bar
        with an ETA on a terminal."""
        import constriction

        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        out = np.empty((n, math.prod(shape)), dtype=np.uint8)
        with deterministic_torch():
            for i in progress_bar(range(n - 1, -1, -1), desc="bits-back decoding", enabled=progress, unit="image"):
                k = coder.decode(self.latents, self.prior_loc, self.prior_scale)
                family, params = self._likelihood(k)
                out[i] = coder.decode(family, *params)
                self._push_posterior(coder, out[i].reshape(shape), k)
        clean = np.array_equal(coder.get_compressed(), self.initial_words())
        return out.reshape(n, *shape), clean
