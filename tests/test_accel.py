"""vaekit.accel: what accelerate() changes (layers, layout) computes what the plain networks compute, keeps their
state_dict, runs only where asked, and nothing of it happens at import; its fast layers against torch's."""

import copy
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from vaekit.accel import accelerate, onednn
from vaekit.accel.layers import OneDNNConvTranspose2d, OneDNNLinear, Upsampling
from vaekit.config import ModelConfig, TrainConfig
from vaekit.networks import build_networks
from vaekit.vae import build_vae

_IMPORT_SCRIPT = """
import json, sys, torch

def state():
    with open("/proc/self/maps") as maps:
        c_loaded = "vaekit_kernels" in maps.read()
    return {"ops": hasattr(torch.ops.vaekit, "onednn_linear") or hasattr(torch.ops.vaekit, "onednn_conv_transpose_relu"),
            "c": c_loaded, "builder": "torch.utils.cpp_extension" in sys.modules, "accel": "vaekit.accel" in sys.modules}

import vaekit.networks, vaekit.vae
from vaekit.config import ModelConfig
vae = vaekit.vae.build_vae(ModelConfig(network="conv", data_shape=(1, 8, 8), conv_channels=(16, 32)))
vae.loss(torch.rand(2, 1, 8, 8))
core = state()
import vaekit.training  # which imports vaekit.accel
print(json.dumps([core, state()]))
"""


def test_importing_the_core_registers_no_op_and_loads_no_c():
    out = subprocess.run([sys.executable, "-c", _IMPORT_SCRIPT], capture_output=True, text=True, check=True)
    core, with_accel = json.loads(out.stdout)
    assert core == {"ops": False, "c": False, "builder": False, "accel": False}
    assert with_accel == {"ops": False, "c": False, "builder": False, "accel": True}  # accelerate() does those


def _types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules()]


def _inputs(model: nn.Module, batch: int = 5) -> tuple:
    """What the encoder and the decoder of a VAE take, or of (encoder, decoder) built with a condition_shape."""
    if isinstance(model, nn.ModuleList):
        return (torch.rand(batch, 1, 12, 12), torch.rand(batch, 3)), (torch.randn(batch, 4), torch.rand(batch, 3))
    return (torch.rand(batch, *model.likelihood.data_shape),), (torch.randn(batch, model.latent_dim),)


MODELS = {"mlp": lambda: build_vae(ModelConfig(network="mlp", data_shape=(1, 28, 28), latent_dim=8)),
          "conv": lambda: build_vae(ModelConfig(network="conv", data_shape=(1, 28, 28), latent_dim=8)),
          "conv, tanh": lambda: build_vae(ModelConfig(network="conv", data_shape=(3, 8, 8), latent_dim=8,
                                                      conv_channels=(16, 32), activation="tanh")),
          "conv, conditional": lambda: nn.ModuleList(build_networks("conv", (1, 12, 12), 4, 1, conv_channels=(16, 32),
                                                                    condition_shape=(3,)))}


@pytest.mark.parametrize("name", MODELS)
def test_an_accelerated_model_keeps_its_state_dict_and_computes_what_the_plain_one_does(name, onednn_paths):
    torch.manual_seed(0)
    plain = MODELS[name]()
    fast = accelerate(copy.deepcopy(plain), "cpu")
    assert _types(fast) != _types(plain)  # some layer was swapped
    assert fast.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=0, atol=0)
    plain.load_state_dict(fast.state_dict())  # and back
    types = _types(fast)
    assert _types(accelerate(fast, "cpu")) == types  # a second call changes nothing
    networks = (lambda model: model[0], lambda model: model[1]) if isinstance(plain, nn.ModuleList) else (
        lambda model: model.encoder, lambda model: model.decoder)
    for network, inputs in zip(networks, _inputs(plain)):
        ours, torchs = network(fast)(*inputs), network(plain)(*inputs)
        torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-5)
        names = [key for key, _ in network(plain).named_parameters()]
        our_grads = torch.autograd.grad(ours.square().sum(), list(network(fast).parameters()))
        torch_grads = torch.autograd.grad(torchs.square().sum(), list(network(plain).parameters()))
        for key, a, b in zip(names, our_grads, torch_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=lambda m: f"{key}: {m}")


