"""Contracts every network/likelihood pair must meet, on every data shape we support."""

import pytest
import torch

from vaekit.config import ModelConfig
from vaekit.errors import ConfigError, DataError
from vaekit.likelihoods import LIKELIHOODS, build_likelihood
from vaekit.vae import build_vae

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8), (1, 13, 17), (12,)]
SCALES = {"bernoulli": ["learned"], "gaussian": ["learned", "decoder", "0.2"],
          "discretized_logistic": ["learned", "decoder"]}
CASES = [(shape, network, likelihood, scale) for shape in SHAPES for network in ("mlp", "conv")
         for likelihood in LIKELIHOODS for scale in SCALES[likelihood] if network == "mlp" or len(shape) == 3]


@pytest.mark.parametrize("shape,network,likelihood,scale", CASES)
def test_every_network_likelihood_pair(shape, network, likelihood, scale):
    torch.manual_seed(0)
    config = ModelConfig(network=network, likelihood=likelihood, gaussian_scale=scale, latent_dim=3,
                         hidden=(16,), conv_channels=(4, 8), data_shape=shape)
    vae = build_vae(config)
    x = torch.rand(5, *shape)
    elbo = vae.elbo(x)
    assert elbo.reconstruction.shape == elbo.kl.shape == (5,)
    assert torch.isfinite(elbo.total()).all() and (elbo.kl >= 0).all()
    loss = vae.loss(x, iw_samples=2)
    loss.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.parameters() if p.requires_grad)
    assert vae.log_likelihood(x, k=4).shape == (5,)
    assert vae.sample(7).shape == (7, *shape)
    assert vae.reconstruct(x).shape == (5, *shape)
    assert vae.encode(x).mean.shape == (5, 3)


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_inputs_follow_the_model_to_its_device(network):
    """A model on another device takes the CPU tensors a user holds. Here PyTorch's 'meta' device (shapes
    only) stands in for a GPU, which CI lacks; tests/test_cuda.py checks the values on one."""
    vae = build_vae(ModelConfig(data_shape=(1, 8, 8), network=network, hidden=(16,), conv_channels=(4, 8),
                                latent_dim=3)).to("meta")
    x = torch.rand(5, 1, 8, 8)
    assert vae.elbo(x).total().device.type == "meta" and vae.loss(x, iw_samples=2).loss.device.type == "meta"
    assert vae.reconstruct(x).device.type == "meta" and vae.encode(x).mean.device.type == "meta"
    assert vae.decode_mean(torch.randn(5, 3)).device.type == "meta"
    assert vae.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 8, 8)


def test_keras_conv_preset_reproduces_the_tutorial_layers():
    from vaekit.config import preset

    model, _, _ = preset("keras-conv")
    vae = build_vae(ModelConfig(**{**vars(model), "data_shape": (1, 28, 28)}))
    convs = [m for m in vae.encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (32, (3, 3), (2, 2), (0, 0)), (64, (3, 3), (2, 2), (0, 0))]
    assert vae.encoder.head.out_features == 2 * 2  # mean and log-variance of a 2-d latent
    assert vae.decoder.head[0].out_features == 7 * 7 * 32
    deconvs = [m for m in vae.decoder.deconvs if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(d.out_channels, d.stride) for d in deconvs] == [(64, (2, 2)), (32, (2, 2)), (1, (1, 1))]


def test_bernoulli_rejects_data_outside_unit_interval():
    with pytest.raises(DataError, match="use --likelihood gaussian"):
        build_likelihood("bernoulli", (3,)).check_data(torch.tensor([[0.0, 2.0, 0.5]]))


@pytest.mark.parametrize("field,value", [("latent_dim", 0), ("hidden", (0,)), ("likelihood", "poisson"),
                                         ("network", "transformer"), ("activation", "swish")])
def test_invalid_model_options_are_config_errors(field, value):
    config = ModelConfig(**{field: value, "data_shape": (1, 8, 8)})
    with pytest.raises(ConfigError):
        build_vae(config)


def test_conv_on_flat_data_says_use_mlp():
    with pytest.raises(ConfigError, match="--network mlp"):
        build_vae(ModelConfig(network="conv", data_shape=(10,)))


def test_conv_decoder_reports_its_activation_size_so_iwae_chunks_stay_small():
    vae = build_vae(ModelConfig(network="conv", data_shape=(1, 28, 28)))
    # 7x7x32 head, 14x14x64 and 28x28x32 transposed convs (each with its ReLU), 28x28x1 logits
    assert vae.decoded_elements() == 2 * 7 * 7 * 32 + 2 * 14 * 14 * 64 + 2 * 28 * 28 * 32 + 28 * 28
    assert build_vae(ModelConfig(network="mlp", data_shape=(1, 28, 28))).decoded_elements() == 784
