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


def test_convolutions_get_channels_last_on_cpu_only_and_compute_the_same():
    from vaekit.networks import prefer_fast_layout

    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="conv", data_shape=(1, 28, 28)))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        before = vae.decoder(vae.encoder(x)[:, :vae.latent_dim])
    prefer_fast_layout(vae, "cuda")  # only the device type is read: other devices keep the default layout
    assert all(p.is_contiguous() for p in vae.parameters())
    prefer_fast_layout(vae, "cpu")
    conv_weights = [m.weight for m in vae.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert conv_weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    with torch.no_grad():
        torch.testing.assert_close(vae.decoder(vae.encoder(x)[:, :vae.latent_dim]), before, atol=1e-5, rtol=1e-5)


def _onednn_paths(monkeypatch) -> None:
    """vaekit's oneDNN paths taken on this CPU whatever its instruction set (oneDNN runs on any x86 CPU)."""
    from vaekit import networks

    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        pytest.skip("this torch has no oneDNN ops: vaekit uses torch's kernels")
    monkeypatch.setattr(networks, "ONEDNN_LINEAR", True)


@pytest.mark.parametrize("stride, output_padding, relu, layout", [
    (2, 1, False, torch.contiguous_format), (1, 0, False, torch.contiguous_format),
    (2, 1, True, torch.contiguous_format), (2, 1, True, torch.channels_last)])  # the last: the fused oneDNN kernel
def test_the_decoders_transposed_convolution_is_torchs_with_its_bias_gradient_as_a_sum(
        stride, output_padding, relu, layout, monkeypatch):
    from vaekit import fused, networks

    _onednn_paths(monkeypatch)
    torch.manual_seed(0)
    ours = networks.ConvTranspose2d(6, 4, 3, stride=stride, padding=1, output_padding=output_padding, relu=relu)
    torchs = torch.nn.ConvTranspose2d(6, 4, 3, stride=stride, padding=1, output_padding=output_padding)
    torchs.load_state_dict(ours.state_dict())  # the same parameter names: old checkpoints load unchanged
    ours.to(memory_format=layout)
    x = torch.randn(3, 6, 7, 7, requires_grad=True)
    assert ("relu=True" in repr(ours)) == relu
    reference = (lambda out: out.relu()) if relu else (lambda out: out)
    outputs = [ours(x), reference(torchs(x))]
    torch.testing.assert_close(*outputs)
    grads = [torch.autograd.grad(out.square().sum(), [x, m.weight, m.bias]) for out, m in zip(outputs, (ours, torchs))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if relu and layout == torch.channels_last:
        assert isinstance(outputs[0].grad_fn, fused.ConvTranspose2dReLUFunction._backward_cls)
        loss = torch.compile(lambda x: ours(x).square().sum())(x)
        torch.testing.assert_close(loss, outputs[1].square().sum())
        for a, b in zip(torch.autograd.grad(loss, [x, ours.weight, ours.bias]), grads[1]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        with torch.inference_mode():
            torch.testing.assert_close(ours(x), outputs[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the bias joins in the output's precision
        assert ours(x).dtype == torch.bfloat16


@pytest.mark.parametrize("out_channels, kernel, padding, size", [(1, 3, 1, (28, 28)), (3, 3, 0, (5, 9)),
                                                                  (2, (5, 3), (2, 0), (8, 6)), (1, 4, 3, (6, 7))])
def test_the_stride_one_transposed_convolution_to_few_channels_is_torchs_through_its_taps(
        out_channels, kernel, padding, size, monkeypatch):
    from vaekit import fused, networks

    _onednn_paths(monkeypatch)
    taken, product = [], fused._onednn_linear
    monkeypatch.setattr(fused, "_onednn_linear", lambda *args: taken.append(1) or product(*args))
    torch.manual_seed(0)
    ours = networks.ConvTranspose2d(6, out_channels, kernel, padding=padding)
    torchs = torch.nn.ConvTranspose2d(6, out_channels, kernel, padding=padding)
    torchs.load_state_dict(ours.state_dict())
    ours.to(memory_format=torch.channels_last)  # as the Trainer lays it out
    x = torch.randn(4, 6, *size).requires_grad_()  # its layout follows the layer's
    outputs = [module(x) for module in (ours, torchs)]
    assert taken, "the taps path was not taken"
    torch.testing.assert_close(*outputs)
    assert outputs[0].is_contiguous(memory_format=torch.channels_last)
    grads = [torch.autograd.grad(out.square().sum(), [x, m.weight, m.bias]) for out, m in zip(outputs, (ours, torchs))]
    for a, b in zip(*grads):  # sums over thousands of products, in another order
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    if size != (28, 28):
        return  # compiling once (the conv design's last layer) is enough, and slow
    loss = torch.compile(lambda x: ours(x).square().sum())(x)
    torch.testing.assert_close(loss, outputs[1].square().sum())
    for a, b in zip(torch.autograd.grad(loss, [x, ours.weight, ours.bias]), grads[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", [(5, 256), (3, 4, 256), (0, 256), (256,)])  # rows, (k, batch) rows, none, a vector
def test_the_linear_layer_is_torchs_in_value_and_gradients_on_every_path(shape, monkeypatch):
    from vaekit import networks

    torch.manual_seed(0)
    ours, torchs = networks.Linear(256, 160), torch.nn.Linear(256, 160)
    torchs.load_state_dict(ours.state_dict())  # the same parameter names: old checkpoints load unchanged
    x = torch.randn(*shape, requires_grad=True)
    expected = torchs(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, torchs.weight, torchs.bias])
    for onednn in (True, False):  # the oneDNN path where this CPU takes it, and F.linear
        monkeypatch.setattr(networks, "ONEDNN_LINEAR", onednn and networks._onednn_linear_available())
        out = ours(x)
        torch.testing.assert_close(out, expected)
        for a, b in zip(torch.autograd.grad(out.square().sum(), [x, ours.weight, ours.bias]), expected_grads):
            torch.testing.assert_close(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ours(x).dtype == torch.bfloat16


def test_the_oneDNN_linear_compiles_and_trains_as_eager():
    from vaekit import networks

    if not networks.ONEDNN_LINEAR:
        pytest.skip("this CPU has no AVX-512 or this torch no oneDNN linear: vaekit uses F.linear")
    torch.manual_seed(0)
    layer = networks.Linear(200, 130)
    x = torch.randn(8, 200)
    compiled = torch.compile(lambda x: layer(x).relu().square().sum())
    eager = layer(x).relu().square().sum()
    (eager_grad,) = torch.autograd.grad(eager, [layer.weight])
    loss = compiled(x)
    (compiled_grad,) = torch.autograd.grad(loss, [layer.weight])
    torch.testing.assert_close(loss, eager)
    torch.testing.assert_close(compiled_grad, eager_grad)
