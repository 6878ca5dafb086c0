"""Priors and posteriors as parts: one conformance suite over every prior (vaekit's and two toy priors
defined here, whose KL vaekit can only estimate by Monte Carlo), the closed forms, the posterior's
draws, and a VAE that trains and evaluates through a prior it has never heard of."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from vaekit.config import TrainConfig
from vaekit.likelihoods import Bernoulli
from vaekit.posteriors import DiagonalGaussian, DiagonalNormal, Posterior
from vaekit.errors import ConfigError
from vaekit.priors import (PRIORS, CompositePrior, MixtureOfGaussians, Prior, StandardNormal, VampPrior,
                           monte_carlo_kl, standard_normal_kl)
from vaekit.training import Trainer
from vaekit.vae import VAE, build_vae


class ShiftedNormal(Prior):
    """A fixed N(loc, diag(scale^2)) that leaves its KL to Monte Carlo: torch's closed form checks it."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.linspace(-1.0, 1.0, latent_dim))
        self.register_buffer("scale", torch.linspace(0.5, 2.0, latent_dim))

    def forward(self):
        return Independent(Normal(self.loc, self.scale), 1)

    def sample(self, n, generator=None):
        noise = torch.randn(n, self.latent_dim, generator=generator, device=generator.device if generator else None)
        return self.loc + self.scale * noise.to(self.loc.device)

    def kl(self, qz, z=None):
        return monte_carlo_kl(qz, self, z)

    def kl_terms(self, qz, z, split=True):
        return monte_carlo_kl(qz, self, z).unsqueeze(-1)


