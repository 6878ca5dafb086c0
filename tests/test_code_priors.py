"""The learned prior over a quantizer's codes (issue 43): causality, learning a known code distribution, ancestral
draws, and as a run's prior: `train-prior` saved and loaded, eval's bits/dim the sum of its parts, the warnings."""

import math
import warnings

import pytest
import torch

from vaekit.apps import images
from vaekit.bottlenecks import FiniteScalarQuantizer, UniformCodes, VectorQuantizer
from vaekit.code_priors import CausalCodes, LearnedCodes
from vaekit.config import ModelConfig
from vaekit.data.splits import model_data
from vaekit.errors import ConfigError
from vaekit.vae import build_vae

N_CODES, K = 6, 8


def _toy_codes(n: int, generator: torch.Generator) -> torch.Tensor:
    """c_0 uniform over {0, 2, 4, 6}, then c_i = c_{i-1} + 1 mod K: 2 bits per sequence in all."""
    start = 2 * torch.randint(4, (n, 1), generator=generator)
    return (start + torch.arange(N_CODES)) % K  # (n, N_CODES)


def _prior(layers: int = 2) -> LearnedCodes:
    torch.manual_seed(0)
    return LearnedCodes(VectorQuantizer(N_CODES * 2, K, code_dim=2), CausalCodes(N_CODES, K, 16, layers, heads=2))


def test_position_i_reads_only_the_codes_before_it():
    network = _prior().network.eval()
    codes = torch.randint(K, (5, N_CODES))
    logits = network(codes)
    for i in range(N_CODES):
        changed = codes.clone()
        changed[:, i:] = (changed[:, i:] + 1 + torch.randint(K - 1, changed[:, i:].shape)) % K  # every code >= i
        torch.testing.assert_close(network(changed)[:, : i + 1], logits[:, : i + 1])  # positions <= i unmoved
        if i + 1 < N_CODES:
            assert not torch.allclose(network(changed)[:, i + 1], logits[:, i + 1])  # position i + 1 reads code i


def test_it_learns_a_deterministic_code_distribution_far_below_uniform_and_draws_from_it():
    prior = _prior(layers=1)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(prior.network.parameters(), lr=1e-2)
    for _ in range(80):
        loss = -prior.log_prob_codes(_toy_codes(64, generator)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prior.network.eval()
    nll = float(-prior.log_prob_codes(_toy_codes(512, generator)).mean())
    assert nll < 0.15 * N_CODES * math.log(K)  # uniform: 12.5 nats; the truth: log 4 = 1.39 nats
    assert nll < math.log(4) + 0.3
    draws = prior.sample_codes(200, torch.Generator().manual_seed(1))
    follows = (draws[:, 1:] == (draws[:, :-1] + 1) % K).all(1) & (draws[:, 0] % 2 == 0)
    assert follows.float().mean() > 0.9


def test_log_prob_of_latents_reads_their_codes_and_the_kl_of_a_point_mass_is_minus_log_p():
    prior = _prior()
    codes = torch.randint(K, (4, N_CODES))
    quantizer = prior.quantizer
    z = quantizer.lookup(codes)
    assert torch.equal(quantizer.codes_of(z), codes)
    torch.testing.assert_close(prior.log_prob(z), prior.log_prob_codes(codes))
    qz = quantizer.eval()(z)
    torch.testing.assert_close(prior.kl(qz), -prior.log_prob_codes(codes))
    assert prior.sample(3, torch.Generator().manual_seed(0)).shape == (3, N_CODES * 2)
    fsq = FiniteScalarQuantizer(8, (8, 5, 5, 5))
    every = torch.arange(1000).view(-1, 2)
    assert torch.equal(fsq.codes_of(fsq.lookup(every)), every)
    with pytest.raises(ConfigError, match="does not fit"):
        LearnedCodes(fsq, CausalCodes(N_CODES, K, 8, 1, 2))


def test_the_network_moves_with_the_vae_and_stays_out_of_its_weights():
    vae = build_vae(ModelConfig(network="mlp", data_shape=(1, 4, 4), hidden=(8,), latent_dim=N_CODES * 2, code_dim=2,
                                codebook_size=K, bottleneck="vq"))
    keys, n_parameters = list(vae.state_dict()), len(list(vae.parameters()))
    torch.manual_seed(0)
    vae.prior = LearnedCodes(vae.posterior, CausalCodes(N_CODES, K, 16, 1, heads=2).eval())
    assert list(vae.state_dict()) == keys and len(list(vae.parameters())) == n_parameters  # the weights file's hash
    codes = torch.randint(K, (3, N_CODES))
    log_p = vae.prior.log_prob_codes(codes)
    vae.double()
    network = vae.prior.network
    assert {t.dtype for t in [*network.parameters(), network.mask]} == {torch.float64}
    assert vae.prior.log_prob_codes(codes).dtype == torch.float64
    torch.testing.assert_close(vae.prior.log_prob_codes(codes).float(), log_p)
    vae.to(torch.float32)
    assert {t.dtype for t in [*network.parameters(), network.mask]} == {torch.float32}
    torch.testing.assert_close(vae.prior.log_prob_codes(codes), log_p)


@pytest.fixture
def vq_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))  # digits is built in
    return images.train(tmp_path / "vq", data="digits", network="mlp", hidden=(16,), latent_dim=8, code_dim=2,
                        codebook_size=16, bottleneck="vq", epochs=1, progress=False)


