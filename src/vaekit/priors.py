"""Priors p(z): modules that return a Distribution over the latent (event shape (latent_dim,)) and
own the maths the VAE asks of them: log p(z), draws, and KL(q(z|x) || p(z)).

A prior with a closed-form KL from the posterior it meets (the standard normal against a diagonal
Gaussian) returns it; any other prior estimates the KL by Monte Carlo on the reparameterized draws
the VAE already made, `monte_carlo_kl`: a new prior (a VampPrior, a mixture) writes its density and
a sampler, and answers `kl` and `kl_terms` with that estimate.
"""

from __future__ import annotations

import abc

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from .errors import ConfigError
from .posteriors import DiagonalNormal, as_diagonal_normal


class Prior(nn.Module, abc.ABC):
    """Abstract prior. `forward()` returns p(z) with event shape (latent_dim,)."""

    latent_dim: int

    @abc.abstractmethod
    def forward(self) -> Distribution: ...

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws (n, latent_dim) on the prior's device; the same draws from the same generator
        whatever that device is."""

    @abc.abstractmethod
    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(qz || p) per example (batch,), in nats: exact where a closed form exists, else the
        Monte-Carlo estimate over the draws z (..., batch, latent_dim) of qz (`monte_carlo_kl`)."""

    @abc.abstractmethod
    def kl_terms(self, qz: Distribution, z: torch.Tensor) -> torch.Tensor:
        """The training step's KL(qz || p) as the terms free bits floor, (batch, terms), in nats, for
        one draw z (batch, latent_dim) of qz: one term per latent dimension where the KL splits over
        dimensions in closed form, else one term, the whole Monte-Carlo estimate."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats for z (..., latent_dim), shape z.shape[:-1]."""
        return self().log_prob(z)


def monte_carlo_kl(qz: Distribution, prior: Prior, z: torch.Tensor | None = None) -> torch.Tensor:
    """KL(qz || p) per example (batch,) estimated as the mean over draws z (..., batch, latent_dim)
    of log q(z) - log p(z): unbiased for z ~ qz (one fresh reparameterized draw when z is None)."""
    z = qz.rsample() if z is None else z
    log_ratio = qz.log_prob(z) - prior.log_prob(z)  # (..., batch)
    return log_ratio.reshape(-1, log_ratio.shape[-1]).mean(0)


def standard_normal_kl(loc: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, exp(log_var)) || N(0, 1)) per dimension, elementwise, in nats."""
    return 0.5 * (loc.square() + log_var.exp() - 1.0 - log_var)


class StandardNormal(Prior):
    """p(z) = N(0, I). Buffers keep it on the model's device.

    Its KL from a diagonal Gaussian posterior is exact and splits over dimensions, so free bits
    floor each dimension's KL. The training step computes it from the posterior's log-variance
    (`standard_normal_kl`, as vaekit has always trained), reported KLs with torch's Normal-Normal
    formula (as vaekit has always reported): the same number up to float rounding, each kept so
    that trained weights and reported figures stay bit for bit what they were.
    """

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self) -> Distribution:
        return Independent(Normal(self.loc, self.scale, validate_args=False), 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            return self().sample((n,))
        # noise from the generator's own device: a CPU generator gives the same draws to a model on any device
        noise = torch.randn(n, self.latent_dim, generator=generator, device=generator.device)  # (n, latent)
        return self.loc + self.scale * noise.to(self.loc.device)

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        per_dim = self._closed_form_kl(qz)
        return monte_carlo_kl(qz, self, z) if per_dim is None else per_dim.sum(-1)

    def kl_terms(self, qz: Distribution, z: torch.Tensor) -> torch.Tensor:
        if isinstance(qz, DiagonalNormal):
            return standard_normal_kl(qz.mean, qz.log_var)  # (batch, latent)
        per_dim = self._closed_form_kl(qz)
        return monte_carlo_kl(qz, self, z).unsqueeze(-1) if per_dim is None else per_dim

    def _closed_form_kl(self, qz: Distribution) -> torch.Tensor | None:
        """KL(qz || N(0, I)) per dimension (batch, latent) when qz is a diagonal Gaussian, else None."""
        normal = as_diagonal_normal(qz)
        return None if normal is None else kl_divergence(normal, self().base_dist)


PRIORS = {"standard_normal": StandardNormal}


def build_prior(kind: str, latent_dim: int) -> Prior:
    if kind not in PRIORS:
        raise ConfigError(f"unknown prior '{kind}': use one of {', '.join(PRIORS)}")
    return PRIORS[kind](latent_dim)