def test_a_model_trained_accelerated_loads_into_plain_networks(onednn_paths, tmp_path):
    from vaekit.checkpoint import MODEL_FILE, load_weights
    from vaekit.training import Trainer

    torch.manual_seed(0)
    config = ModelConfig(network="conv", data_shape=(1, 8, 8), conv_channels=(16, 32), latent_dim=3)
    vae = build_vae(config)
    Trainer(vae, TrainConfig(epochs=1, batch_size=16, device="cpu", progress=False), tmp_path).fit(torch.rand(32, 1, 8, 8))
    assert isinstance(vae.decoder.deconvs, Upsampling)  # the Trainer accelerated it, in place
    plain = build_vae(config)
    load_weights(plain, tmp_path / MODEL_FILE)
    z = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(plain.decoder(z), vae.decoder(z), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device, switch", [("meta", None), ("cuda", None), ("cpu", "VAEKIT_ACCEL")])
def test_accelerate_is_a_no_op_off_the_cpu_or_switched_off(device, switch, onednn_paths, monkeypatch):
    if switch:
        monkeypatch.setenv(switch, "0")
    vae = build_vae(ModelConfig(network="conv", data_shape=(1, 28, 28), hidden=(256,)))
    types, strides = _types(vae), [p.stride() for p in vae.parameters()]
    assert accelerate(vae, device) is vae
    assert _types(vae) == types and [p.stride() for p in vae.parameters()] == strides


def test_convolutions_get_channels_last_on_cpu_only_and_compute_the_same(monkeypatch):
    monkeypatch.setenv("VAEKIT_ONEDNN_LINEAR", "0")  # the layout alone: torch's layers stay
    assert not onednn.available()
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="conv", data_shape=(1, 28, 28)))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        before = vae.decoder(vae.encoder(x)[:, :vae.latent_dim])
    types = _types(vae)
    accelerate(vae, "cpu")
    assert _types(vae) == types
    conv_weights = [m.weight for m in vae.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert conv_weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    with torch.no_grad():
        torch.testing.assert_close(vae.decoder(vae.encoder(x)[:, :vae.latent_dim]), before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride, output_padding, relu, layout", [
    (2, 1, False, torch.contiguous_format), (1, 0, False, torch.contiguous_format),
    (2, 1, True, torch.contiguous_format), (2, 1, True, torch.channels_last)])  # the last: the fused oneDNN kernel
def test_the_decoders_transposed_convolution_is_torchs_with_its_bias_gradient_as_a_sum(
        stride, output_padding, relu, layout, onednn_paths):
    torch.manual_seed(0)
    ours = OneDNNConvTranspose2d(6, 4, 3, stride=stride, padding=1, output_padding=output_padding)
    ours.relu = relu  # as accelerate sets it where a ReLU followed the layer
    torchs = nn.ConvTranspose2d(6, 4, 3, stride=stride, padding=1, output_padding=output_padding)
    torchs.load_state_dict(ours.state_dict())  # the same parameter names: checkpoints load unchanged
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
        assert isinstance(outputs[0].grad_fn, onednn.ConvTranspose2dReLUFunction._backward_cls)
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
        out_channels, kernel, padding, size, onednn_paths, monkeypatch):
    taken, product = [], onednn.onednn_linear
    monkeypatch.setattr(onednn, "onednn_linear", lambda *args: taken.append(1) or product(*args))
    torch.manual_seed(0)
    ours = OneDNNConvTranspose2d(6, out_channels, kernel, padding=padding)
    torchs = nn.ConvTranspose2d(6, out_channels, kernel, padding=padding)
    torchs.load_state_dict(ours.state_dict())
    ours.to(memory_format=torch.channels_last)  # as accelerate lays it out
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
def test_the_linear_layer_is_torchs_in_value_and_gradients_on_every_path(shape, onednn_paths):
    torch.manual_seed(0)
    ours, torchs = OneDNNLinear(256, 160), nn.Linear(256, 160)
    torchs.load_state_dict(ours.state_dict())  # the same parameter names: checkpoints load unchanged
    x = torch.randn(*shape, requires_grad=True)
    expected = torchs(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, torchs.weight, torchs.bias])
    out = ours(x)  # oneDNN's products, or F.linear for no rows
    torch.testing.assert_close(out, expected)
    for a, b in zip(torch.autograd.grad(out.square().sum(), [x, ours.weight, ours.bias]), expected_grads):
        torch.testing.assert_close(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # F.linear under autocast
        assert ours(x).dtype == torch.bfloat16


def test_the_oneDNN_linear_compiles_and_trains_as_eager():
    if not onednn.available():
        pytest.skip("this CPU has no AVX-512 or this torch no oneDNN linear: accelerate keeps torch's Linear")
    onednn.register_ops()
    torch.manual_seed(0)
    layer = OneDNNLinear(200, 130)
    x = torch.randn(8, 200)
    compiled = torch.compile(lambda x: layer(x).relu().square().sum())
    eager = layer(x).relu().square().sum()
    (eager_grad,) = torch.autograd.grad(eager, [layer.weight])
    loss = compiled(x)
    (compiled_grad,) = torch.autograd.grad(loss, [layer.weight])
    torch.testing.assert_close(loss, eager)
    torch.testing.assert_close(compiled_grad, eager_grad)