class TwoGaussians(Prior):
    """An equal mixture of N(-1.5, 0.6^2 I) and N(1.5, 0.6^2 I): no closed-form KL exists."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("locs", torch.tensor([-1.5, 1.5])[:, None].expand(2, latent_dim).clone())
        self.register_buffer("logits", torch.zeros(2))

    def forward(self):
        return MixtureSameFamily(Categorical(logits=self.logits), Independent(Normal(self.locs, 0.6), 1))

    def sample(self, n, generator=None):
        device = generator.device if generator else None
        component = torch.randint(2, (n,), generator=generator, device=device).to(self.locs.device)
        noise = torch.randn(n, self.latent_dim, generator=generator, device=device).to(self.locs.device)
        return self.locs[component] + 0.6 * noise

    def kl(self, qz, z=None):
        return monte_carlo_kl(qz, self, z)

    def kl_terms(self, qz, z, split=True):
        return monte_carlo_kl(qz, self, z).unsqueeze(-1)


def vamp_prior(latent_dim: int) -> VampPrior:
    """A VampPrior of 3 pseudo-inputs through a toy encoder, registered here too so that .double() reaches it."""
    torch.manual_seed(12)
    prior = VampPrior(latent_dim, nn.Linear(4, 2 * latent_dim), (4,), components=3)
    prior.add_module("toy_encoder", prior.encoder)
    return prior


# vaekit's priors and two toy ones, each made from its latent size (the VampPrior also needs an encoder)
ALL_PRIORS = [StandardNormal, lambda d: MixtureOfGaussians(d, components=3), vamp_prior, ShiftedNormal, TwoGaussians]
assert len(ALL_PRIORS) == len(PRIORS) + 2, "a new prior joins the conformance suite here"


def _posterior(batch: int = 4, latent: int = 3, copies: int = 1) -> DiagonalNormal:
    """q(z|x) for `batch` examples, each repeated `copies` times (rows copy * batch + example)."""
    torch.manual_seed(0)
    stats = torch.cat([torch.randn(batch, latent), torch.randn(batch, latent) - 1.0], -1)
    return DiagonalGaussian()(stats.repeat(copies, 1))


@pytest.mark.parametrize("kind", ALL_PRIORS)
def test_log_prob_is_a_normalised_density_in_one_dimension(kind):
    grid = torch.linspace(-12.0, 12.0, 24001, dtype=torch.float64)[:, None]  # (points, 1)
    density = kind(1).double().log_prob(grid).exp()
    torch.testing.assert_close(torch.trapezoid(density, grid[:, 0]).item(), 1.0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ALL_PRIORS)
def test_log_prob_is_the_distributions_and_sums_over_dimensions(kind):
    prior = kind(3)
    z = torch.randn(5, 4, 3)  # (k, batch, latent)
    assert prior.log_prob(z).shape == (5, 4)
    torch.testing.assert_close(prior.log_prob(z), prior().log_prob(z))
    if isinstance(prior(), Independent):  # a diagonal prior's density is a product over dimensions
        torch.testing.assert_close(prior.log_prob(z), prior().base_dist.log_prob(z).sum(-1))


@pytest.mark.parametrize("kind", ALL_PRIORS)
def test_samples_follow_the_prior_and_a_generator_repeats_them(kind):
    prior = kind(3)
    draws = [prior.sample(50_000, torch.Generator().manual_seed(1)) for _ in range(2)]
    assert draws[0].shape == (50_000, 3) and torch.equal(*draws)
    torch.manual_seed(0)
    unseeded = prior.sample(50_000)
    for z in (draws[0], unseeded):
        torch.testing.assert_close(z.mean(0), prior().mean, atol=0.03, rtol=0)
        torch.testing.assert_close(z.var(0), prior().variance, atol=0.05, rtol=0.03)


def _many_sample_kl(qz, prior, n: int = 400_000) -> torch.Tensor:
    z = qz.sample((n,))  # (n, batch, latent)
    return (qz.log_prob(z) - prior.log_prob(z)).mean(0)


@pytest.mark.parametrize("kind", ALL_PRIORS)
def test_kl_is_the_monte_carlo_kl_and_its_terms_add_up_to_it(kind):
    prior, qz = kind(3), _posterior()
    torch.manual_seed(1)
    z = qz.rsample()  # (batch, latent)
    kl, terms = prior.kl(qz, z), prior.kl_terms(qz, z)
    assert kl.shape == (4,) and terms.shape in ((4, 3), (4, 1))
    torch.testing.assert_close(terms.sum(-1), kl, atol=1e-5, rtol=0)
    torch.manual_seed(2)
    expected = _many_sample_kl(qz, prior)
    torch.manual_seed(3)
    averaged = prior.kl(qz, qz.rsample((20_000,)))  # the mean over draws: exact, or unbiased around it
    torch.testing.assert_close(averaged, expected, atol=0.05, rtol=0.01)
    assert (expected > 0).all()


@pytest.mark.parametrize("kind", [ShiftedNormal, TwoGaussians])
def test_the_one_sample_monte_carlo_kl_is_unbiased(kind):
    prior, qz = kind(3), _posterior()
    exact = kl_divergence(qz, prior()) if kind is ShiftedNormal else _many_sample_kl(qz, prior)
    torch.manual_seed(4)
    one_draw_each = prior.kl(_posterior(copies=20_000)).view(20_000, 4)  # (copies, batch): a fresh z each
    assert one_draw_each.std(0).min() > 0.1, "each estimate should be noisy ..."
    torch.testing.assert_close(one_draw_each.mean(0), exact, atol=0.05, rtol=0.01)  # ... and right on average


def test_standard_normal_kl_is_the_closed_form_in_both_of_its_forms():
    prior, qz = StandardNormal(3), _posterior()
    loc, variance = qz.mean, qz.variance
    closed_form = 0.5 * (loc ** 2 + variance - 1 - variance.log())  # (batch, latent), Kingma & Welling app. B
    torch.testing.assert_close(prior.kl(qz), closed_form.sum(-1))
    z = qz.rsample()
    assert torch.equal(prior.kl_terms(qz, z), standard_normal_kl(qz.mean, qz.log_var))  # the training form
    torch.testing.assert_close(prior.kl_terms(qz, z), closed_form)
    plain = Independent(Normal(loc, variance.sqrt()), 1)  # a diagonal Gaussian vaekit did not make
    torch.testing.assert_close(prior.kl_terms(plain, z), closed_form)
    assert torch.equal(prior.kl(qz, torch.full((3,), float("nan"))), prior.kl(qz))  # the draws play no part


def test_standard_normal_estimates_the_kl_from_a_posterior_without_closed_form():
    torch.manual_seed(5)
    weights = torch.tensor([0.3, 0.7])
    qz = MixtureSameFamily(Categorical(weights), Independent(Normal(torch.randn(2, 3), torch.ones(2, 3) * 0.5), 1))
    prior = StandardNormal(3)
    z = qz.sample((100_000,))[:, None]  # (n, batch 1, latent)
    assert prior.kl_terms(qz, z[0]).shape == (1, 1)
    torch.testing.assert_close(prior.kl(qz, z), (qz.log_prob(z) - prior.log_prob(z)).mean(0))


def test_the_diagonal_gaussian_posterior_draws_with_the_right_moments_and_gradients():
    stats = torch.tensor([[0.5, -1.0, 2.0, math.log(0.25), 0.0, math.log(4.0)]], requires_grad=True)
    qz = DiagonalGaussian()(stats)  # loc (0.5, -1, 2), variance (0.25, 1, 4)
    assert qz.batch_shape == (1,) and qz.event_shape == (3,) and qz.has_rsample
    torch.manual_seed(6)
    z = qz.rsample((200_000,))  # (n, 1, latent)
    torch.testing.assert_close(z.mean(0)[0], torch.tensor([0.5, -1.0, 2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0)[0], torch.tensor([0.5, 1.0, 2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(qz.log_prob(z[:5]), Normal(qz.mean, qz.stddev).log_prob(z[:5]).sum(-1))
    (grad,) = torch.autograd.grad(z.square().mean(0).sum(), stats)  # d E[z^2] / d loc = 2 loc, / d log_var = var
    torch.testing.assert_close(grad[0], torch.tensor([1.0, -2.0, 4.0, 0.25, 1.0, 4.0]), atol=0.05, rtol=0.02)


def test_the_posterior_is_a_part_without_parameters_so_checkpoints_are_unchanged():
    from vaekit.config import ModelConfig

    vae = build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=2))
    assert isinstance(vae.posterior, DiagonalGaussian) and isinstance(vae.encode(torch.rand(3, 6)), DiagonalNormal)
    assert not any(key.startswith("posterior") for key in vae.state_dict())

    class Halved(Posterior):  # a posterior vaekit does not know: the VAE uses what it is given
        def forward(self, stats):
            loc, log_var = stats.chunk(2, -1)
            return Independent(Normal(loc / 2, log_var.exp().sqrt()), 1)

    custom = VAE(vae.encoder, vae.decoder, vae.likelihood, vae.prior, posterior=Halved())
    x = torch.rand(3, 6)
    torch.testing.assert_close(custom.encode(x).mean, vae.encode(x).mean / 2)
    assert custom.loss(x, free_bits=0.1).loss.isfinite()


def _toy_vae(prior: Prior) -> VAE:
    torch.manual_seed(7)
    encoder = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))
    decoder = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 10))
    return VAE(encoder, decoder, Bernoulli((10,)), prior)


def _toy_data() -> torch.Tensor:
    generator = torch.Generator().manual_seed(8)
    centres = torch.tensor([[0.9] * 5 + [0.1] * 5, [0.1] * 5 + [0.9] * 5])
    return torch.bernoulli(centres[torch.randint(2, (400,), generator=generator)], generator=generator)


@pytest.mark.parametrize("kind", [ShiftedNormal, TwoGaussians])
def test_a_vae_trains_and_evaluates_through_a_prior_it_does_not_know(kind):
    vae, x = _toy_vae(kind(2)), _toy_data()
    torch.manual_seed(9)
    before = -vae.elbo(x, n_samples=8).total().mean()
    history = Trainer(vae, TrainConfig(epochs=15, batch_size=50, lr=3e-3, progress=False, device="cpu")).fit(x)
    vae.eval()
    torch.manual_seed(10)
    elbo = vae.elbo(x, n_samples=8)
    assert history[-1]["loss"] < history[0]["loss"] and -elbo.total().mean() < before - 1.0
    assert torch.isfinite(elbo.kl).all() and elbo.kl.mean() > 0
    iwae = vae.log_likelihood(x[:200], k=64)
    assert iwae.mean() >= vae.elbo(x[:200], n_samples=64).total().mean()  # IWAE >= ELBO through the toy prior
    assert vae.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, 10)
    assert vae.loss(x[:20], iw_samples=4).loss.isfinite()


def test_free_bits_floor_the_whole_kl_where_the_prior_estimates_it():
    vae, x = _toy_vae(TwoGaussians(2)), _toy_data()[:64]
    torch.manual_seed(11)
    plain = vae.loss(x)
    torch.manual_seed(11)
    floored = vae.loss(x, free_bits=100.0)  # one term, the total KL, below 100 nats: it counts as 100
    torch.testing.assert_close(floored.loss, -plain.reconstruction + 100.0)
    torch.testing.assert_close(floored.kl, plain.kl)


def test_the_latent_codes_refuse_a_prior_whose_cdf_they_cannot_quantize():
    from vaekit.compression.lossy import gaussian_prior
    from vaekit.errors import ConfigError

    assert torch.equal(gaussian_prior(_toy_vae(StandardNormal(2))).scale, torch.ones(2))
    with pytest.raises(ConfigError, match="diagonal Gaussian prior.*TwoGaussians"):
        gaussian_prior(_toy_vae(TwoGaussians(2)))


# -- RecVAE's composite prior ---------------------------------------------------------------------
def _composite(latent: int = 3, batch: int = 4, wide_log_var: float = 10.0, weights=(3 / 20, 3 / 4, 1 / 10)):
    """A CompositePrior over a linear encoder of 5 inputs, given a fixed batch x; and that batch's q_old."""
    torch.manual_seed(0)
    encoder = nn.Linear(5, 2 * latent)
    prior = CompositePrior(encoder, DiagonalGaussian(), latent, weights, wide_log_var=wide_log_var)
    x = torch.randn(batch, 5)
    return prior, prior.given(x), DiagonalGaussian()(encoder(x)).base_dist


