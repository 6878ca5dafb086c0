"""The total-correlation term of beta-TCVAE and FactorVAE: its estimators (minibatch stratified sampling and a
discriminator) against Gaussians of known total correlation, and the objective that adds it."""

import math

import pytest
import torch

from vaekit.errors import ConfigError
from vaekit.objectives import TCDiscriminator, permute_dims, stratified_log_weights, total_correlation
from vaekit.posteriors import DiagonalNormal


def test_stratified_weights_sum_to_one():
    w = stratified_log_weights(8, 1000).double().exp()
    torch.testing.assert_close(w.sum(1), torch.ones(8, dtype=torch.float64))
    assert w[3, 3] == pytest.approx(1 / 1000) and w[3, 4] == pytest.approx((1000 - 7) / (1000 * 7))


def _estimate(dims: int, rho: float, batch: int, reps: int, sigma: float = 0.5) -> tuple[float, float]:
    """(estimated, true) total correlation of q(z) when the posteriors' means come from N(0, S) with unit variances
    and correlation rho, each posterior N(mean, sigma^2 I): q(z) = N(0, S + sigma^2 I), whose TC is
    (sum_d log Sigma_dd - log det Sigma) / 2; a dataset too large to matter (N = 1e9)."""
    generator = torch.Generator().manual_seed(0)
    cov = torch.full((dims, dims), rho) + (1 - rho) * torch.eye(dims)
    total = cov + sigma ** 2 * torch.eye(dims)
    true = 0.5 * (torch.log(torch.diagonal(total)).sum() - torch.logdet(total))
    chol = torch.linalg.cholesky(cov)
    estimates = []
    for _ in range(reps):
        loc = torch.randn(batch, dims, generator=generator) @ chol.T  # (batch, dims)
        qz = DiagonalNormal(loc, torch.full_like(loc, 2 * math.log(sigma)))
        z = loc + sigma * torch.randn(batch, dims, generator=generator)
        estimates.append(total_correlation(qz, z, 10 ** 9).mean())
    return float(torch.stack(estimates).mean()), float(true)


@pytest.mark.parametrize("dims, rho, batch, reps", [(2, 0.8, 256, 60), (2, 0.0, 256, 60), (4, 0.5, 1024, 12)])
def test_total_correlation_bias_is_below_five_hundredths_of_a_nat(dims, rho, batch, reps):
    # measured: 2-d rho 0.8 at batch 256: -0.006 nats (true 0.263); 4-d rho 0.5 at batch 1024: -0.037 (true 0.372);
    # the bias (the log of a batch mean underestimates log q(z)) grows with the dimension and falls with the batch
    estimate, true = _estimate(dims, rho, batch, reps)
    assert abs(estimate - true) < 0.05


def test_loss_adds_the_weighted_total_correlation():
    from vaekit.config import ModelConfig
    from vaekit.vae import build_vae

    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="mlp", hidden=(8,), latent_dim=3, data_shape=(6,)))
    x = torch.rand(16, 6)
    torch.manual_seed(1)
    plain = vae.loss(x)
    torch.manual_seed(1)
    weighted = vae.loss(x, tc_weight=4.0, dataset_size=1000)
    torch.manual_seed(1)
    qz = vae.encode(x)
    tc = total_correlation(qz, qz.rsample(), 1000).mean()
    torch.testing.assert_close(weighted.loss, plain.loss + 4.0 * tc)
    with pytest.raises(ConfigError, match="dataset_size"):
        vae.loss(x, tc_weight=1.0)
    with pytest.raises(ConfigError, match="batch-size 2"):
        total_correlation(vae.encode(x[:1]), torch.zeros(1, 3), 10)


def test_training_with_a_tc_weight(tmp_path):
    from vaekit.apps import images

    run = images.train(tmp_path / "run", data="shapes:200", network="mlp", hidden=(16,), latent_dim=3, epochs=1,
                       tc_weight=5.0, batch_size=32, progress=False)
    assert math.isfinite(run.history[-1]["loss"])
    with pytest.raises(ConfigError, match="iw-samples"):
        images.train(tmp_path / "iw", data="shapes:200", tc_weight=1.0, iw_samples=2)


def test_permuting_dimensions_keeps_each_marginal_and_makes_them_independent():
    torch.manual_seed(0)
    bit = torch.randint(0, 2, (20_000, 1)).float()
    z = torch.cat([bit, bit, 1 - bit], dim=1)  # (batch, 3): the dimensions fully dependent
    permuted = permute_dims(z)
    for d in range(3):  # each column a permutation of its own values
        assert torch.equal(permuted[:, d].sort().values, z[:, d].sort().values)
    # joint frequencies now the product of the marginals' (0.5 x 0.5); 4 standard errors of a share of 20,000 draws
    both = (permuted[:, 0] * permuted[:, 1]).mean()
    assert abs(float(both) - 0.25) < 0.013 and abs(float((permuted[:, 0] * permuted[:, 2]).mean()) - 0.25) < 0.013
    assert not torch.equal(permuted[:, 0], permuted[:, 1])  # each column its own permutation


