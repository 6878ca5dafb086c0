"""The model variants of issue 42 as parts of the one VAE: flow posteriors (IAF, planar) against the change of
variables, the mixture priors' per-dimension KL split, two stochastic layers, and a conformance suite of every
prior x posterior x layers through every network, likelihood and conditioning, saving, resume, serve and report."""

import itertools
import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.config import ModelConfig
from vaekit.hierarchy import TwoLayerDistribution, TwoLayerPosterior, TwoLayerPrior
from vaekit.likelihoods import Bernoulli, Gaussian
from vaekit.posteriors import POSTERIORS, DiagonalGaussian, Flow, IAFStep, PlanarStep, build_posterior
from vaekit.priors import PRIORS, MixtureOfGaussians, StandardNormal
from vaekit.vae import VAE, build_vae

from test_vae_math import D, LATENT, SIGMA, linear_gaussian


def _randomized(step: nn.Module) -> nn.Module:
    """A flow step with every parameter drawn at random (a fresh IAF starts with zero output weights)."""
    torch.manual_seed(20)
    with torch.no_grad():
        for p in step.parameters():
            p.copy_(torch.randn_like(p) * 0.7)
    return step.double()


STEPS = {"iaf": lambda: IAFStep(3, 8), "iaf_reversed": lambda: IAFStep(3, 8, reverse=True),
         "planar": lambda: PlanarStep(3)}


@pytest.mark.parametrize("name", STEPS)
def test_a_flow_log_density_is_the_change_of_variables_with_a_numerical_jacobian(name):
    flow = Flow([_randomized(STEPS[name]()), _randomized(STEPS[name]())])
    stats = torch.randn(4, 6, dtype=torch.float64)
    qz = flow(stats)
    base = DiagonalGaussian()(stats)
    torch.manual_seed(21)
    z = qz.rsample()  # (batch, latent)
    torch.manual_seed(21)
    z0 = base.rsample()

    def push(v):
        for step in flow.steps:
            v = step(v)[0]
        return v

    torch.testing.assert_close(push(z0), z)
    for row in range(4):
        jacobian = torch.autograd.functional.jacobian(push, z0[row])  # (latent, latent)
        expected = base.log_prob(z0)[row] - torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(qz.log_prob(z)[row], expected)
        if name.startswith("iaf"):  # autoregressive: the Jacobian is triangular in the step's order
            order = flow.steps[0].order
            assert torch.allclose(jacobian[order.argsort()][:, order.argsort()].triu(1), torch.zeros(3, 3, dtype=torch.float64))


def test_iaf_inverts_so_its_density_is_known_everywhere_and_integrates_to_one():
    flow = Flow([_randomized(IAFStep(2, 8)), _randomized(IAFStep(2, 8, reverse=True))])
    stats = torch.tensor([[0.3, -0.2, math.log(0.5), math.log(0.8)]], dtype=torch.float64)
    qz = flow(stats)
    z = qz.sample((5,))
    fresh = flow(stats)  # no cached draws: log_prob inverts the steps
    torch.testing.assert_close(fresh.log_prob(z.clone()), qz.log_prob(z))
    axis = torch.linspace(-8, 8, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 1, 2)  # (points, batch 1, 2)
    density = flow(stats).log_prob(grid).exp().view(401, 401)
    mass = torch.trapezoid(torch.trapezoid(density, axis), axis)
    torch.testing.assert_close(mass.item(), 1.0, atol=1e-4, rtol=0)


