"""vaekit's C kernels (vaekit/accel/native.c): each against torch's own function, the conv decoder with and
without them, and the build's fallbacks (no compiler or ninja, a failed build, switched off)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vaekit.accel import accelerate, native
from vaekit.config import ModelConfig
from vaekit.vae import build_vae

CL = torch.channels_last


@pytest.fixture
def kernels():
    if native.library() is None:
        pytest.skip("no C compiler with OpenMP here (or not Linux): vaekit keeps torch's kernels")
    return native.library()


@pytest.mark.parametrize("in_channels, out_channels, size, relu", [(32, 64, (7, 7), True), (64, 32, (14, 14), True),
                                                                   (5, 16, (3, 5), False), (48, 48, (1, 2), True)])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_stride_two_transposed_convolution_is_torchs_in_any_chunking(
        in_channels, out_channels, size, relu, threads, kernels, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(7, in_channels, *size).contiguous(memory_format=CL)
    weight, bias = torch.randn(in_channels, out_channels, 3, 3).contiguous(memory_format=CL), torch.randn(out_channels)
    assert native.stride2_fits(x, weight, (2, 2), (1, 1), (1, 1))
    expected = F.conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1)
    expected = expected.relu() if relu else expected
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for taps_bytes in (1, 3 * size[0] * size[1] * 9 * out_channels * 4, native.TAPS_BYTES):  # 1, 3, 7 images
            monkeypatch.setattr(native, "TAPS_BYTES", taps_bytes)
            out = native.conv_transpose_stride2(x, weight, bias, relu)
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
            assert out.is_contiguous(memory_format=CL)
    finally:
        torch.set_num_threads(previous)


def test_what_the_stride_two_kernel_does_not_fit_goes_to_torch(kernels):
    x, weight = torch.randn(2, 8, 5, 5), torch.randn(8, 16, 3, 3)
    assert native.stride2_fits(x, weight, (2, 2), (1, 1), (1, 1))
    assert not native.stride2_fits(x, torch.randn(8, 24, 3, 3), (2, 2), (1, 1), (1, 1))  # no kernel for 24 channels
    assert not native.stride2_fits(x, weight, (2, 2), (1, 1), (0, 0))
    assert not native.stride2_fits(x, torch.randn(8, 16, 5, 5), (2, 2), (1, 1), (1, 1))
    assert not native.stride2_fits(x.double(), weight.double(), (2, 2), (1, 1), (1, 1))
    assert not native.one_channel_fits(x, torch.randn(16, 2, 3, 3), (1, 1), (1, 1))  # two channels out


@pytest.mark.parametrize("channels, size", [(32, (28, 28)), (16, (5, 9)), (64, (1, 3)), (48, (2, 2))])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_last_layer_and_its_gradients_through_the_relu_are_torchs(channels, size, threads, kernels):
    torch.manual_seed(0)
    u = torch.randn(3, channels, *size).contiguous(memory_format=CL).requires_grad_()
    weight = torch.randn(channels, 1, 3, 3).contiguous(memory_format=CL).requires_grad_()
    bias = torch.randn(1)
    expected = F.conv_transpose2d(u.relu(), weight, bias, padding=1)
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [u, weight], grad)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = u.detach().relu()
        torch.testing.assert_close(native.to_one_channel(y, weight.detach(), bias), expected.detach(),
                                   rtol=1e-5, atol=1e-4)
        grad_u, grad_weight, grad_bias = native.to_one_channel_backward_through_relu(y, grad, weight.detach())
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(grad_u, expected_grads[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(grad_weight, expected_grads[1], rtol=1e-5, atol=1e-3)  # sums over many pixels
    torch.testing.assert_close(grad_bias, expected_grads[0].sum((0, 2, 3)), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape, channels", [((1, 28, 28), (32, 64)), ((1, 8, 12), (16, 48))])
def test_the_conv_decoder_is_the_same_with_and_without_the_kernels(shape, channels, kernels, onednn_paths,
                                                                  monkeypatch):
    """Values and every parameter's gradient, the kernels' path taken (its one Function for the last layers)."""
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="conv", data_shape=shape, conv_channels=channels, latent_dim=4))
    accelerate(vae, "cpu")  # as the Trainer runs it
    z = torch.randn(6, 4)

    def run(with_kernels: bool):
        monkeypatch.setattr(native, "library", native.library if with_kernels else lambda: None)
        out = vae.decoder(z)
        grads = torch.autograd.grad(out.square().sum(), list(vae.decoder.parameters()))
        return out, grads, out.grad_fn.next_functions[0][0]  # under the crop to the image's size

    (ours, our_grads, ours_from), (torchs, torch_grads, torchs_from) = run(True), run(False)
    assert type(ours_from).__name__.startswith("UpsamplingToOneChannelFunction")
    assert not type(torchs_from).__name__.startswith("UpsamplingToOneChannelFunction")
    torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-4)
    for (name, _), a, b in zip(vae.decoder.named_parameters(), our_grads, torch_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3, msg=lambda m: f"{name}: {m}")
    with torch.inference_mode():
        torch.testing.assert_close(vae.decoder(z), torchs.detach(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("channels, size", [(32, (28, 28)), (16, (5, 8)), (64, (7, 3))])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_grayscale_images_first_layer_and_its_gradients_through_the_relu_are_torchs(channels, size, threads,
                                                                                    kernels):
    torch.manual_seed(0)
    x = torch.rand(3, 1, *size)
    weight, bias = torch.randn(channels, 1, 3, 3, requires_grad=True), torch.randn(channels, requires_grad=True)
    expected = F.conv2d(x, weight, bias, stride=2, padding=1).relu()
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [weight, bias], grad)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = native.from_one_channel(x, weight.detach(), bias.detach())
        grads = native.from_one_channel_backward_through_relu(x, y, grad)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(y, expected.detach(), rtol=1e-5, atol=1e-5)
    for ours, torchs in zip(grads, expected_grads):
        torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-4)


def test_the_conv_encoder_is_the_same_with_and_without_the_kernels(kernels, onednn_paths, monkeypatch):
    """Values and every parameter's gradient; an image that takes a gradient itself goes through torch."""
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="conv", data_shape=(1, 12, 10), conv_channels=(32, 16), latent_dim=4))
    accelerate(vae, "cpu")
    x, library = torch.rand(5, 1, 12, 10), native.library

    def run(with_kernels: bool):
        monkeypatch.setattr(native, "library", library if with_kernels else lambda: None)
        out = vae.encoder(x)
        return out, torch.autograd.grad(out.square().sum(), list(vae.encoder.parameters()))

    (torchs, torch_grads), (ours, our_grads) = run(False), run(True)
    torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-5)
    for (name, _), a, b in zip(vae.encoder.named_parameters(), our_grads, torch_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=lambda m: f"{name}: {m}")
    convs = vae.encoder.convs
    first = convs.convolve(convs[0], convs[1], x)
    assert type(first.grad_fn).__name__.startswith("FromOneChannelReLUFunction")
    image = x.clone().requires_grad_()
    assert convs.convolve(convs[0], convs[1], image).grad_fn.name() == "ReluBackward0"


