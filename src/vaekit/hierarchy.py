"""Two stochastic layers as two parts over the joint latent z = (z1, z2), each layer latent_dim wide:
the prior p(z1, z2) = p(z2) p(z1|z2) and the posterior q(z1, z2|x) = q(z2|x) q(z1|x, z2), the HVAE of
Tomczak & Welling (2018, sec. 3.2). The VAE holds them as its prior and posterior and the decoder reads
the joint latent, p(x|z1, z2), as in that paper; so the VAE, its estimators and the Trainer work
unchanged, and the importance-weighted bound is over both layers: w = p(x|z) p(z1, z2) / q(z1, z2|x).

Bottom-up inference (q(z2|x) first, then q(z1|x, z2)) rather than a ladder's top-down merge: it is the
model whose VampPrior figures we compare with, and it needs no second pass over the encoder. The
encoder's output (batch, 4 * latent_dim) is q(z2|x)'s loc and log-variance, then features h of x that,
with z2, give q(z1|x, z2) through a small MLP. p(z2) is any prior (standard normal, mixture, VampPrior).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributions import Distribution, constraints, kl_divergence

from .networks import MLP
from .posteriors import DiagonalGaussian, DiagonalNormal, Posterior, build_posterior, full_precision
from .priors import Prior, build_prior, gaussian_noise, monte_carlo_kl, shallow_copy


class TwoLayerDistribution(Distribution):
    """p(z2) p(z1|z2) over z = (z1, z2) (..., 2 * latent_dim); `conditional(z2)` is the diagonal Gaussian of z1.
    `mean` and `stddev` are z2's and those of z1 at z2's mean (a point code, not E[z1]: that has no closed form)."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, top: Distribution, conditional: Callable[[torch.Tensor], DiagonalNormal]):
        self.top, self.conditional = top, conditional
        dim = top.event_shape[0]
        super().__init__(top.batch_shape, torch.Size([2 * dim]), validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        z2 = self.top.rsample(sample_shape)
        return torch.cat([self.conditional(z2).rsample(), z2], -1)

    def layer_log_probs(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(z2), log p(z1|z2)), each z.shape[:-1], in nats."""
        z1, z2 = z.chunk(2, -1)
        return self.top.log_prob(z2), self.conditional(z2).log_prob(z1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return sum(self.layer_log_probs(z))

    @property
    def mean(self) -> torch.Tensor:
        z2 = self.top.mean
        return torch.cat([self.conditional(z2).mean, z2], -1)

    @property
    def stddev(self) -> torch.Tensor:
        return torch.cat([self.conditional(self.top.mean).stddev, self.top.stddev], -1)


def _gaussian_of(net: nn.Module, inputs: torch.Tensor) -> DiagonalNormal:
    """The diagonal Gaussian `net` gives for inputs (..., features): loc and log-variance (..., latent) each."""
    stats = full_precision(net(inputs.flatten(0, -2)))
    return DiagonalGaussian()(stats.view(*inputs.shape[:-1], stats.shape[-1]))


class TwoLayerPosterior(Posterior):
    """q(z1, z2|x) = q(z2|x) q(z1|x, z2) from the encoder's (batch, 4 * latent_dim): [loc2, log_var2, h]."""

    def __init__(self, latent_dim: int, hidden: int, act: str = "tanh"):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = MLP((3 * latent_dim,), (hidden,), (2 * latent_dim,), act)

    def forward(self, stats: torch.Tensor) -> TwoLayerDistribution:
        top, h = stats[..., :2 * self.latent_dim], stats[..., 2 * self.latent_dim:]

        def conditional(z2: torch.Tensor) -> DiagonalNormal:  # z2 (..., batch, latent)
            return _gaussian_of(self.net, torch.cat([h.expand(*z2.shape[:-1], -1), z2], -1))

        return TwoLayerDistribution(DiagonalGaussian()(top), conditional)


class TwoLayerPrior(Prior):
    """p(z1, z2) = p(z2) p(z1|z2): `top` any prior of latent_dim, p(z1|z2) a diagonal Gaussian from an MLP.

    Its KL from the two-layer posterior is KL(q(z2|x) || p(z2)) as `top` takes it (closed form or
    Monte Carlo) plus, at the drawn z2, the closed-form KL(q(z1|x, z2) || p(z1|z2)), averaged over the draws;
    `kl_terms` are top's terms then z1's per dimension, so free bits floor each dimension of both layers.
    From any other posterior (a flow over the joint latent) both are the one Monte-Carlo estimate.
    """

    def __init__(self, top: Prior, hidden: int, act: str = "tanh"):
        super().__init__()
        self.top = top
        self.latent_dim = 2 * top.latent_dim
        self.net = MLP((top.latent_dim,), (hidden,), (2 * top.latent_dim,), act)

    def forward(self) -> TwoLayerDistribution:
        return TwoLayerDistribution(self.top(), lambda z2: _gaussian_of(self.net, z2))

    def given(self, x: torch.Tensor) -> TwoLayerPrior:
        top = self.top.given(x)
        if top is self.top:
            return self
        bound = shallow_copy(self)  # shares the modules; reads the call's own top (a VampPrior's pseudo-inputs encoded once)
        object.__setattr__(bound, "top", top)
        return bound

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z2 = self.top.sample(n, generator)  # (n, latent)
        pz1 = _gaussian_of(self.net, z2)
        return torch.cat([pz1.mean + pz1.stddev * gaussian_noise(z2.shape, generator, z2.device), z2], -1)

    def _layer_terms(self, qz: TwoLayerDistribution, z: torch.Tensor, top_terms: bool, split: bool = True) -> torch.Tensor:
        z2 = z[..., self.top.latent_dim:]
        conditional = kl_divergence(qz.conditional(z2).base_dist, _gaussian_of(self.net, z2).base_dist)
        if top_terms:
            return torch.cat([self.top.kl_terms(qz.top, z2, split), conditional], -1)  # (batch, terms)
        return self.top.kl(qz.top, z2) + conditional.sum(-1).reshape(-1, z.shape[-2]).mean(0)

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(qz, TwoLayerDistribution):
            return monte_carlo_kl(qz, self, z)
        return self._layer_terms(qz, qz.rsample() if z is None else z, top_terms=False)

    def kl_terms(self, qz: Distribution, z: torch.Tensor, split: bool = True) -> torch.Tensor:
        if not isinstance(qz, TwoLayerDistribution):
            return monte_carlo_kl(qz, self, z).unsqueeze(-1)
        return self._layer_terms(qz, z, top_terms=True, split=split)


def build_latent(prior: str, posterior: str, latent_dim: int, stochastic_layers: int = 1, components: int = 500,
                 flow_steps: int = 2, encoder: nn.Module | None = None, data_shape=(), feature_shape=(),
                 hidden: int = 200, act: str = "tanh", flow_context: bool = True) -> tuple[Prior, Posterior]:
    """(prior, posterior) a ModelConfig names. With two stochastic layers, `prior` is p(z2) and the networks
    of p(z1|z2) and q(z1|x, z2) have one hidden layer of `hidden` units; a flow `posterior` then acts on the
    joint latent. The encoder's output must hold `stats_per_latent(posterior)` numbers per dimension of z1 and z2."""
    pz = build_prior(prior, latent_dim, components, encoder, data_shape, feature_shape)
    base = None
    if stochastic_layers == 2:
        pz, base = TwoLayerPrior(pz, hidden, act), TwoLayerPosterior(latent_dim, hidden, act)
    return pz, build_posterior(posterior, stochastic_layers * latent_dim, flow_steps, base, flow_context)

