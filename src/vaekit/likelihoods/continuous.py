"""Likelihoods for continuous data."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from ..errors import ConfigError
from .base import Likelihood


class Gaussian(Likelihood):
    """Independent Normal per value with mean from the decoder and a scale that is either
    fixed (`scale=0.1`), learned per value independently of z (`scale='learned'`), or
    predicted by the decoder (`scale='decoder'`). Scales are floored at `min_scale`.
    """

    SCALES = ("learned", "decoder")

    def __init__(self, data_shape: tuple[int, ...], scale: float | str = "learned", min_scale: float = 1e-3):
        if isinstance(scale, str) and scale not in self.SCALES:
            try:
                scale = float(scale)
            except ValueError:
                raise ConfigError(f"unknown Gaussian scale '{scale}': use a positive number, "
                                  "'learned' or 'decoder'") from None
        if not isinstance(scale, str) and not scale > 0:
            raise ConfigError(f"Gaussian scale must be positive, got {scale}")
        super().__init__(data_shape)
        self.scale_mode = scale
        self.log_min_scale = math.log(min_scale)
        self.params_per_value = 2 if scale == "decoder" else 1
        if scale == "learned":
            self.log_scale = nn.Parameter(torch.zeros(data_shape))
        else:
            self.register_buffer("log_scale", torch.full(data_shape, math.log(scale) if scale != "decoder" else 0.0))

    def distribution(self, params: torch.Tensor) -> Distribution:
        if self.scale_mode == "decoder":
            loc, log_scale = self.split(params)
        else:
            loc, log_scale = params, self.log_scale
        scale = log_scale.clamp(min=self.log_min_scale).exp().expand_as(loc)
        return Independent(Normal(loc, scale, validate_args=False), self.event_dims)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def bits_per_dim_offset(self) -> float:
        # A density on [0, 1] assigns an 8-bit bin of width 1/256 about p(x)/256.
        return math.log(256.0)
