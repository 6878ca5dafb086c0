"""Likelihoods for discrete data."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli as TorchBernoulli
from torch.distributions import Distribution, Independent

from .base import Likelihood, require_unit_interval


class Bernoulli(Likelihood):
    """Independent Bernoulli per value on logits: log p(x|z) = -BCE-with-logits, summed.

    For x in [0, 1] that is not binary this is the usual 'BCE' objective of the tutorials
    (not a normalized density); binarize the data for true log-likelihoods.
    """

    def distribution(self, params: torch.Tensor) -> Distribution:
        return Independent(TorchBernoulli(logits=params, validate_args=False), self.event_dims)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # negated after the sum: a (batch,) tensor instead of every value, forward and backward
        bce = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return -bce.flatten(-self.event_dims).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def check_data(self, x: torch.Tensor) -> None:
        require_unit_interval(x, "Bernoulli", "values in [0, 1]: rescale the data or use --likelihood gaussian")
