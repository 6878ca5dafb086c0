"""The estimators against closed forms: a linear-Gaussian model whose log p(x) is exact,
analytic KL against Monte Carlo, IWAE >= ELBO, and normalizing constants."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from vaekit.likelihoods import Bernoulli, Gaussian
from vaekit.priors import StandardNormal
from vaekit.vae import VAE

D, LATENT, SIGMA = 6, 3, 0.5


def linear_gaussian(posterior_scale: float = 1.0, posterior_shift: float = 0.0):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, SIGMA^2 I) with W's columns orthogonal, so the exact
    posterior is diagonal: Sigma = (I + W^T W / SIGMA^2)^-1, mean = Sigma W^T (x - b) / SIGMA^2.
    The encoder is that posterior with its std scaled and its mean shifted (a loose q)."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, LATENT, dtype=torch.float64))
    weight = q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    bias = torch.randn(D, dtype=torch.float64)
    post_var = 1.0 / (1.0 + (weight ** 2).sum(0) / SIGMA ** 2)  # (latent,)
    gain = post_var[:, None] * weight.T / SIGMA ** 2  # (latent, D)
    encoder = nn.Linear(D, 2 * LATENT).double()
    decoder = nn.Linear(LATENT, D).double()
    with torch.no_grad():
        encoder.weight.copy_(torch.cat([gain, torch.zeros(LATENT, D, dtype=torch.float64)]))
        encoder.bias.copy_(torch.cat([-gain @ bias + posterior_shift,
                                      torch.log(post_var * posterior_scale ** 2)]))
        decoder.weight.copy_(weight)
        decoder.bias.copy_(bias)
    vae = VAE(encoder, decoder, Gaussian((D,), scale=SIGMA), StandardNormal(LATENT)).double()
    marginal = MultivariateNormal(bias, weight @ weight.T + SIGMA ** 2 * torch.eye(D, dtype=torch.float64))
    return vae, marginal


def test_exact_posterior_makes_every_estimate_exact():
    vae, marginal = linear_gaussian()
    x = marginal.sample((20,))
    exact = marginal.log_prob(x)
    # The ELBO (Monte-Carlo reconstruction, analytic KL) is exact in expectation ...
    torch.testing.assert_close(vae.elbo(x, n_samples=20000).total(), exact, atol=0.05, rtol=0)
    # ... and every importance weight equals p(x), so any chunking gives log p(x) exactly.
    torch.testing.assert_close(vae.log_likelihood(x, k=7, chunk_size=3), exact)


def test_iwae_matches_exact_log_likelihood_at_large_k():
    vae, marginal = linear_gaussian(posterior_scale=1.4, posterior_shift=0.3)
    torch.manual_seed(1)
    x = marginal.sample((50,))
    exact = marginal.log_prob(x)
    elbo = vae.elbo(x, n_samples=64).total()
    iwae = vae.log_likelihood(x, k=5000)
    assert (exact - elbo).mean() > 0.5, "the perturbed encoder should leave a visible ELBO gap"
    assert (iwae - exact).abs().max() < 0.5
    assert (iwae - exact).abs().mean() < 0.05
    assert iwae.mean() <= exact.mean() + 0.02  # a lower bound in expectation


def test_iwae_bound_tightens_with_k():
    vae, marginal = linear_gaussian(posterior_scale=1.6, posterior_shift=0.5)
    torch.manual_seed(2)
    x = marginal.sample((200,))
    elbo = vae.elbo(x, n_samples=256).total().mean()
    k10, k100 = (vae.log_likelihood(x, k=k).mean() for k in (10, 100))
    assert elbo < k10 < k100 <= marginal.log_prob(x).mean() + 0.02


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(3)
    vae, _ = linear_gaussian(posterior_scale=0.7, posterior_shift=1.0)
    x = torch.randn(5, D, dtype=torch.float64)
    qz = vae.encode(x)
    z = qz.sample((200_000,))
    monte_carlo = (qz.log_prob(z) - vae.prior().log_prob(z)).mean(0)
    analytic = vae.elbo(x).kl
    torch.testing.assert_close(analytic, monte_carlo, atol=0.02, rtol=0)
    closed_form = 0.5 * (qz.variance + qz.mean ** 2 - 1 - qz.variance.log()).sum(-1)
    torch.testing.assert_close(analytic, closed_form)


def test_gaussian_log_density_has_its_normalizing_constant():
    likelihood = Gaussian((4,), scale=0.3)
    loc, x = torch.randn(2, 4), torch.randn(2, 4)
    expected = (-0.5 * ((x - loc) / 0.3) ** 2 - math.log(0.3) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(likelihood.distribution(loc).log_prob(x), expected)


def test_gaussian_decoder_scale_is_floored():
    likelihood = Gaussian((3,), scale="decoder", min_scale=0.01)
    params = torch.cat([torch.zeros(1, 3), torch.full((1, 3), -50.0)], dim=1)
    assert torch.allclose(likelihood.distribution(params).base_dist.scale, torch.full((1, 3), 0.01))


def test_bernoulli_log_prob_is_negative_binary_cross_entropy():
    logits, x = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    expected = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(Bernoulli((1, 4, 4)).distribution(logits).log_prob(x), expected)


def test_bernoulli_fast_log_prob_matches_the_distribution_and_broadcasts():
    likelihood = Bernoulli((1, 4, 4))
    logits, x = torch.randn(5, 3, 1, 4, 4), torch.rand(3, 1, 4, 4)  # (K, batch, ...) against (batch, ...)
    fast = likelihood.log_prob(logits, x)
    assert fast.shape == (5, 3)
    torch.testing.assert_close(fast, likelihood.distribution(logits).log_prob(x))


def _small_vae():
    torch.manual_seed(4)
    encoder = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 8))
    decoder = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 10))
    return VAE(encoder, decoder, Bernoulli((10,)), StandardNormal(4))


def test_iwae_is_at_least_the_elbo_on_a_random_model():
    vae = _small_vae()
    x = torch.bernoulli(torch.full((300, 10), 0.3))
    assert vae.log_likelihood(x, k=50).mean() > vae.elbo(x, n_samples=50).total().mean()


def test_training_loss_is_the_negative_elbo_and_free_bits_floor_the_kl():
    vae = _small_vae()
    x = torch.bernoulli(torch.full((64, 10), 0.5))
    torch.manual_seed(5)
    loss = vae.loss(x)
    torch.manual_seed(5)
    elbo = vae.elbo(x)
    torch.testing.assert_close(loss.loss, -elbo.total().mean())
    torch.manual_seed(5)
    floored = vae.loss(x, free_bits=100.0)
    # Every dimension's KL is below 100 nats, so each counts as exactly 100.
    torch.testing.assert_close(floored.loss, -elbo.reconstruction.mean() + 4 * 100.0)
    torch.manual_seed(5)
    weighted = vae.loss(x, beta=0.25)
    torch.testing.assert_close(weighted.loss, -elbo.total(beta=0.25).mean())


def test_iwae_training_objective_with_one_sample_equals_its_bound():
    vae = _small_vae()
    x = torch.bernoulli(torch.full((32, 10), 0.5))
    torch.manual_seed(6)
    bound = vae.loss(x, iw_samples=2).loss
    torch.manual_seed(6)
    qz = vae.encode(x)
    z = qz.rsample((2,))
    log_w = vae.decode(z).log_prob(x) + vae.prior().log_prob(z) - qz.log_prob(z)
    torch.testing.assert_close(bound, -(torch.logsumexp(log_w, 0) - math.log(2)).mean())
    bound.backward()
    assert all(p.grad is not None for p in vae.encoder.parameters())


@pytest.mark.parametrize("k", [1, 5000])
def test_log_likelihood_memory_is_bounded_by_chunks(k):
    vae = _small_vae()
    x = torch.bernoulli(torch.full((3, 10), 0.5))
    assert vae.log_likelihood(x, k=k, chunk_size=512).shape == (3,)
