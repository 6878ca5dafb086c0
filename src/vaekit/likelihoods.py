"""Likelihoods p(x|z): turn a decoder's raw output into a torch Distribution over one example.

Every distribution returned here sums log-densities over the whole example (its event shape is
the data shape), with normalizing constants included, so `px.log_prob(x)` is in nats per example.
The decoder emits `params_per_value` numbers per data value, stacked along dim 1.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal
from torch.distributions import Bernoulli as TorchBernoulli

from .errors import ConfigError, DataError


class Likelihood(nn.Module, abc.ABC):
    """Abstract p(x|z). Subclasses are final."""

    params_per_value: int = 1

    def __init__(self, data_shape: tuple[int, ...]):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.event_dims = len(self.data_shape)

    @abc.abstractmethod
    def distribution(self, params: torch.Tensor) -> Distribution:
        """params (*batch, params_per_value * C, ...) -> p(x|z) with batch_shape `batch`."""

    @abc.abstractmethod
    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x|z] in data space, shape (*batch, C, ...)."""

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The params_per_value parameter tensors, each shaped like the data."""
        return params.chunk(self.params_per_value, dim=-self.event_dims)

    def check_data(self, x: torch.Tensor) -> None:
        """Raise DataError if x lies outside this likelihood's support."""

    def bits_per_dim_offset(self) -> float:
        """Nats per value to add to -log p(x) to get a discrete 8-bit likelihood (0 for discrete models)."""
        return 0.0


class Bernoulli(Likelihood):
    """Independent Bernoulli per value on logits: log p(x|z) = -BCE-with-logits, summed.

    For x in [0, 1] that is not binary this is the usual 'BCE' objective of the tutorials
    (not a normalized density); binarize the data for true log-likelihoods.
    """

    def distribution(self, params: torch.Tensor) -> Distribution:
        return Independent(TorchBernoulli(logits=params, validate_args=False), self.event_dims)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def check_data(self, x: torch.Tensor) -> None:
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            raise DataError(f"data lies in [{low:.3g}, {high:.3g}] but the Bernoulli likelihood needs values in "
                            "[0, 1]: rescale the data or use --likelihood gaussian")


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


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian}


def build_likelihood(kind: str, data_shape: tuple[int, ...], gaussian_scale: float | str = "learned",
                     min_scale: float = 1e-3) -> Likelihood:
    if kind == "bernoulli":
        return Bernoulli(data_shape)
    if kind == "gaussian":
        return Gaussian(tuple(data_shape), gaussian_scale, min_scale)
    raise ConfigError(f"unknown likelihood '{kind}': use one of {', '.join(LIKELIHOODS)}")
