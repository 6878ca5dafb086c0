"""Likelihoods p(x|z): turn a decoder's raw output into a torch Distribution over one example.

Every log_prob is in nats per example with normalizing constants included. `LIKELIHOODS` holds
what a ModelConfig can name; apps with richer likelihoods (mixed tables, multinomial counts)
construct theirs directly and pass them to VAE.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Likelihood
from .continuous import Gaussian
from .discrete import Bernoulli
from .discretized import DiscretizedLogistic

LIKELIHOODS: dict[str, type[Likelihood]] = {"bernoulli": Bernoulli, "gaussian": Gaussian,
                                            "discretized_logistic": DiscretizedLogistic}


def build_likelihood(kind: str, data_shape: tuple[int, ...], gaussian_scale: float | str = "learned",
                     min_scale: float = 1e-3) -> Likelihood:
    """The likelihood a ModelConfig names, for data of shape data_shape."""
    if kind not in LIKELIHOODS:
        raise ConfigError(f"unknown likelihood '{kind}': use one of {', '.join(LIKELIHOODS)}")
    if kind in ("gaussian", "discretized_logistic"):  # both take a loc and a (fixed/learned/decoder) scale
        return LIKELIHOODS[kind](tuple(data_shape), gaussian_scale, min_scale)
    return LIKELIHOODS[kind](tuple(data_shape))