def test_the_compiled_decoder_computes_what_the_eager_one_does(kernels, onednn_paths):
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(network="conv", data_shape=(1, 8, 8), conv_channels=(16, 32), latent_dim=3))
    accelerate(vae, "cpu")
    z = torch.randn(4, 3)
    torch.testing.assert_close(torch.compile(vae.decoder)(z), vae.decoder(z), rtol=1e-5, atol=1e-4)


def _fresh_build(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    return native.library()


_LOAD_SCRIPT = "from vaekit.accel import native; print(native.library()._name)"


def test_the_kernels_are_built_once_into_the_cache_then_loaded(kernels, tmp_path):
    def load_in_a_new_process() -> Path:
        out = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT], capture_output=True, text=True, check=True,
                             env={**os.environ, "VAEKIT_CACHE": str(tmp_path)})
        return Path(out.stdout.strip())

    built = load_in_a_new_process()
    assert built.parent.parent == tmp_path / "native"  # a folder per source, flags, compiler and CPU
    made = built.stat().st_mtime_ns
    assert load_in_a_new_process() == built  # cpp_extension's ninja finds nothing to build
    assert built.stat().st_mtime_ns == made and len(list(tmp_path.rglob("*.so"))) == 1


def test_every_kernel_call_is_checked(kernels):
    y = torch.rand(1, 8, 3, 3)  # 8 channels: native.c has no kernel for them, its entry point says -1
    with pytest.raises(RuntimeError, match="to_one_channel returned -1"):
        native.to_one_channel(y, torch.randn(8, 1, 3, 3), torch.zeros(1))


def test_without_a_compiler_or_switched_off_vaekit_keeps_torchs_kernels(monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    monkeypatch.setenv("VAEKIT_NATIVE", "0")
    assert _fresh_build(monkeypatch, tmp_path) is None
    monkeypatch.delenv("VAEKIT_NATIVE")
    monkeypatch.setenv("CXX", "false")  # a compiler that fails
    if cpp_extension.is_ninja_available():
        with pytest.warns(RuntimeWarning, match="did not build"):
            assert _fresh_build(monkeypatch, tmp_path) is None
        assert not list(tmp_path.rglob("*.so"))
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="need ninja"):
        assert _fresh_build(monkeypatch, tmp_path) is None
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="need a C\\+\\+ compiler"):
        assert _fresh_build(monkeypatch, tmp_path) is None
    torch.manual_seed(0)  # and the decoder still runs, on torch's kernels
    vae = accelerate(build_vae(ModelConfig(network="conv", data_shape=(1, 8, 8), conv_channels=(16, 32),
                                           latent_dim=3)), "cpu")
    assert vae.decoder(torch.randn(2, 3)).shape == (2, 1, 8, 8)