def _normal_density(v, loc, var):
    return torch.exp(-0.5 * (v - loc) ** 2 / var) / (2 * math.pi * var) ** 0.5


def test_composite_prior_density_is_the_papers_mixture_per_dimension():
    _, prior, old = _composite()
    z = torch.randn(6, 4, 3, dtype=torch.float64)  # (k, batch, latent)
    loc, var = old.loc.double().detach(), old.scale.double().detach() ** 2
    mixture = (3 / 20 * _normal_density(z, 0.0, 1.0) + 3 / 4 * _normal_density(z, loc, var)
               + 1 / 10 * _normal_density(z, 0.0, math.exp(10.0)))
    torch.testing.assert_close(prior.log_prob(z.float()).double(), mixture.log().sum(-1), atol=1e-5, rtol=1e-5)
    grid = torch.linspace(-1500.0, 1500.0, 600_001, dtype=torch.float64)  # the wide part: std e^5 ~ 148
    one_dim = CompositePrior(nn.Linear(5, 2), DiagonalGaussian(), 1).double().given(torch.randn(1, 5).double())
    density = one_dim.log_prob(grid[:, None, None]).exp()[:, 0]
    torch.testing.assert_close(torch.trapezoid(density, grid).item(), 1.0, atol=1e-4, rtol=0)


