"""Priors p(z): modules that return a Distribution over the latent (event shape (latent_dim,))."""

from __future__ import annotations

import abc

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from .errors import ConfigError


class Prior(nn.Module, abc.ABC):
    """Abstract prior. `forward()` returns p(z) with event shape (latent_dim,)."""

    latent_dim: int

    @abc.abstractmethod
    def forward(self) -> Distribution: ...


class StandardNormal(Prior):
    """p(z) = N(0, I). Buffers keep it on the model's device."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self) -> Distribution:
        return Independent(Normal(self.loc, self.scale, validate_args=False), 1)


PRIORS = {"standard_normal": StandardNormal}


def build_prior(kind: str, latent_dim: int) -> Prior:
    if kind not in PRIORS:
        raise ConfigError(f"unknown prior '{kind}': use one of {', '.join(PRIORS)}")
    return PRIORS[kind](latent_dim)
