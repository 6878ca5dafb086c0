"""Posteriors q(z|x): parts that turn an encoder's raw output into a distribution over the latent.

A posterior has no parameters of its own (the encoder holds them), so swapping one leaves a
checkpoint's state dict unchanged; the priors read the distribution it returns (priors.py).
"""

from __future__ import annotations

import abc

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal


class Posterior(nn.Module, abc.ABC):
    """Abstract posterior family. `forward(stats)` maps the encoder's output (batch, ...) to q(z|x)
    with batch_shape (batch,), event_shape (latent_dim,) and reparameterized `rsample`."""

    @abc.abstractmethod
    def forward(self, stats: torch.Tensor) -> Distribution: ...


class DiagonalNormal(Independent):
    """N(loc, diag(exp(log_var))) with event shape (latent_dim,): torch's Independent(Normal) that
    keeps the log-variance it was made from, for the closed forms that read it (priors.py)."""

    def __init__(self, loc: torch.Tensor, log_var: torch.Tensor):
        super().__init__(Normal(loc, torch.exp(0.5 * log_var), validate_args=False), 1)
        self.log_var = log_var  # (batch, latent_dim)


def as_diagonal_normal(d: Distribution) -> Normal | None:
    """d's per-dimension Normal when d is a diagonal Gaussian over a vector (Independent(Normal, 1),
    as DiagonalGaussian and the standard normal prior give), else None."""
    if isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1 and isinstance(d.base_dist, Normal):
        return d.base_dist
    return None


class DiagonalGaussian(Posterior):
    """q(z|x) = N(loc, diag(exp(log_var))), the encoder's output (batch, 2 * latent_dim) split into
    loc and log-variance (Kingma & Welling 2014, sec. 3)."""

    def forward(self, stats: torch.Tensor) -> DiagonalNormal:
        return DiagonalNormal(*stats.chunk(2, dim=-1))