def test_an_iaf_with_a_context_is_the_change_of_variables_for_each_rows_own_flow():
    """Kingma et al.'s IAF reads the encoder's context h beside z: the same z0 goes to different z for different
    x, each row's density is its own flow's change of variables, and the inverse finds z0 again."""
    flow = Flow([_randomized(IAFStep(3, 8, context_dim=2)), _randomized(IAFStep(3, 8, reverse=True, context_dim=2))],
                context_dim=2)
    torch.manual_seed(26)
    stats = torch.randn(4, 8, dtype=torch.float64)
    stats[1, :6] = stats[0, :6]  # rows 0 and 1: the same Gaussian, different contexts
    qz = flow(stats)
    base = DiagonalGaussian()(stats[:, :6])
    torch.manual_seed(27)
    z0 = base.rsample()
    z0[1] = z0[0]
    z = qz.transforms[1](qz.transforms[0](z0))
    assert not torch.allclose(z[0], z[1]), "the flow ignores its context"
    for row in range(4):
        h = stats[row, 6:]

        def push(v):
            for step in flow.steps:
                v = step(v, h)[0]
            return v

        jacobian = torch.autograd.functional.jacobian(push, z0[row])
        expected = base.log_prob(z0)[row] - torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(qz.log_prob(z)[row], expected)
    fresh = flow(stats)  # no cached draws: log_prob inverts each row's steps under its context
    torch.testing.assert_close(fresh.log_prob(z.clone()), qz.log_prob(z))
    draws = qz.sample((5,))  # (5, batch, latent): the context broadcasts over the draws
    torch.testing.assert_close(flow(stats).log_prob(draws.clone()), qz.log_prob(draws))


def test_an_iaf_run_outputs_its_context_and_one_without_loads_as_saved_before_the_option(tmp_path):
    """The encoder gives loc, log-variance and the context (3 numbers per latent dimension; 2 with
    --no-flow-context); a run saved before the option existed (no flow_context key) loads as a flow without one."""
    import json

    from vaekit.apps.images import load_run, train

    def encoder_outputs(config):
        return build_vae(config).encoder(torch.rand(2, 1, 4, 4)).shape[-1]

    config = ModelConfig(latent_dim=2, hidden=(8,), data_shape=(1, 4, 4), posterior="iaf")
    assert encoder_outputs(config) == 6
    assert encoder_outputs(ModelConfig(**{**config.__dict__, "flow_context": False})) == 4
    assert encoder_outputs(ModelConfig(**{**config.__dict__, "stochastic_layers": 2})) == 12
    assert encoder_outputs(ModelConfig(**{**config.__dict__, "posterior": "planar"})) == 4
    out = tmp_path / "run"
    trained = train(out, data="digits", epochs=1, hidden=(16,), latent_dim=2, posterior="iaf", flow_context=False,
                    progress=False)
    saved = json.loads((out / "config.json").read_text())
    del saved["model"]["flow_context"]
    (out / "config.json").write_text(json.dumps(saved))
    loaded = load_run(out, device="cpu")
    assert loaded.model.flow_context is False
    x = torch.rand(3, *trained.model.data_shape).bernoulli()
    torch.manual_seed(33)
    expected = trained.vae.cpu().log_likelihood(x, k=8)
    torch.manual_seed(33)
    torch.testing.assert_close(loaded.vae.log_likelihood(x, k=8), expected)


def test_a_planar_flow_says_it_has_no_inverse():
    qz = Flow([PlanarStep(3)])(torch.randn(2, 6))
    with pytest.raises(NotImplementedError, match="planar"):
        qz.log_prob(torch.randn(2, 3))


def test_an_iaf_that_scales_by_a_half_makes_the_linear_gaussian_estimates_exact_again():
    """The encoder's Gaussian is twice the exact posterior; an IAF step with sigma = 1/2 and m = 0 brings it back.
    Every importance weight is then p(x), which holds only if log q includes the step's log-determinant."""
    vae, marginal = linear_gaussian()
    step = IAFStep(LATENT, 4).double()
    with torch.no_grad():
        step.out.bias[LATENT:] = -1.0  # sigmoid(-1 + 1) = 1/2
        vae.encoder.weight[:LATENT] *= 2
        vae.encoder.bias[:LATENT] *= 2
        vae.encoder.bias[LATENT:] += math.log(4.0)
    flowed = VAE(vae.encoder, vae.decoder, vae.likelihood, vae.prior, posterior=Flow([step])).double()
    torch.manual_seed(22)
    x = marginal.sample((20,))
    exact = marginal.log_prob(x)
    torch.testing.assert_close(flowed.log_likelihood(x, k=7, chunk_size=3), exact)
    torch.testing.assert_close(flowed.elbo(x, n_samples=20000).total(), exact, atol=0.05, rtol=0)


