"""The Likelihood contract. Likelihoods p(x|z) turn a decoder's raw output into a torch Distribution over one example.

Every distribution returned here sums log-densities over the whole example (its event shape is
the data shape), with normalizing constants included, so `px.log_prob(x)` is in nats per example.
The decoder emits `params_per_value` numbers per data value, stacked along dim 1.
"""

from __future__ import annotations

import abc

import torch
from torch import nn
from torch.distributions import Distribution

from ..errors import DataError



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

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per example, shape params' batch shape; x broadcasts against it."""
        return self.distribution(params).log_prob(x)

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


def require_unit_interval(x: torch.Tensor, likelihood: str, fix: str) -> None:
    """DataError naming x's range when a value lies outside [0, 1] (an empty x passes)."""
    if x.numel() == 0:
        return
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise DataError(f"data lies in [{low:.3g}, {high:.3g}] but the {likelihood} likelihood needs {fix}")