def test_train_prior_saves_a_prior_that_loads_as_the_runs_and_eval_adds_its_bits(vq_run):
    with pytest.warns(UserWarning, match="train-prior"):
        images.sample(vq_run, n=4)  # uniform codes until a prior is trained
    fit = images.train_prior(vq_run, epochs=2, width=16, heads=2, progress=False)
    assert len(fit.history) == 2 and fit.val_bits_per_code < fit.uniform_bits_per_code == 4.0
    assert (vq_run.path / "code_prior" / "model.safetensors").is_file()
    run = images.load_run(vq_run.path)
    assert isinstance(run.vae.prior, LearnedCodes)
    x = model_data(run.vae, run.data, images.run_splits(run).x_test[:50], None, run.train.seed)  # as eval reads it
    codes = run.vae.encode(x).codes
    torch.testing.assert_close(run.vae.prior.log_prob_codes(codes), fit.prior.log_prob_codes(codes.to("cpu")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images.sample(run, n=4)  # drawn from the prior: no warning

    result = images.evaluate(run, k=3, limit=50, progress=False)
    code_nats = float(-run.vae.prior.log_prob_codes(codes).mean())
    assert result.kl == pytest.approx(code_nats, rel=1e-5)
    with torch.no_grad():
        decoder_nats = float(-run.vae.likelihood.log_prob(run.vae.decoder(run.vae.encode(x).mean), x).mean())
    assert -result.reconstruction == pytest.approx(decoder_nats, rel=1e-5)
    assert result.nll == pytest.approx(code_nats + decoder_nats, rel=1e-5)  # a point mass: the bound is exact
    bits = (code_nats + decoder_nats) / 64 / math.log(2) + run.vae.likelihood.bits_per_dim_offset() / math.log(2)
    assert result.bits_per_dim == pytest.approx(bits, rel=1e-5)


def test_a_prior_of_another_model_is_left_out_and_a_gaussian_run_has_none(vq_run, tmp_path):
    images.train_prior(vq_run, epochs=1, width=16, heads=2, progress=False)
    images.train(vq_run.path, epochs=2, resume=True)  # its weights change
    with pytest.warns(UserWarning, match="train it again"):
        run = images.load_run(vq_run.path)
    assert isinstance(run.vae.prior, UniformCodes)
    gaussian = images.train(tmp_path / "g", data="digits", network="mlp", hidden=(8,), latent_dim=2, epochs=1,
                            progress=False)
    with pytest.raises(ConfigError, match="--bottleneck vq or fsq"):
        images.train_prior(gaussian, epochs=1)
    with pytest.raises(ConfigError, match="multiple of --heads"):
        images.train_prior(vq_run, width=10, heads=4)