def test_the_standard_prior_still_matches_the_linear_gaussian_closed_form_through_build_vae_defaults():
    vae, marginal = linear_gaussian()
    assert isinstance(vae.posterior, DiagonalGaussian) and isinstance(vae.prior, StandardNormal)
    x = marginal.sample((10,))
    torch.testing.assert_close(vae.log_likelihood(x, k=5), marginal.log_prob(x))


def test_monte_carlo_kl_of_a_one_component_mixture_is_the_closed_form_and_splits_by_dimension():
    prior = MixtureOfGaussians(3, components=1)
    with torch.no_grad():
        prior.loc.copy_(torch.tensor([[0.5, -1.0, 0.2]]))
        prior.log_scale.copy_(torch.tensor([[0.0, 0.4, -0.3]]))
    stats = torch.tensor([[0.1, 0.3, -0.5, -1.0, 0.2, 0.0], [1.0, -1.0, 0.5, 0.5, -0.5, 0.1]])
    qz = DiagonalGaussian()(stats)
    exact = kl_divergence(qz.base_dist, Normal(prior.loc[0], prior.log_scale[0].exp())).detach()  # (batch, latent)
    torch.manual_seed(23)
    z = qz.rsample((100_000,))  # (n, batch, latent)
    with torch.no_grad():
        torch.testing.assert_close(prior.kl(qz, z), exact.sum(-1), atol=0.02, rtol=0)
        terms = prior.kl_terms(qz, z)  # (n, batch, latent): the terms of each draw
        torch.testing.assert_close(terms.mean(0), exact, atol=0.03, rtol=0)  # one component: each term is its dim's KL


def test_mixture_kl_terms_are_non_negative_on_average_and_free_bits_floor_each_dimension():
    torch.manual_seed(24)
    prior = MixtureOfGaussians(3, components=4)
    qz = DiagonalGaussian()(torch.randn(5, 6))
    with torch.no_grad():
        z = qz.rsample((100_000,))
        terms = prior.kl_terms(qz, z).mean(0)  # (batch, latent): each dimension's expected term
        assert (terms > -0.02).all()
        torch.testing.assert_close(terms.sum(-1), prior.kl(qz, z), atol=1e-4, rtol=1e-5)
    encoder, decoder = nn.Linear(10, 6), nn.Linear(3, 10)
    vae = VAE(encoder, decoder, Bernoulli((10,)), prior)
    x = torch.rand(8, 10).bernoulli()
    torch.manual_seed(25)
    plain = vae.loss(x)
    torch.manual_seed(25)
    floored = vae.loss(x, free_bits=50.0)  # every dimension's batch-mean term under 50 nats counts as 50
    torch.testing.assert_close(floored.loss, -plain.reconstruction + 3 * 50.0)


def _two_layer(top=None, latent: int = 2) -> tuple[TwoLayerPrior, TwoLayerPosterior]:
    torch.manual_seed(26)
    prior, posterior = TwoLayerPrior(top or StandardNormal(latent), 8), TwoLayerPosterior(latent, 8)
    for p in [*prior.net.parameters(), *posterior.net.parameters()]:
        nn.init.normal_(p, std=0.5)
    return prior, posterior


