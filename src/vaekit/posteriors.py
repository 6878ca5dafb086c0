"""Posteriors q(z|x): parts that turn an encoder's raw output into a distribution over the latent.

The default diagonal Gaussian has no parameters of its own (the encoder holds them), so a checkpoint's
state dict is the encoder's and decoder's; a flow (IAF, planar) adds its steps' parameters under
`posterior.`. The priors read the distribution a posterior returns (priors.py).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal, TransformedDistribution, constraints
from torch.distributions.transforms import Transform

from .errors import ConfigError


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """A network's output in fp32 when mixed precision made it bf16/fp16, so that the likelihood and
    the KL sum over pixels and dimensions in full precision (a bf16 sum of 784 terms is off by ~1 nat)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


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


class Flow(Posterior):
    """q(z|x) = a diagonal Gaussian q0 pushed through `steps` invertible maps f_T o ... o f_1, so that
    log q(z_T|x) = log q0(z_0|x) - sum_t log |det df_t/dz_{t-1}| (Rezende & Mohamed 2015, eq. 6). The steps
    are torch `Transform`s that cache their last call, so the log-density of the draws just made costs no
    inversion; `base` (a Posterior) gives q0 from the encoder's output. Its parameters are the steps'.

    With `context_dim` > 0 the encoder's output ends with a context vector h of that size, which every step
    reads beside z (Kingma et al. 2016, eq. 10: the flow then differs from x to x); `base` reads the rest."""

    def __init__(self, steps: Sequence[nn.Module], base: Posterior | None = None, context_dim: int = 0):
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.base = DiagonalGaussian() if base is None else base
        self.context_dim = context_dim

    def forward(self, stats: torch.Tensor) -> FlowDistribution:
        context = None
        if self.context_dim:
            stats, context = stats[..., :-self.context_dim], stats[..., -self.context_dim:]
        return FlowDistribution(self.base(stats), [StepTransform(step, context) for step in self.steps])


