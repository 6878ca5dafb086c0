"""Priors p(z): modules that return a Distribution over the latent (event shape (latent_dim,)) and
own the maths the VAE asks of them: log p(z), draws, and KL(q(z|x) || p(z)).

A prior with a closed-form KL from the posterior it meets (the standard normal against a diagonal
Gaussian) returns it; any other prior estimates the KL by Monte Carlo on the reparameterized draws
the VAE already made, `monte_carlo_kl`: a new prior (a VampPrior, a mixture) writes its density and
a sampler, and answers `kl` and `kl_terms` with that estimate.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal, kl_divergence

from .errors import ConfigError
from .posteriors import DiagonalNormal, Posterior, as_diagonal_normal, full_precision


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
    def kl_terms(self, qz: Distribution, z: torch.Tensor, split: bool = True) -> torch.Tensor:
        """The training step's KL(qz || p) as the terms free bits floor, (batch, terms), in nats, for
        one draw z (batch, latent_dim) of qz: one term per latent dimension where the KL splits over
        dimensions in closed form, else one term, the whole Monte-Carlo estimate. split=False (no free
        bits to floor them): the terms' sum is all that counts, so a prior whose split costs more than
        its sum may return one term, that sum."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats for z (..., latent_dim), shape z.shape[:-1]."""
        return self().log_prob(z)

    def given(self, x: torch.Tensor) -> Prior:
        """The prior the examples x (batch, ...) the encoder reads are scored against: the prior itself
        unless it depends on the data (CompositePrior)."""
        return self