@pytest.mark.parametrize("top", ["standard_normal", "mog"])
def test_two_layer_kl_is_the_joint_monte_carlo_kl_and_its_terms_add_up(top):
    prior, posterior = _two_layer(MixtureOfGaussians(2, 3) if top == "mog" else None)
    qz = posterior(torch.randn(4, 8))
    assert isinstance(qz, TwoLayerDistribution) and qz.event_shape == (4,)
    torch.manual_seed(27)
    z = qz.rsample()
    terms = prior.kl_terms(qz, z)
    assert terms.shape == (4, 4)  # two dimensions of z2, then two of z1
    torch.testing.assert_close(terms.sum(-1), prior.kl(qz, z), atol=1e-5, rtol=0)
    many = qz.rsample((50_000,))
    joint = (qz.log_prob(many) - prior.log_prob(many)).mean(0)  # the plain estimate over both layers
    torch.testing.assert_close(prior.kl(qz, many), joint, atol=0.03, rtol=0.01)
    assert (joint > 0).all()


def test_two_layer_densities_factorize_and_sample_the_chain():
    prior, posterior = _two_layer()
    z = torch.randn(6, 4)
    z1, z2 = z[:, :2], z[:, 2:]
    mean, log_var = prior.net(z2).chunk(2, -1)
    expected = Normal(0, 1).log_prob(z2).sum(-1) + Normal(mean, (0.5 * log_var).exp()).log_prob(z1).sum(-1)
    torch.testing.assert_close(prior.log_prob(z), expected)
    draws = prior.sample(100_000, torch.Generator().manual_seed(0))  # (n, 4): z1 | z2 ~ p(z1|z2)
    assert torch.equal(draws, prior.sample(100_000, torch.Generator().manual_seed(0)))
    mean, log_var = prior.net(draws[:, 2:]).chunk(2, -1)
    residual = (draws[:, :2] - mean) / (0.5 * log_var).exp()
    torch.testing.assert_close(residual.mean(0), torch.zeros(2), atol=0.02, rtol=0)
    torch.testing.assert_close(residual.std(0), torch.ones(2), atol=0.02, rtol=0)
    torch.testing.assert_close(draws[:, 2:].std(0), torch.ones(2), atol=0.02, rtol=0)


# -- conformance: every prior x posterior x layers, and each network, likelihood and condition -----------------
VARIANTS = list(itertools.product(PRIORS, POSTERIORS, (1, 2)))
PARTS = [("mlp", "bernoulli", "none"), ("conv", "bernoulli", "none"), ("mlp", "gaussian", "none"),
         ("conv", "discretized_logistic", "none"), ("mlp", "bernoulli", "label"), ("conv", "gaussian", "lowres:2")]


def _model(prior, posterior, layers, network="mlp", likelihood="bernoulli", condition="none"):
    torch.manual_seed(28)
    config = ModelConfig(network=network, likelihood=likelihood, condition=condition, latent_dim=2, hidden=(8,),
                         conv_channels=(4,), data_shape=(1, 4, 4), n_classes=3, prior=prior, posterior=posterior,
                         prior_components=3, flow_steps=2, stochastic_layers=layers)
    return build_vae(config)


def _data(likelihood, condition):
    torch.manual_seed(29)
    x = torch.rand(5, 1, 4, 4)
    x = x.bernoulli() if likelihood == "bernoulli" else (x * 255).round() / 255
    c = {"none": None, "label": torch.tensor([0, 1, 2, 0, 1]), "lowres:2": torch.rand(5, 1, 2, 2)}[condition]
    return x, c


# every variant with the first parts; each other part with three variants that together hold every prior and posterior
CASES = [(variant, PARTS[0]) for variant in VARIANTS] + [
    (variant, parts) for parts in PARTS[1:] for variant in (("vamp", "iaf", 2), ("mog", "planar", 1), ("standard_normal", "gaussian", 2))]