class FlowDistribution(TransformedDistribution):
    """A flow posterior's q(z|x). `mean` is the flow's image of the base's mean, a point code (E[z|x] has no
    closed form); `stddev` the base Gaussian's scale before the flow (what `vaekit serve` reports as scale)."""

    def __init__(self, base: Distribution, transforms: list[Transform]):
        super().__init__(base, transforms, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        z = self.base_dist.mean
        for transform in self.transforms:
            z = transform.with_log_det(z)[0]
        return z

    @property
    def stddev(self) -> torch.Tensor:
        return self.base_dist.stddev


class StepTransform(Transform):
    """A flow step (a module whose forward(z[, context]) returns (f(z), log |det df/dz|) per row) as a torch
    Transform bound to one call's context (None: a step without one), caching its last (z, f(z), log-det):
    log_prob of a draw reuses what rsample computed."""

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, step: nn.Module, context: torch.Tensor | None = None):
        super().__init__(cache_size=1)
        self.step = step
        self._context = () if context is None else (context,)
        self._log_det: tuple[torch.Tensor, torch.Tensor] | None = None

    def with_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(z), log |det df/dz|) without touching the cache."""
        return self.step(z, *self._context)

    def _call(self, z):
        out, log_det = self.with_log_det(z)
        self._log_det = (z, log_det)
        return out

    def _inverse(self, y):
        return self.step.inverse(y, *self._context)

    def log_abs_det_jacobian(self, z, y):
        if self._log_det is not None and self._log_det[0] is z:
            return self._log_det[1]
        return self.with_log_det(z)[1]


class IAFStep(nn.Module):
    """One inverse autoregressive step (Kingma et al. 2016, eqs. 10-14, their numerically stable form):
    [m, s] = MADE(z, h), sigma = sigmoid(s + 1), z' = sigma * z + (1 - sigma) * m, log |det| = sum log sigma.
    The MADE (Germain et al. 2015) has one hidden layer of `hidden` units masked so that output i sees
    only inputs earlier than i in `order`; alternate steps reverse the order. With `context_dim` > 0 the hidden
    layer also reads the context h (batch, context_dim) unmasked, as the paper's autoregressive networks do."""

    def __init__(self, latent_dim: int, hidden: int, reverse: bool = False, context_dim: int = 0):
        super().__init__()
        order = torch.arange(latent_dim).flip(0) if reverse else torch.arange(latent_dim)  # degree of each input
        hidden_degree = torch.arange(hidden) % max(1, latent_dim - 1)  # in 0..D-2
        self.register_buffer("order", order)
        self.register_buffer("in_mask", (hidden_degree[:, None] >= order[None, :]).float())  # (hidden, latent)
        self.register_buffer("out_mask", (order[:, None] > hidden_degree[None, :]).float().repeat(2, 1))
        self.hidden = nn.Linear(latent_dim, hidden)
        self.context = nn.Linear(context_dim, hidden, bias=False) if context_dim else None
        self.out = nn.Linear(hidden, 2 * latent_dim)
        nn.init.zeros_(self.out.weight)  # starts as the identity-ish map sigma = sigmoid(1), m = 0
        nn.init.zeros_(self.out.bias)

    def _shift_gate(self, z: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.context is not None and context is None:
            raise ValueError("this IAF step reads a context: call it with the encoder's context vector")
        # fp32 under autocast: the log-determinant sums latent_dim log-gates, off by tenths of a nat in bf16
        with torch.autocast(z.device.type, enabled=False):
            pre = F.linear(z, self.hidden.weight * self.in_mask, self.hidden.bias)
            if self.context is not None:
                pre = pre + self.context(full_precision(context))  # (batch, hidden), broadcast over z's draws
            m, s = F.linear(torch.tanh(pre), self.out.weight * self.out_mask, self.out.bias).chunk(2, -1)
            return m, torch.sigmoid(s + 1.0)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        m, sigma = self._shift_gate(z, context)
        return sigma * z + (1 - sigma) * m, sigma.log().sum(-1)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """z with forward(z, context)[0] == y, one dimension per pass in the autoregressive order."""
        z = torch.zeros_like(y)
        for i in self.order.argsort():
            m, sigma = self._shift_gate(z, context)
            z = z.clone()
            z[..., i] = (y[..., i] - (1 - sigma[..., i]) * m[..., i]) / sigma[..., i]
        return z


class PlanarStep(nn.Module):
    """f(z) = z + u' tanh(w.z + b) (Rezende & Mohamed 2015, eqs. 10-12), with u' = u + (softplus(w.u) - 1 - w.u)
    w / |w|^2 so that w.u' >= -1 and f stays invertible (their appendix A.1); it has no closed-form inverse."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.u = nn.Parameter(torch.randn(latent_dim) * 0.01)
        self.w = nn.Parameter(torch.randn(latent_dim) * 0.01)
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wu = self.w @ self.u
        u = self.u + (F.softplus(wu) - 1 - wu) * self.w / self.w.square().sum().clamp(min=1e-12)
        a = torch.tanh(z @ self.w + self.b)  # (...,)
        psi = (1 - a.square())[..., None] * self.w  # (..., latent)
        return z + u * a[..., None], torch.log((1 + psi @ u).abs().clamp(min=1e-12))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a planar flow has no closed-form inverse: its log-density is known only "
                                  "at its own draws")


POSTERIORS = ("gaussian", "iaf", "planar")


def stats_per_latent(kind: str, flow_context: bool = True) -> int:
    """Numbers the encoder outputs per latent dimension for this posterior: a loc and a log-variance, then one
    for an IAF's context h when it reads one (`flow_context`; a planar step's parameters are the same for every x)."""
    return 3 if kind == "iaf" and flow_context else 2


def build_posterior(kind: str, latent_dim: int, flow_steps: int = 2, base: Posterior | None = None,
                    flow_context: bool = True) -> Posterior:
    """The posterior a ModelConfig names: `base` (a DiagonalGaussian by default) alone, or pushed through
    `flow_steps` IAF steps (MADE hidden width 4 * latent_dim, reading a context of latent_dim values unless
    `flow_context` is off) or planar steps."""
    base = DiagonalGaussian() if base is None else base
    if kind == "gaussian":
        return base
    if kind == "iaf":
        context = (stats_per_latent(kind, flow_context) - 2) * latent_dim
        return Flow([IAFStep(latent_dim, 4 * latent_dim, reverse=t % 2 == 1, context_dim=context)
                     for t in range(flow_steps)], base, context)
    if kind == "planar":
        return Flow([PlanarStep(latent_dim) for _ in range(flow_steps)], base)
    raise ConfigError(f"unknown posterior '{kind}': use one of {', '.join(POSTERIORS)}")