def _gaussian(dims: int, rho: float):
    """Draws of N(0, S) with unit variances and correlation rho, and its total correlation -log det S / 2 (nats)."""
    cov = torch.full((dims, dims), rho) + (1 - rho) * torch.eye(dims)
    chol = torch.linalg.cholesky(cov)
    return (lambda n: torch.randn(n, dims) @ chol.T), float(-0.5 * torch.logdet(cov))


@pytest.mark.parametrize("dims, rho", [(2, 0.8), (4, 0.5), (2, 0.0)])
def test_a_trained_discriminator_estimates_a_known_total_correlation(dims, rho):
    # 400 steps of batch 512 at rate 3e-3 (the paper's 1e-4 needs many more steps), a 2 x 64 network; measured at
    # seeds 0-2: errors -0.03..0.01 nats (2-d, true 0.511), -0.09..0.07 (4-d, true 0.582), < 0.005 (independent)
    torch.manual_seed(0)
    draw, true = _gaussian(dims, rho)
    discriminator = TCDiscriminator(dims, hidden=(64, 64))
    optimizer = discriminator.optimizer(lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steps this small run ~5x slower on two threads of a busy machine
    try:
        for _ in range(400):
            optimizer.zero_grad()
            discriminator.loss(draw(512)).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        estimate = float(discriminator(draw(50_000)).mean())
    assert abs(estimate - true) < 0.1


def test_loss_adds_the_discriminators_total_correlation():
    from vaekit.config import ModelConfig
    from vaekit.vae import build_vae

    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="mlp", hidden=(8,), latent_dim=3, data_shape=(6,)))
    discriminator = TCDiscriminator(3, hidden=(4,))
    x = torch.rand(16, 6)
    torch.manual_seed(1)
    plain = vae.loss(x)
    torch.manual_seed(1)
    weighted = vae.loss(x, tc_weight=4.0, tc_discriminator=discriminator)  # no dataset_size needed
    torch.manual_seed(1)
    z = vae.encode(x).rsample()
    torch.testing.assert_close(weighted.loss, plain.loss + 4.0 * discriminator(z).mean())
    torch.testing.assert_close(weighted.z, z)
    assert not weighted.z.requires_grad and plain.z is None


def test_the_models_backward_reaches_the_encoder_as_before_and_leaves_the_discriminators_grad_alone(monkeypatch):
    from vaekit.config import ModelConfig
    from vaekit.vae import build_vae

    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="mlp", hidden=(8,), latent_dim=3, data_shape=(6,)))
    discriminator = TCDiscriminator(3, hidden=(4,))
    x = torch.rand(16, 6)

    def grads() -> list[torch.Tensor]:
        vae.zero_grad(set_to_none=True)
        discriminator.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        vae.loss(x, tc_weight=4.0, tc_discriminator=discriminator).loss.backward()
        return [p.grad.clone() for p in vae.encoder.parameters()]

    encoder = grads()
    assert all(p.grad is None for p in discriminator.parameters())
    with monkeypatch.context() as patch:
        patch.setattr(TCDiscriminator, "estimate", TCDiscriminator.forward)  # the critic called as a plain module
        reference = grads()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())
    for got, want in zip(encoder, reference):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in encoder)


def test_vaekit_train_with_the_discriminator_estimator(tmp_path, capsys):
    from vaekit.checkpoint import STATE_DIR, STATE_TENSORS, load_tensors, read_checkpoint
    from vaekit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", "shapes:200", "--network", "mlp", "--hidden", "16", "--latent-dim", "3",
                 "--epochs", "1", "--batch-size", "32", "--tc-weight", "5", "--tc-estimator", "discriminator",
                 "--out", str(run)]) == 0
    tensors = load_tensors(read_checkpoint(run / STATE_DIR).files[STATE_TENSORS])
    assert tensors["tc_discriminator.net.0.weight"].shape == (256, 3)
    assert any(name.startswith("tc_optimizer.") for name in tensors)
    from safetensors.torch import load_file

    assert not any(name.startswith("tc_") for name in load_file(str(run / "model.safetensors")))  # training only


@pytest.mark.parametrize("options, message", [
    (dict(tc_estimator="discriminator"), "add --tc-weight"),
    (dict(tc_estimator="discriminator", tc_weight=1.0, compile=True), "drop --compile"),
    (dict(tc_estimator="bogus", tc_weight=1.0), "mss, discriminator"),
])
def test_unsupported_discriminator_combinations_are_config_errors(options, message):
    from vaekit.config import TrainConfig

    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options).validate()
