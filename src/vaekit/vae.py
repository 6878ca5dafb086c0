"""The VAE: encoder -> q(z|x) -> z -> decoder -> p(x|z), with a prior p(z).

Kingma & Welling (2014), "Auto-Encoding Variational Bayes"; the importance-weighted bound is
Burda, Grosse & Salakhutdinov (2016), eq. (8). All per-example quantities are in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from .likelihoods import Likelihood
from .priors import Prior, StandardNormal

# Elements of decoder output per chunk when estimating log p(x); bounds memory of log_likelihood.
_CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class ELBO:
    """Per-example terms of the evidence lower bound, each (batch,) in nats."""

    reconstruction: torch.Tensor  # E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z))

    def total(self, beta: float = 1.0) -> torch.Tensor:
        """reconstruction - beta * kl, per example."""
        return self.reconstruction - beta * self.kl


@dataclass(frozen=True)
class Loss:
    """A training loss (scalar, mean over the batch) with its parts for logging (scalars)."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


class VAE(nn.Module):
    """VAE(encoder, decoder, likelihood, prior).

    encoder: (batch, *data_shape) -> (batch, 2 * latent_dim), the loc and log-variance of a
    diagonal Gaussian q(z|x). decoder: (batch, latent_dim) -> parameters for `likelihood`.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, prior: Prior):
        super().__init__()
        self.encoder, self.decoder, self.likelihood, self.prior = encoder, decoder, likelihood, prior
        self.latent_dim = prior.latent_dim

    def encode(self, x: torch.Tensor) -> Independent:
        """q(z|x): a diagonal Gaussian with batch_shape (batch,) and event_shape (latent_dim,)."""
        loc, log_var = self.encoder(x).chunk(2, dim=-1)
        return Independent(Normal(loc, torch.exp(0.5 * log_var), validate_args=False), 1)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for z of shape (..., latent_dim); batch_shape is z's leading shape."""
        lead = z.shape[:-1]
        params = self.decoder(z.reshape(-1, self.latent_dim))
        return self.likelihood.distribution(params.view(*lead, *params.shape[1:]))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] (probabilities for Bernoulli), shape (batch, *data_shape)."""
        return self.likelihood.mean(self.decoder(z))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws from the prior; returns E[x|z] (the tutorials' sigmoid(logits))."""
        pz = self.prior()
        z = pz.sample((n,)) if generator is None else pz.mean + pz.stddev * torch.randn(
            n, self.latent_dim, generator=generator, device=pz.mean.device)
        return self.decode_mean(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x|z] at the posterior mean z = E[z|x]."""
        return self.decode_mean(self.encode(x).mean)

    def _kl(self, qz: Independent, z: torch.Tensor) -> torch.Tensor:
        """KL(q||p) per latent dimension (batch, latent) when analytic, else a one-sample estimate (batch, 1)."""
        pz = self.prior()
        if isinstance(self.prior, StandardNormal):
            return kl_divergence(qz.base_dist, pz.base_dist)
        return (qz.log_prob(z) - pz.log_prob(z)).unsqueeze(-1)

    def elbo(self, x: torch.Tensor, n_samples: int = 1) -> ELBO:
        """Per-example ELBO terms; the reconstruction term averages n_samples reparameterized draws."""
        qz = self.encode(x)
        z = qz.rsample((n_samples,))  # (n_samples, batch, latent)
        reconstruction = self.decode(z).log_prob(x).mean(0)
        return ELBO(reconstruction, self._kl(qz, z[0]).sum(-1))

    def loss(self, x: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0, iw_samples: int = 1) -> Loss:
        """The training objective, a scalar to minimize (mean over the batch).

        iw_samples=1: -(reconstruction - beta * KL), with free bits (Kingma et al. 2016, eq. 15):
        each latent dimension's batch-mean KL counts as at least `free_bits` nats.
        iw_samples=K>1: the negative importance-weighted bound of Burda et al. with K samples,
        beta weighting log p(z) - log q(z|x) inside each weight.
        """
        qz = self.encode(x)
        if iw_samples > 1:
            z = qz.rsample((iw_samples,))  # (K, batch, latent)
            log_px = self.decode(z).log_prob(x)  # (K, batch)
            log_ratio = self.prior().log_prob(z) - qz.log_prob(z)
            bound = torch.logsumexp(log_px + beta * log_ratio, 0) - math.log(iw_samples)
            kl = kl_divergence(qz.base_dist, self.prior().base_dist).sum(-1) if isinstance(
                self.prior, StandardNormal) else -log_ratio.mean(0)
            return Loss(-bound.mean(), log_px.mean(), kl.mean())
        z = qz.rsample()
        reconstruction = self.decode(z).log_prob(x).mean()
        kl_per_dim = self._kl(qz, z).mean(0)  # (latent,) batch means
        kl = kl_per_dim.sum()
        penalty = kl_per_dim.clamp(min=free_bits).sum() if free_bits > 0 else kl
        return Loss(beta * penalty - reconstruction, reconstruction.detach(), kl.detach())

    @torch.inference_mode()
    def log_likelihood(self, x: torch.Tensor, k: int = 1000, chunk_size: int | None = None) -> torch.Tensor:
        """Importance-weighted estimate of log p(x), per example (batch,), in nats:
        log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016, eq. 8).

        The k samples are drawn in chunks so that memory stays bounded for any k; the chunks'
        log-sum-exps are combined exactly.
        """
        qz = self.encode(x)
        pz = self.prior()
        values_per_example = math.prod(x.shape[1:]) * self.likelihood.params_per_value
        chunk = chunk_size or max(1, _CHUNK_ELEMENTS // (values_per_example * x.shape[0]))
        total = torch.full((x.shape[0],), -math.inf, device=x.device)
        for start in range(0, k, chunk):
            z = qz.sample((min(chunk, k - start),))  # (chunk, batch, latent)
            log_w = self.decode(z).log_prob(x) + pz.log_prob(z) - qz.log_prob(z)
            total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
        return total - math.log(k)


def build_vae(config) -> VAE:
    """Build a VAE from a ModelConfig whose data_shape is set (the saved config.json's 'model')."""
    from .likelihoods import build_likelihood
    from .networks import build_networks
    from .priors import build_prior

    config.validate()
    shape = tuple(config.data_shape)
    network = config.network if config.network != "auto" else ("conv" if len(shape) == 3 else "mlp")
    likelihood = build_likelihood(config.likelihood, shape, config.gaussian_scale)
    encoder, decoder = build_networks(network, shape, config.latent_dim, likelihood.params_per_value,
                                      config.hidden, config.conv_channels, config.activation, config.encoder_padding)
    return VAE(encoder, decoder, likelihood, build_prior(config.prior, config.latent_dim))