@pytest.mark.parametrize("weights", [(0.5, 0.25, 0.25), (0.3, 0.6, 0.1), (1.0, 0.0, 0.0)])
def test_composite_prior_density_is_the_mixture_of_the_weights_given(weights):
    _, prior, old = _composite(weights=weights)
    z = torch.randn(6, 4, 3, dtype=torch.float64)  # (k, batch, latent)
    loc, var = old.loc.double().detach(), old.scale.double().detach() ** 2
    parts = (_normal_density(z, 0.0, 1.0), _normal_density(z, loc, var), _normal_density(z, 0.0, math.exp(10.0)))
    mixture = sum(w * part for w, part in zip(weights, parts))
    torch.testing.assert_close(prior.log_prob(z.float()).double(), mixture.log().sum(-1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("weights", [(0.5, 0.6, 0.1), (-0.1, 1.0, 0.1), (0.5, 0.5), (), (math.nan, 0.5, 0.5)])
def test_composite_prior_refuses_weights_that_are_not_a_distribution_over_its_3_parts(weights):
    with pytest.raises(ConfigError, match="must be 3 numbers >= 0 that sum to 1") as refused:
        CompositePrior(nn.Linear(5, 6), DiagonalGaussian(), 3, weights)
    assert "\n" not in str(refused.value)


def test_composite_prior_kl_is_the_monte_carlo_kl_and_unbiased():
    _, prior, _ = _composite()
    qz = _posterior()
    torch.manual_seed(1)
    z = qz.rsample()
    torch.testing.assert_close(prior.kl_terms(qz, z).sum(-1), prior.kl(qz, z))
    torch.manual_seed(2)
    expected = _many_sample_kl(qz, prior)
    torch.manual_seed(3)
    torch.testing.assert_close(prior.kl(qz, qz.rsample((20_000,))), expected, atol=0.05, rtol=0.01)
    assert (expected > 0).all()
    # a prior equal to the posterior: the KL is 0 exactly, the mixture's only when w1 = 1
    exact = CompositePrior(nn.Identity(), DiagonalGaussian(), 3, weights=(0.0, 1.0, 0.0))
    stats = torch.cat([qz.mean, qz.log_var], -1)
    torch.testing.assert_close(exact.given(stats).kl(qz, qz.rsample((10,))), torch.zeros(4), atol=1e-5, rtol=0)


def test_composite_prior_draws_follow_the_mixture():
    _, prior, old = _composite(batch=1, latent=2, wide_log_var=1.0)
    generator = torch.Generator().manual_seed(0)
    big = CompositePrior(nn.Identity(), DiagonalGaussian(), 2, wide_log_var=1.0)
    stats = torch.cat([old.loc, 2 * old.scale.log()], -1).detach().expand(100_000, -1)
    draws = big.given(stats).sample(100_000, generator)  # (n, latent): one draw of each row's prior
    loc, var = old.loc.detach()[0], old.scale.detach()[0] ** 2
    mean = 3 / 4 * loc
    second = 3 / 20 + 3 / 4 * (var + loc ** 2) + 1 / 10 * math.e
    torch.testing.assert_close(draws.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(draws.var(0), second - mean ** 2, atol=0.05, rtol=0.03)
    with pytest.raises(ConfigError):
        prior.sample(3)


def test_composite_prior_needs_data_keeps_its_copy_frozen_and_renews_it():
    unbound, _, _ = _composite()
    with pytest.raises(ConfigError):
        unbound.log_prob(torch.zeros(2, 3))
    with pytest.raises(ConfigError):
        CompositePrior(nn.Linear(5, 6), DiagonalGaussian(), 3, weights=(0.5, 0.6, 0.1))
    encoder = nn.Sequential(nn.Dropout(0.5), nn.Linear(5, 6))
    prior = CompositePrior(encoder, DiagonalGaussian(), 3).train()
    assert not prior.previous.training and not any(p.requires_grad for p in prior.parameters())
    with torch.no_grad():
        encoder[1].weight.add_(1.0)
    x = torch.randn(4, 5)
    assert not torch.allclose(prior.given(x).old.loc, encoder.eval()(x)[:, :3])
    prior.renew(encoder)
    torch.testing.assert_close(prior.given(x).old.loc, encoder(x)[:, :3])


def test_a_vae_scores_a_batch_against_the_prior_given_that_batch():
    encoder = nn.Linear(5, 6)
    vae = VAE(encoder, nn.Linear(3, 5), Bernoulli((5,)), CompositePrior(encoder, DiagonalGaussian(), 3))
    x = torch.bernoulli(torch.full((4, 5), 0.5))
    qz = vae.encode(x)
    # the previous encoder is this one: the mixture's middle part is q itself
    torch.testing.assert_close(vae.prior.given(x).old.loc, qz.mean)
    assert vae.elbo(x, n_samples=3).kl.shape == (4,) and vae.log_likelihood(x, k=4).shape == (4,)
    assert torch.isfinite(vae.loss(x, beta=torch.ones(4)).loss)


def test_a_per_example_kl_weight_weighs_each_examples_kl():
    torch.manual_seed(0)
    vae = VAE(nn.Linear(5, 6), nn.Linear(3, 5), Bernoulli((5,)), StandardNormal(3))
    x = torch.bernoulli(torch.full((4, 5), 0.5))
    qz = vae.encode(x)
    kl = standard_normal_kl(qz.mean, qz.log_var).sum(-1)  # (batch,)
    weights = torch.tensor([0.0, 1.0, 2.0, 5.0])
    losses = []
    for beta in (weights, 0.0):
        torch.manual_seed(1)
        losses.append(vae.loss(x, beta=beta).loss)
    torch.testing.assert_close(losses[0] - losses[1], (weights * kl).mean())
    with pytest.raises(ConfigError):
        vae.loss(x, beta=weights, free_bits=0.5)
