"""Quantized bottlenecks: posteriors that map the encoder's output to the nearest of a finite set of codes.

A bottleneck is a `Posterior` whose q(z|x) is a point mass on a code (`QuantizedCode`), with the uniform prior over
codes `UniformCodes` beside it, so that the VAE's ELBO stays honest: KL(q || p) = log K per code vector (van den
Oord et al. 2017, sec. 3.1), and log p(x) >= log p(x|z*) - n log K. Gradients pass the rounding straight through.

- `VectorQuantizer`: VQ-VAE (van den Oord et al. 2017) with the codebook learned by exponential moving averages
  (their appendix A.1), the commitment loss of their eq. 3, and codes unused for a while restarted at encoder outputs
  of the batch (Dhariwal et al. 2020, "Jukebox", sec. 3.3 / Zeghidour et al. 2021).
- `FiniteScalarQuantizer`: FSQ (Mentzer et al. 2023): each of d dimensions bounded and rounded to L_i levels; the
  codebook is the grid, nothing to learn and no code can die.
Both count the codes they emit while training, so `epoch_statistics` reports codebook usage and perplexity.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent

from .errors import ConfigError
from .posteriors import Posterior
from .priors import Prior

DEAD_CODE_COUNT = 0.03  # a code whose moving-average count of assignments per step falls below this is restarted


class QuantizedCode(Distribution):
    """The point mass q(z|x) = delta(z - z_q) of a quantizer: batch_shape (batch,), event_shape (latent_dim,).
    `rsample` is z_q with the straight-through gradient; `penalty` (batch,) is the quantizer's own training loss
    (the commitment loss; the VAE adds it to its objective), `codes` (batch, n_codes) the code indices."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, z: torch.Tensor, penalty: torch.Tensor, codes: torch.Tensor):
        self.z, self.penalty, self.codes = z, penalty, codes
        super().__init__(z.shape[:-1], z.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.z

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.z.expand(*sample_shape, *self.z.shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """0 at the code itself (a probability of one), the only point the VAE evaluates it at."""
        return torch.zeros(value.shape[:-1], device=value.device)


class Quantizer(Posterior, abc.ABC):
    """A bottleneck: the encoder's (batch, latent_dim) cut into n_codes vectors of code_dim values, each mapped to
    one of codebook_size codes."""

    stats_per_latent = 1  # the encoder gives one number per latent value (a Gaussian posterior takes two)

    def __init__(self, latent_dim: int, code_dim: int, codebook_size: int):
        super().__init__()
        if latent_dim % code_dim:
            raise ConfigError(f"--latent-dim {latent_dim} must be a multiple of the code size {code_dim} "
                              f"(--code-dim, or the number of --fsq-levels): e.g. --latent-dim {4 * code_dim}")
        self.latent_dim, self.code_dim, self.codebook_size = latent_dim, code_dim, codebook_size
        self.n_codes = latent_dim // code_dim
        self.register_buffer("counts", torch.zeros(codebook_size), persistent=False)  # codes emitted while training

    @abc.abstractmethod
    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """The latents (..., latent_dim) of code indices (..., n_codes)."""

    @abc.abstractmethod
    def codes_of(self, z: torch.Tensor) -> torch.Tensor:
        """The code indices (..., n_codes) of latents (..., latent_dim): the inverse of `lookup` on its values."""

    def count(self, codes: torch.Tensor) -> None:
        if self.training:  # index_add_, not bincount: on a GPU bincount reads the largest code on the host each step
            codes = codes.flatten()
            self.counts.index_add_(0, codes, torch.ones_like(codes, dtype=self.counts.dtype))

    def epoch_statistics(self) -> dict[str, float]:
        """Codebook usage (share of codes emitted at least once) and perplexity (exp of the entropy of the codes'
        frequencies) since the last call, over training steps (of every rank under data-parallel training: every
        rank must call it); the counts start again."""
        counts, = _summed_over_ranks(self.counts)  # (K,): the global batch's, not this rank's share
        total = float(counts.sum())
        if total == 0:
            return {}
        p = counts / total
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        stats = {"codebook_usage": float((counts > 0).float().mean()), "perplexity": math.exp(entropy)}
        self.counts.zero_()
        return stats


class VectorQuantizer(Quantizer):
    """VQ with an EMA codebook (codebook_size, code_dim), commitment weight `commitment` (their beta, 0.25)."""

    def __init__(self, latent_dim: int, codebook_size: int = 512, code_dim: int = 8, commitment: float = 0.25,
                 decay: float = 0.99, epsilon: float = 1e-5):
        super().__init__(latent_dim, code_dim, codebook_size)
        self.commitment, self.decay, self.epsilon = commitment, decay, epsilon
        embed = torch.randn(codebook_size, code_dim)
        self.register_buffer("embed", embed)  # (K, code_dim)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # moving average of assignments per step
        self.register_buffer("embed_sum", embed.clone())  # moving average of the assigned vectors' sum
        self.register_buffer("initialized", torch.tensor(False))  # set by the first training batch
        self._placed = False  # `initialized` seen set: read on the host once, not at every step (a GPU sync)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.embed[codes].flatten(-2)

    def codes_of(self, z: torch.Tensor) -> torch.Tensor:
        """The nearest code of each code_dim slice of z (..., latent_dim) -> (..., n_codes)."""
        flat = z.reshape(-1, self.code_dim)
        return torch.cdist(flat, self.embed).argmin(-1).view(*z.shape[:-1], self.n_codes)

    def forward(self, stats: torch.Tensor) -> QuantizedCode:
        h = stats.view(len(stats), self.n_codes, self.code_dim)  # (batch, n_codes, code_dim)
        flat = h.detach().reshape(-1, self.code_dim)
        if self.training and not self._placed:
            if not self.initialized:
                self._restart(torch.arange(self.codebook_size, device=flat.device), flat)
                self.initialized.fill_(True)
            self._placed = True
        codes = self.codes_of(flat.view(len(h), -1)).flatten()  # (batch * n_codes,)
        if self.training:
            self._update(flat, codes)
        self.count(codes)
        e = self.embed[codes].view_as(h)
        penalty = self.commitment * (h - e).pow(2).sum((1, 2))  # (batch,) their eq. 3, codebook term by EMA
        z = h + (e - h).detach()  # straight-through
        return QuantizedCode(z.flatten(1), penalty, codes.view(len(h), self.n_codes))

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA codebook step (van den Oord et al. 2017, app. A.1), then dead codes restarted at batch vectors."""
        onehot = nn.functional.one_hot(codes, self.codebook_size).to(flat.dtype)  # (batch * n_codes, K)
        counts, sums = _summed_over_ranks(onehot.sum(0), onehot.T @ flat)  # (K,), (K, code_dim)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n  # Laplace
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < DEAD_CODE_COUNT  # (K,)
        if flat.device.type == "cpu":  # which codes died is read for free here, and these are the CPU runs' draws
            codes = torch.nonzero(dead).flatten()
            if len(codes):
                self._restart(codes, flat)
        else:  # on a GPU that read would hold every step until the device caught up
            self._restart_where(dead, flat)

    @torch.no_grad()
    def _restart(self, codes: torch.Tensor, flat: torch.Tensor) -> None:
        """Codes `codes` moved onto random vectors of the batch `flat` (batch * n_codes, code_dim), as if each had
        been assigned once: the first training batch places the whole codebook so (data-dependent initialization),
        later ones the dead codes."""
        picks = flat[torch.randint(len(flat), (len(codes),), device=flat.device)]
        if _distributed():  # every rank restarts the same codes (their counts are all-reduced): at rank 0's picks
            torch.distributed.broadcast(picks, 0)
        self.embed[codes], self.embed_sum[codes], self.cluster_size[codes] = picks, picks, 1.0

    @torch.no_grad()
    def _restart_where(self, dead: torch.Tensor, flat: torch.Tensor) -> None:
        """_restart of the codes where `dead` (K,) is true, with no host read of which they are: every code draws a
        vector of the batch and only the dead take theirs."""
        picks = flat[torch.randint(len(flat), (self.codebook_size,), device=flat.device)]  # (K, code_dim)
        if _distributed():  # as in _restart: rank 0's picks everywhere
            torch.distributed.broadcast(picks, 0)
        self.embed.copy_(torch.where(dead[:, None], picks, self.embed))
        self.embed_sum.copy_(torch.where(dead[:, None], picks, self.embed_sum))
        self.cluster_size.masked_fill_(dead, 1.0)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1


def _summed_over_ranks(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors summed over the ranks of the process group when one is active (data-parallel training: every rank
    then takes the same EMA step, from the whole global batch), else as they are."""
    if not _distributed():
        return tensors
    flat = torch.cat([t.flatten() for t in tensors])
    torch.distributed.all_reduce(flat)
    return tuple(part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors))


class FiniteScalarQuantizer(Quantizer):
    """FSQ with `levels` per dimension (e.g. (8, 5, 5, 5): a codebook of 1,000 codes of 4 dimensions)."""

    def __init__(self, latent_dim: int, levels: tuple[int, ...] = (8, 5, 5, 5)):
        if not levels or min(levels) < 2:
            raise ConfigError(f"--fsq-levels must list levels of at least 2, e.g. 8,5,5,5; got {levels}")
        super().__init__(latent_dim, len(levels), math.prod(levels))
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        basis = torch.cumprod(torch.tensor((1, *levels[:-1])), 0)
        self.register_buffer("basis", basis, persistent=False)  # code index = sum_i digit_i * basis_i

    def forward(self, stats: torch.Tensor) -> QuantizedCode:
        h = stats.view(len(stats), self.n_codes, self.code_dim)
        half = (self.levels - 1) * (1 + 1e-3) / 2
        offset = (self.levels % 2 == 0) * 0.5
        bounded = torch.tanh(h + torch.atanh(offset / half)) * half - offset  # Mentzer et al. 2023, sec. 3
        rounded = bounded + (bounded.round() - bounded).detach()
        z = (rounded / (self.levels // 2)).flatten(1)
        codes = self.codes_of(z.detach())  # (batch, n_codes)
        self.count(codes)
        return QuantizedCode(z, torch.zeros(len(h), device=h.device), codes)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        digits = codes[..., None] // self.basis % self.levels  # (..., n_codes, code_dim)
        width = self.levels // 2
        return ((digits - width) / width).flatten(-2)

    def codes_of(self, z: torch.Tensor) -> torch.Tensor:
        width = self.levels // 2
        digits = (z.unflatten(-1, (self.n_codes, self.code_dim)) * width).round().long() + width
        return (digits * self.basis).sum(-1)


class UniformCodes(Prior):
    """p(z): each of the quantizer's n_codes vectors uniform over its codebook: log p(z) = -n_codes log K at codes."""

    def __init__(self, quantizer: Quantizer):
        super().__init__()
        self.latent_dim, self.n_codes, self.codebook_size = quantizer.latent_dim, quantizer.n_codes, quantizer.codebook_size
        self._lookup = quantizer.lookup  # a bound method, not a submodule: the codebook is saved once, as the posterior's
        self.register_buffer("logits", torch.zeros(self.n_codes, self.codebook_size), persistent=False)

    def forward(self) -> Distribution:
        return Independent(Categorical(logits=self.logits), 1)  # over code indices (n_codes,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        codes = torch.randint(self.codebook_size, (n, self.n_codes), generator=generator, device=self.logits.device)
        return self._lookup(codes)

    def _nats(self, shape) -> torch.Tensor:
        return torch.full(shape, self.n_codes * math.log(self.codebook_size), device=self.logits.device)

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        return self._nats(qz.batch_shape)

    def kl_terms(self, qz: Distribution, z: torch.Tensor, split: bool = True) -> torch.Tensor:
        return self._nats((*qz.batch_shape, 1))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -self._nats(z.shape[:-1])


BOTTLENECKS = ("gaussian", "vq", "fsq")


def build_quantizer(kind: str, latent_dim: int, codebook_size: int, code_dim: int,
                    fsq_levels: tuple[int, ...]) -> Quantizer:
    """The quantizer `kind` (vq or fsq) of a latent of latent_dim values."""
    if kind == "vq":
        return VectorQuantizer(latent_dim, codebook_size, code_dim)
    if kind == "fsq":
        return FiniteScalarQuantizer(latent_dim, tuple(fsq_levels))
    raise ConfigError(f"unknown bottleneck '{kind}': use one of {', '.join(BOTTLENECKS)}")