@pytest.mark.parametrize("variant, parts", CASES, ids=lambda v: "-".join(map(str, v)))
def test_every_variant_with_every_network_likelihood_and_condition(variant, parts):
    vae, (x, c) = _model(*variant, *parts), _data(*parts[1:])
    latent = 2 * variant[2]
    loss = vae.loss(x, c=c, free_bits=0.1)
    loss.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.parameters()), "a part gets no gradient"
    assert vae.loss(x, c=c, iw_samples=3).loss.isfinite()
    torch.manual_seed(30)
    elbo = vae.elbo(x, n_samples=64, c=c)
    assert elbo.kl.shape == (5,) and torch.isfinite(elbo.total()).all()
    torch.manual_seed(31)
    nll = vae.log_likelihood(x, k=64, c=c)
    assert nll.shape == (5,) and nll.mean() >= elbo.total().mean() - 0.05  # IWAE >= ELBO, up to the ELBO's noise
    qz = vae.encode(x, c=c)
    assert qz.mean.shape == qz.stddev.shape == (5, latent)
    assert vae.sample(4, torch.Generator().manual_seed(0), c=None if c is None else c[:4]).shape == (4, 1, 4, 4)
    assert vae.reconstruct(x, c=c).shape == x.shape
    again = _model(*variant, *parts)
    again.load_state_dict(vae.state_dict())  # the parts' parameters (pseudo-inputs, flow steps) travel with it
    torch.manual_seed(32)
    reloaded = again.log_likelihood(x, k=8, c=c)
    torch.manual_seed(32)
    torch.testing.assert_close(reloaded, vae.log_likelihood(x, k=8, c=c))


def test_the_vamp_prior_reads_the_encoder_without_a_second_copy_of_its_weights():
    vae = _model("vamp", "gaussian", 2)
    assert not any(key.startswith("prior.top.encoder") for key in vae.state_dict())
    assert vae.prior.top.encoder is vae.encoder
    x = vae.prior.top.pseudo_inputs
    stats = vae.encoder(x)[:, :4]
    torch.testing.assert_close(vae.prior.top().component_distribution.base_dist.loc, stats[:, :2])


def test_a_variant_run_loads_through_the_registry_and_serves_evaluates_and_reports(tmp_path):
    """A trained VampPrior + planar + two-layer run: vaekit.load, `vaekit eval`, the report and the server's
    /encode, /sample, /score and /reconstruct all go through the same parts."""
    import vaekit
    from vaekit.apps.images import evaluate, report, train

    out = tmp_path / "run"
    trained = train(out, data="digits", epochs=1, hidden=(16,), latent_dim=2, prior="vamp", prior_components=5,
                    posterior="planar", stochastic_layers=2, progress=False)
    loaded = vaekit.load(out, device="cpu")
    assert {k: v.shape for k, v in loaded.vae.state_dict().items()} == {
        k: v.shape for k, v in trained.vae.state_dict().items()}
    for name, tensor in trained.vae.state_dict().items():
        assert torch.equal(tensor.cpu(), loaded.vae.state_dict()[name]), name
    result = evaluate(loaded, k=16, progress=False, limit=50)
    assert math.isfinite(result.nll) and result.nll <= result.neg_elbo + 1.0
    assert "<img" in report(loaded).read_text()
    from vaekit.apps.export import export
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="--prior vamp --posterior planar --stochastic-layers 2.*vaekit serve"):
        export(out, tmp_path / "exported", format="exported-program")
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from vaekit.apps.serve import create_app

    client = TestClient(create_app([out]), base_url="http://127.0.0.1")
    x = [[0.0, 1.0] * 32] * 3
    encoded = client.post("/encode", json={"model": "run", "x": x}).json()
    assert len(encoded["loc"]) == 3 and len(encoded["loc"][0]) == 4 and len(encoded["scale"][0]) == 4
    for path, body in [("/sample", {"model": "run", "n": 2, "seed": 1}), ("/score", {"model": "run", "x": x}),
                       ("/reconstruct", {"model": "run", "x": x})]:
        assert client.post(path, json=body).status_code == 200, path


def test_lossless_coding_refuses_a_flow_posterior_it_cannot_code():
    pytest.importorskip("constriction")
    from vaekit.compression.bbans import check_codable
    from vaekit.errors import ConfigError

    check_codable(_model("standard_normal", "gaussian", 1))
    with pytest.raises(ConfigError, match="diagonal Gaussian posterior; this run's is Flow"):
        check_codable(_model("standard_normal", "iaf", 1))