def gaussian_noise(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N(0, 1) draws of `shape` on `device`, drawn on the generator's own device: a CPU generator gives the
    same draws to a model on any device."""
    source = device if generator is None else generator.device
    return torch.randn(tuple(shape), generator=generator, device=source).to(device)


def shallow_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` sharing its parameters, buffers and submodules, whose plain attributes can then differ
    (a prior bound to one call). The copy copy.copy makes, built so that torch.compile traces it: copy.copy of a
    module breaks the compiled loss's graph."""
    bound = object.__new__(type(module))
    bound.__dict__.update(module.__dict__)
    return bound


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
        return self.loc + self.scale * gaussian_noise((n, self.latent_dim), generator, self.loc.device)

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        per_dim = self._closed_form_kl(qz)
        return monte_carlo_kl(qz, self, z) if per_dim is None else per_dim.sum(-1)

    def kl_terms(self, qz: Distribution, z: torch.Tensor, split: bool = True) -> torch.Tensor:
        if isinstance(qz, DiagonalNormal):
            return standard_normal_kl(qz.mean, qz.log_var)  # (batch, latent)
        per_dim = self._closed_form_kl(qz)
        return monte_carlo_kl(qz, self, z).unsqueeze(-1) if per_dim is None else per_dim

    def _closed_form_kl(self, qz: Distribution) -> torch.Tensor | None:
        """KL(qz || N(0, I)) per dimension (batch, latent) when qz is a diagonal Gaussian, else None."""
        normal = as_diagonal_normal(qz)
        return None if normal is None else kl_divergence(normal, self().base_dist)


class GaussianMixture(MixtureSameFamily):
    """torch's mixture of diagonal Gaussians whose log_prob expands the square into matrix products,
    log N_k(z) = -(z^2 . 1/s_k^2 - 2 z . m_k/s_k^2 + |m_k/s_k|^2) / 2 - sum log s_k - D log(2 pi) / 2, instead
    of an elementwise (..., K, D) tensor: the importance-weighted NLL of a 500-component VampPrior ran ~10x slower
    that way. Its rounding grows with |z| / s_k; far from every component the density is ~0 either way. It runs in
    fp32 under autocast: in bf16 the three products, each up to |z|^2 / s_k^2, cancel to errors of tens of nats."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):  # bf16 products would cancel to noise of ~|z|^2/s^2 / 256
            return self._log_prob(full_precision(z))

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        loc, scale = self.component_distribution.base_dist.loc, self.component_distribution.base_dist.scale
        precision = scale.pow(-2)  # (K, D)
        quadratic = (z.square() @ precision.T - 2 * z @ (loc * precision).T
                     + (loc.square() * precision).sum(-1))  # (..., K)
        log_norm = scale.log().sum(-1) + 0.5 * loc.shape[-1] * math.log(2 * math.pi)  # (K,)
        log_weights = self.mixture_distribution.logits.log_softmax(-1)
        return torch.logsumexp(log_weights - 0.5 * quadratic - log_norm, -1)


def check_composite_weights(weights: Sequence[float], name: str = "the composite prior's weights") -> None:
    """ConfigError unless `weights` (of N(0, 1), q_old and the wide Gaussian) are 3 numbers >= 0 summing to 1."""
    if len(weights) != 3 or min(weights) < 0 or not math.isclose(sum(weights), 1.0):
        shown = ",".join(f"{w:g}" for w in weights) or "none"
        raise ConfigError(f"{name} must be 3 numbers >= 0 that sum to 1 (of N(0, 1), the previous posterior and the "
                          f"wide Gaussian; the paper: 0.15,0.75,0.1), got {shown}")


class CompositePrior(Prior):
    """RecVAE's prior (Shenbin et al. 2020, eq. 5): per latent dimension a mixture of N(0, 1), the previous
    encoder's posterior q_old(z|x) and a wide N(0, exp(wide_log_var)), with `weights` in that order:
    p(z|x) = prod_d [w0 N(z_d; 0, 1) + w1 q_old(z_d|x) + w2 N(z_d; 0, exp(wide_log_var))].

    It holds a frozen copy of `encoder` (always in eval mode: no input dropout) read through `posterior`;
    `renew(encoder)` copies the trained encoder's weights into it (the paper: after every epoch). The VAE
    asks `given(x)` for the prior of a batch; only that prior has a density, draws and a (Monte-Carlo) KL.
    """

    def __init__(self, encoder: nn.Module, posterior: Posterior, latent_dim: int,
                 weights: tuple[float, float, float] = (3 / 20, 3 / 4, 1 / 10), wide_log_var: float = 10.0):
        super().__init__()
        check_composite_weights(weights)
        self.latent_dim = latent_dim
        self.previous = nn.Sequential(copy.deepcopy(encoder), posterior).requires_grad_(False).eval()
        self.register_buffer("weights", torch.tensor(weights))
        self.register_buffer("wide_scale", torch.tensor(math.exp(0.5 * wide_log_var)))
        self.old: Normal | None = None  # q_old(z|x) per dimension, (batch, latent); set on the prior `given` returns

    def train(self, mode: bool = True) -> CompositePrior:
        super().train(mode)
        self.previous.eval()
        return self

    @torch.no_grad()
    def renew(self, encoder: nn.Module) -> None:
        """Make q_old the posterior of `encoder`'s current weights."""
        self.previous[0].load_state_dict(encoder.state_dict())

    def given(self, x: torch.Tensor) -> CompositePrior:
        bound = shallow_copy(self)  # shares the modules and buffers; only `old` is the batch's own
        with torch.no_grad():
            bound.old = as_diagonal_normal(self.previous(x))
        return bound

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's locs and scales, each (batch, latent, 3)."""
        if self.old is None:
            raise ConfigError("the composite prior depends on the data: ask the prior `given(x)` for a batch x")
        loc, scale = self.old.loc, self.old.scale
        zeros, ones = torch.zeros_like(loc), torch.ones_like(scale)
        return (torch.stack([zeros, loc, zeros], -1),
                torch.stack([ones, scale, ones * self.wide_scale.to(scale.dtype)], -1))

    def forward(self) -> Distribution:
        loc, scale = self.components()
        mixing = Categorical(probs=self.weights.to(loc.dtype).expand(loc.shape), validate_args=False)
        return Independent(MixtureSameFamily(mixing, Normal(loc, scale, validate_args=False), validate_args=False), 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        loc, scale = self.components()
        if n != len(loc):
            raise ConfigError(f"the composite prior of a batch of {len(loc)} draws one z per example, not {n}")
        device = generator.device if generator is not None else loc.device
        pick = torch.multinomial(self.weights.to(device), n * self.latent_dim, replacement=True, generator=generator)
        noise = torch.randn(n, self.latent_dim, generator=generator, device=device)  # (n, latent)
        pick = pick.view(n, self.latent_dim, 1).to(loc.device)
        return loc.gather(-1, pick).squeeze(-1) + scale.gather(-1, pick).squeeze(-1) * noise.to(loc.device)

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        return monte_carlo_kl(qz, self, z)

    def kl_terms(self, qz: Distribution, z: torch.Tensor, split: bool = True) -> torch.Tensor:
        return monte_carlo_kl(qz, self, z).unsqueeze(-1)


class DiagonalMixture(Prior):
    """Abstract p(z) = sum_k w_k N(z; loc_k, diag(scale_k^2)), its parameters from `components()`.

    No closed-form KL exists, so `kl` is a Monte-Carlo estimate over the draws z. Where q is a diagonal
    Gaussian it is -H(q) - log p(z), q's entropy in closed form (Rao-Blackwellized: lower variance than
    log q(z) - log p(z), and free of that form's gradients through z and loc that cancel only up to
    rounding), with log p(z) as matrix products (`GaussianMixture`). For free bits, `kl_terms` splits the
    same estimate over dimensions by the chain rule: term d is -H(q_d) - log p(z_d|z_<d) (p(z_d|z_<d) is
    again a mixture, its weights the components' responsibilities for z_<d), whose expectation under q is
    E[KL(q(z_d|x) || p(z_d|z_<d))] >= 0; the terms add up to the estimate (up to rounding). Free bits then
    floor each dimension's term, as they do the standard normal's closed-form ones. The split needs a
    (batch, K, latent) table with a cumulative sum: ~40x the standard VAE's step for K = 500, so without free
    bits (split=False) the step takes the unsplit estimate, ~1.5x. From any other posterior (a flow) both
    are `monte_carlo_kl`, one term.
    """

    @abc.abstractmethod
    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (K,), loc (K, latent_dim), scale (K, latent_dim)) of the mixture."""

    def forward(self) -> Distribution:
        logits, loc, scale = self.components()
        return GaussianMixture(Categorical(logits=logits, validate_args=False),
                               Independent(Normal(loc, scale, validate_args=False), 1), validate_args=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        logits, loc, scale = (t.detach() for t in self.components())
        source = loc.device if generator is None else generator.device
        component = torch.multinomial(logits.softmax(0).to(source), n, replacement=True, generator=generator)
        noise = gaussian_noise((n, self.latent_dim), generator, loc.device)
        return loc[component.to(loc.device)] + scale[component.to(loc.device)] * noise

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        z = qz.rsample() if z is None else z
        estimate = self.kl_terms(qz, z, split=False).squeeze(-1)  # (..., batch)
        return estimate.reshape(-1, estimate.shape[-1]).mean(0)

    def kl_terms(self, qz: Distribution, z: torch.Tensor, split: bool = True) -> torch.Tensor:
        normal = as_diagonal_normal(qz)
        if normal is None:
            return monte_carlo_kl(qz, self, z).unsqueeze(-1)
        if not split:
            return (-qz.entropy() - self.log_prob(z)).unsqueeze(-1)  # (..., batch, 1)
        logits, loc, scale = self.components()
        log_nk = Normal(loc, scale, validate_args=False).log_prob(z[..., None, :])  # (..., batch, K, latent)
        log_joint = torch.logsumexp(logits.log_softmax(0)[:, None] + log_nk.cumsum(-1), -2)  # log p(z_<=d)
        log_conditional = log_joint.diff(dim=-1, prepend=torch.zeros_like(log_joint[..., :1]))
        return -normal.entropy() - log_conditional  # (..., batch, latent)


class MixtureOfGaussians(DiagonalMixture):
    """A learnable mixture of `components` diagonal Gaussians with learned weights, locations and scales."""

    def __init__(self, latent_dim: int, components: int = 500):
        super().__init__()
        self.latent_dim = latent_dim
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(components, latent_dim))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.logits, self.loc, self.log_scale.exp()


class VampPrior(DiagonalMixture):
    """The VampPrior (Tomczak & Welling 2018, eq. 9): p(z) = (1/K) sum_k q(z|u_k), the encoder's diagonal
    Gaussian at K learned pseudo-inputs u_k (parameters, saved with the model; for a conditional VAE each
    with learned condition features too). The first 2 * latent_dim numbers of the encoder's output are
    read as (loc, log-variance): the whole output for one stochastic layer, the top layer's for two.

    The encoder is the VAE's own, held by reference only: its weights are saved once, as the encoder's.
    `given(x)` encodes the pseudo-inputs once for the call that asks (a loss, an estimate): its log p(z) and its
    KL then share them; the prior itself encodes them afresh at every use, so no step reads another's weights.
    """

    def __init__(self, latent_dim: int, encoder: nn.Module, data_shape: Sequence[int], components: int = 500,
                 feature_shape: Sequence[int] = ()):
        super().__init__()
        self.latent_dim = latent_dim
        object.__setattr__(self, "encoder", encoder)  # not a submodule: no second copy in the state dict
        self.pseudo_inputs = nn.Parameter(0.5 + 0.01 * torch.randn(components, *data_shape))
        self.pseudo_features = nn.Parameter(0.01 * torch.randn(components, *feature_shape)) if feature_shape else None
        self.encoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # set on the prior `given` returns

    @torch.no_grad()
    def start_at(self, x: torch.Tensor) -> None:
        """Set the pseudo-inputs to K examples x (K, *data_shape), e.g. drawn from the training set: the default
        near-identical grey pseudo-inputs get near-identical gradients, so on MNIST they stayed one component."""
        self.pseudo_inputs.copy_(x.reshape(self.pseudo_inputs.shape))

    def given(self, x: torch.Tensor) -> VampPrior:
        bound = shallow_copy(self)  # shares the parameters; only `encoded` is the call's own
        bound.encoded = self.components()
        return bound

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.encoded is not None:
            return self.encoded
        u = self.pseudo_inputs
        stats = self.encoder(u) if self.pseudo_features is None else self.encoder(u, self.pseudo_features)
        loc, log_var = full_precision(stats[:, :2 * self.latent_dim]).chunk(2, -1)  # (K, latent) each
        return torch.zeros(len(u), device=u.device), loc, torch.exp(0.5 * log_var)


PRIORS = {"standard_normal": StandardNormal, "mog": MixtureOfGaussians, "vamp": VampPrior}


def build_prior(kind: str, latent_dim: int, components: int = 500, encoder: nn.Module | None = None,
                data_shape: Sequence[int] = (), feature_shape: Sequence[int] = ()) -> Prior:
    """The prior a ModelConfig names; `encoder`, `data_shape` and `feature_shape` serve the VampPrior."""
    builders = {"standard_normal": lambda: StandardNormal(latent_dim),
                "mog": lambda: MixtureOfGaussians(latent_dim, components),
                "vamp": lambda: VampPrior(latent_dim, encoder, data_shape, components, feature_shape)}
    if kind not in builders:
        raise ConfigError(f"unknown prior '{kind}': use one of {', '.join(PRIORS)}")
    return builders[kind]()
