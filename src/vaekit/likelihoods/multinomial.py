"""A multinomial likelihood over items on logits, for users' interaction vectors (Mult-VAE).

Liang, Krishnan, Hoffman & Jebara (2018), "Variational Autoencoders for Collaborative
Filtering", eq. (2): log p(x_u | z_u) = sum_i x_ui log pi_i(z_u), pi = softmax(logits).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, constraints

from ..errors import DataError
from .base import Likelihood


class MultinomialLogits(Distribution):
    """Multinomial over the last dimension of `logits` (*batch, items) with the total count
    taken from each x (N_u = sum_i x_ui), so any number of interactions per user is scored.

    log_prob(x) = sum_i x_i log softmax(logits)_i  [+ log N! - sum_i log x_i!  if coefficient].
    With coefficient=True (the default) this is the true log-probability in nats of the counts x
    given their total N; with coefficient=False it is the paper's eq. (2), which drops that
    constant (it does not depend on the model, so gradients are identical). Non-integer x
    (e.g. log-scaled play counts) use lgamma, the usual continuous extension.
    """

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.independent(constraints.nonnegative, 1)

    def __init__(self, logits: torch.Tensor, coefficient: bool = True, validate_args: bool | None = False):
        self.logits = logits
        self.coefficient = coefficient
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    @property
    def probs(self) -> torch.Tensor:
        """pi = softmax(logits), (*batch, items): each item's share of one interaction."""
        return torch.softmax(self.logits, -1)

    @property
    def mean(self) -> torch.Tensor:
        """The mean per unit of total count, i.e. `probs` (the total N is the user's own)."""
        return self.probs

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x (*batch, items) non-negative counts or weights -> (*batch,) nats."""
        log_pi = torch.log_softmax(self.logits, -1)  # (*batch, items)
        log_p = (x * log_pi).sum(-1)
        if self.coefficient:
            log_p = log_p + torch.lgamma(x.sum(-1) + 1) - torch.lgamma(x + 1).sum(-1)
        return log_p


class Multinomial(Likelihood):
    """p(x|z) = Multinomial(N_u, softmax(decoder logits)) over the items of flat data (items,).

    The decoder emits one logit per item. `coefficient` says whether log_prob includes the
    multinomial coefficient log N!/prod x_i! (default True: true nats; False: the paper's eq. 2).
    """

    def __init__(self, data_shape: tuple[int, ...], coefficient: bool = True):
        super().__init__(data_shape)
        if self.event_dims != 1:
            raise DataError(f"the multinomial likelihood needs flat vectors (items,), got shape {self.data_shape}")
        self.coefficient = coefficient

    def distribution(self, params: torch.Tensor) -> MultinomialLogits:
        return MultinomialLogits(params, self.coefficient)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.softmax(params, -1)

    def check_data(self, x: torch.Tensor) -> None:
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0:
            raise DataError("the multinomial likelihood needs finite, non-negative counts or weights: "
                            "drop negative ratings or use a rating threshold")