def test_the_mixture_density_by_matrix_products_is_torchs_elementwise_one():
    from torch.distributions import Categorical, MixtureSameFamily

    torch.manual_seed(33)
    prior = MixtureOfGaussians(5, components=7)
    with torch.no_grad():
        prior.log_scale.normal_(0, 0.5)
        prior.logits.normal_()
    z = torch.randn(3, 4, 5) * 2  # (k, batch, latent)
    logits, loc, scale = prior.components()
    elementwise = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1)).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z), elementwise, atol=1e-4, rtol=1e-5)


def _vamp(latent: int = 3, components: int = 5):
    from vaekit.priors import VampPrior

    torch.manual_seed(34)
    encoder = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 2 * latent))
    return VampPrior(latent, encoder, (10,), components), encoder


@pytest.mark.parametrize("kind", ["mog", "vamp"])
def test_the_unsplit_mixture_kl_is_the_sum_of_the_split_terms_draw_by_draw_and_in_expectation(kind):
    from torch.distributions import Categorical, MixtureSameFamily

    prior = _vamp()[0] if kind == "vamp" else MixtureOfGaussians(3, components=4)
    torch.manual_seed(35)
    qz = DiagonalGaussian()(torch.randn(5, 6))
    z = qz.rsample()  # (batch, latent): one training step's draw
    whole = prior.kl_terms(qz, z, split=False)
    assert whole.shape == (5, 1)
    torch.testing.assert_close(whole[:, 0], prior.kl_terms(qz, z).sum(-1), atol=1e-4, rtol=1e-5)
    with torch.no_grad():  # both against log q - log p of torch's elementwise mixture over many draws
        logits, loc, scale = prior.components()
        reference_p = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
        many = qz.sample((200_000,))
        reference = (qz.log_prob(many) - reference_p.log_prob(many)).mean(0)  # (batch,)
        torch.testing.assert_close(prior.kl_terms(qz, many, split=False)[..., 0].mean(0), reference, atol=0.02, rtol=0)
        torch.testing.assert_close(prior.kl_terms(qz, many).sum(-1).mean(0), reference, atol=0.02, rtol=0)


def _vamp_vae(layers: int) -> VAE:
    """A toy VAE with `_vamp`'s prior, as the top of two stochastic layers for layers=2."""
    prior, encoder = _vamp()
    posterior = None
    if layers == 2:
        prior, posterior = TwoLayerPrior(prior, 8), TwoLayerPosterior(3, 8)
        encoder[-1] = nn.Linear(16, 12)  # q(z2|x) and the features of q(z1|x, z2)
        object.__setattr__(prior.top, "encoder", encoder)
    return VAE(encoder, nn.Linear(3 * layers, 10), Bernoulli((10,)), prior, posterior=posterior)


@pytest.mark.parametrize("layers", [1, 2])
def test_a_mixture_prior_step_without_free_bits_takes_the_unsplit_kl_with_the_splits_value_and_gradients(layers):
    vae = _vamp_vae(layers)
    prior = vae.prior
    x = torch.rand(8, 10).bernoulli()
    torch.manual_seed(36)
    step = vae.loss(x)
    torch.manual_seed(36)
    qz = vae.encode(x)
    z = qz.rsample()
    assert prior.kl_terms(qz, z, split=False).shape[-1] == (1 if layers == 1 else 4)  # z1's terms stay per dimension
    torch.testing.assert_close(step.kl, prior.kl_terms(qz, z).sum(-1).mean(), atol=1e-4, rtol=1e-5)
    pseudo_inputs = (prior.top if layers == 2 else prior).pseudo_inputs
    grads = []
    for split in (False, True):
        vae.zero_grad()
        torch.manual_seed(36)
        qz = vae.encode(x)
        prior.kl_terms(qz, qz.rsample(), split=split).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in [*vae.encoder.parameters(), pseudo_inputs]]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)  # the encoder's and the pseudo-inputs'


def test_a_step_against_the_standard_prior_is_that_priors_step_and_the_trainer_takes_it_only_while_warming_up():
    from vaekit.config import TrainConfig
    from vaekit.training import Trainer

    prior, encoder = _vamp()
    vae = VAE(encoder, nn.Linear(3, 10), Bernoulli((10,)), prior)
    plain = VAE(encoder, vae.decoder, vae.likelihood, StandardNormal(3))
    x = torch.rand(8, 10).bernoulli()
    for options in ({}, {"iw_samples": 3}, {"free_bits": 0.5}):
        torch.manual_seed(37)
        warm = vae.loss(x, standard_prior=True, **options)
        torch.manual_seed(37)
        torch.testing.assert_close(warm.loss, plain.loss(x, **options).loss)
    calls = []
    original = vae.loss
    vae.loss = lambda *args, **kwargs: calls.append(kwargs.get("standard_prior", False)) or original(*args, **kwargs)
    Trainer(vae, TrainConfig(epochs=3, batch_size=8, prior_warmup=1.5, progress=False, device="cpu")).fit(x.repeat(4, 1))
    assert calls == [True] * 6 + [False] * 6  # 4 steps an epoch: the first 1.5 epochs' 6 steps


def test_a_new_runs_vamp_prior_starts_at_distinct_training_examples(tmp_path):
    from vaekit.apps import images

    run = images.train(tmp_path / "run", data="digits", hidden=(16,), latent_dim=2, prior="vamp", prior_components=5,
                       epochs=1, lr=1e-9, progress=False)
    u = run.vae.prior.pseudo_inputs.detach().flatten(1)  # (5, 64)
    train = torch.as_tensor(images.run_splits(run).x_train).flatten(1)
    assert len(torch.unique(u, dim=0)) == 5
    assert all(torch.isclose(train, row, atol=1e-5).all(1).any() for row in u)  # each one of the examples


@pytest.mark.parametrize("layers", [1, 2])
def test_an_importance_weighted_step_encodes_the_pseudo_inputs_once_and_the_next_step_afresh(layers):
    vae = _vamp_vae(layers)
    prior, encoder = vae.prior, vae.encoder
    calls = []
    encoder.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    x = torch.rand(8, 10).bernoulli()
    vae.loss(x, iw_samples=4).loss.backward()
    assert calls == [8, 5]  # the batch, then the 5 pseudo-inputs once for both log p(z) and the reported KL
    with torch.no_grad():
        encoder[0].weight.add_(1.0)
    vae.loss(x, iw_samples=4)
    vamp = prior.top if layers == 2 else prior
    assert vamp.encoded is None and calls == [8, 5, 8, 5]  # nothing kept from one step to the next


def test_the_mixture_log_density_under_bf16_autocast_is_the_fp32_one():
    """Components far from the origin with small scales: bf16 products |z|^2 / s^2 ~ 1e4 per dimension would cancel
    to errors of hundreds of nats, where the true quadratic term is ~1 per dimension."""
    prior = MixtureOfGaussians(8, components=3)
    with torch.no_grad():
        prior.loc.fill_(10.0)
        prior.log_scale.fill_(math.log(0.1))
    z = prior.loc[:2] + 0.1 * torch.randn(2, 8)
    exact = Independent(Normal(prior.loc[0], prior.log_scale[0].exp()), 1).log_prob(z)  # all components equal
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = prior.log_prob(z)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, atol=0.01, rtol=0)  # fp32 rounding of the expansion: ~1e-3


def test_an_iaf_log_determinant_under_bf16_autocast_is_the_fp32_one():
    """In bf16 the 50 log-gates of this step sum to an error of 0.26 nat; the step runs in fp32 under autocast."""
    step = _randomized(IAFStep(50, 64, context_dim=50)).float()
    torch.manual_seed(34)
    z, h = torch.randn(16, 50), torch.randn(16, 50)
    _, exact = step(z, h)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, mixed = step(z, h)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, atol=1e-4, rtol=0)
