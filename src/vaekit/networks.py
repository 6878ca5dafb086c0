"""Encoder and decoder networks: plain modules that map tensors to raw parameters.

An encoder maps data (batch, *data_shape) to (batch, out_features); a decoder maps
latents (batch, latent_dim) to (batch, params_per_value * C, H, W) for images or
(batch, params_per_value * D) for flat data, which a likelihood turns into p(x|z).

Built with a `condition_shape` (the shape of one example's condition features, conditioning.py),
each network takes the features as an optional second argument: MLPs concatenate them flattened
to their input; conv networks concatenate them as extra channels (vectors as constant planes,
images resized) to the input of every convolution, and to the decoder's first Linear, flattened.
Without a condition_shape the networks are exactly the unconditional ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{name}': use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def prefer_fast_layout(module: nn.Module, device: torch.device | str) -> nn.Module:
    """Give 2-D convolutions channels_last weights on a CPU (activations follow the weights' layout):
    the conv design's importance-weighted NLL ran 1.75x faster so, and its training was level in speed with
    a fifth less peak memory (benchmarks/README.md). The Trainer applies it, so a trained model is already
    in it; loading applies it too. Other devices keep the default. Returns the module, changed in place."""
    if torch.device(device).type == "cpu" and any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
                                                  for m in module.modules()):
        module.to(memory_format=torch.channels_last)
    return module


def _onednn_linear_available() -> bool:
    """True on a CPU with AVX-512 where this torch has oneDNN's dense linear op, unless VAEKIT_ONEDNN_LINEAR
    is 0 (or false/no/off). Measured on an AMD EPYC (Zen 5), where MKL's sgemm runs its AVX2 code (~185
    GFLOP/s on 2 threads at the MLP's 784x400 shapes) and oneDNN its AVX-512 code (~350)."""
    if os.environ.get("VAEKIT_ONEDNN_LINEAR", "1").strip().lower() in ("0", "false", "no", "off") \
            or not torch.backends.mkldnn.is_available():
        return False
    return (torch.backends.cpu.get_cpu_capability().startswith("AVX512")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


ONEDNN_LINEAR = _onednn_linear_available()  # read once at import: torch.compile then sees a constant


# The oneDNN product as an op of its own, so torch.compile keeps it as one opaque call (inductor's
# lowering of mkldnn._linear_pointwise expects prepacked weights and fails on these).
if not hasattr(torch.ops.vaekit, "onednn_linear"):
    _library = torch.library.Library("vaekit", "FRAGMENT")
    _library.define("onednn_linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor")
    _library.impl("onednn_linear", lambda x, weight, bias: torch.ops.mkldnn._linear_pointwise(
        x, weight, bias, "none", [], ""), "CPU")
    torch.library.register_fake("vaekit::onednn_linear", lambda x, weight, bias: x.new_empty(
        (*x.shape[:-1], weight.shape[0])), lib=_library)


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return torch.ops.vaekit.onednn_linear(x, weight, bias)


# Likewise oneDNN's transposed convolution with its bias and a ReLU inside the kernel.
def _conv_transpose_relu_shape(x, weight, bias, stride, padding, output_padding):
    sizes = ((size - 1) * s - 2 * p + k + q
             for size, s, p, k, q in zip(x.shape[2:], stride, padding, weight.shape[2:], output_padding))
    return x.new_empty((x.shape[0], weight.shape[1], *sizes)).contiguous(memory_format=torch.channels_last)


if not hasattr(torch.ops.vaekit, "onednn_conv_transpose_relu"):
    _conv_library = torch.library.Library("vaekit", "FRAGMENT")  # a library's ops live as long as its object
    _conv_library.define("onednn_conv_transpose_relu(Tensor x, Tensor weight, Tensor bias, int[] stride, "
                         "int[] padding, int[] output_padding) -> Tensor")
    _conv_library.impl("onednn_conv_transpose_relu", lambda x, weight, bias, stride, padding, output_padding:
                       torch.ops.mkldnn._convolution_transpose_pointwise(
                           x, weight, bias, padding, output_padding, stride, [1, 1], 1, "relu", [], ""), "CPU")
    torch.library.register_fake("vaekit::onednn_conv_transpose_relu", _conv_transpose_relu_shape, lib=_conv_library)


def _conv_transpose_backward(ctx, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride, padding,
                             output_padding, needs: tuple[bool, bool] | None = None
                             ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Input and weight gradients of a bias-free transposed convolution, by torch's own kernel, each only
    where `needs` (default: the autograd Function's ctx, its first two inputs) asks for it."""
    needs_x, needs_weight = needs or ctx.needs_input_grad[:2]
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad, x, weight, None, list(stride), list(padding), [1, 1], True, list(output_padding), 1,
        [needs_x, needs_weight, False])
    return grad_x, grad_weight


def _conv_transpose_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride, padding,
                         output_padding) -> torch.Tensor:
    """relu(conv_transpose2d(x, weight) + bias) in one kernel: the decoder's stride-2 upsampling as one oneDNN
    product and native.c's pass where native.stride2_fits, else oneDNN's transposed convolution."""
    if native.stride2_fits(x, weight, stride, padding, output_padding):
        return native.conv_transpose_stride2(x, weight, bias, relu=True)
    return torch.ops.vaekit.onednn_conv_transpose_relu(x, weight, bias, stride, padding, output_padding)


class _ConvTranspose2dReLUFunction(torch.autograd.Function):
    """relu(conv_transpose2d(x, weight) + bias) with the bias and the ReLU inside the forward kernel
    (_conv_transpose_relu): one pass over the output instead of three. Backward: the ReLU's mask, the bias
    gradient as a sum, then torch's own kernel for the rest."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: tuple[int, int],
                padding: tuple[int, int], output_padding: tuple[int, int]) -> torch.Tensor:
        out = _conv_transpose_relu(x, weight, bias, stride, padding, output_padding)
        ctx.save_for_backward(x, weight, out)
        ctx.geometry = stride, padding, output_padding
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight, out = ctx.saved_tensors
        stride, padding, output_padding = ctx.geometry
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_bias = grad.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        return (*_conv_transpose_backward(ctx, grad, x, weight, stride, padding, output_padding), grad_bias,
                None, None, None)


class _UpsamplingToOneChannelFunction(torch.autograd.Function):
    """The conv decoder's upsampling as one Function: transposed convolutions, each with its bias and ReLU
    (_conv_transpose_relu), then the 3x3 stride-1 one to one channel (a grayscale image's logits) by native.c,
    the last chunk by chunk with the layer before it while that is in cache. Backward: native.c gives, in one
    pass over the largest activation, its gradient through the ReLU's mask, the last layer's weight gradient
    and the bias gradient of the layer before (torch takes five passes); each earlier ReLU's mask goes in place
    on the input gradient this Function has just made, and each bias gradient is its sum."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, geometries: tuple, last_weight: torch.Tensor, last_bias: torch.Tensor,
                *weights_and_biases: torch.Tensor) -> torch.Tensor:
        weights, biases = weights_and_biases[0::2], weights_and_biases[1::2]
        outputs, x, logits = [], h, None
        for index, (weight, bias, geometry) in enumerate(zip(weights, biases, geometries)):
            if index == len(weights) - 1 and native.stride2_fits(x, weight, *geometry):
                x, logits = native.conv_transpose_stride2(x, weight, bias, relu=True, then=(last_weight, last_bias))
            else:
                x = _conv_transpose_relu(x, weight, bias, *geometry)
            outputs.append(x)
        if logits is None:
            logits = native.to_one_channel(x, last_weight, last_bias)
        ctx.save_for_backward(h, last_weight, *weights, *outputs)
        ctx.geometries = geometries
        return logits

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        h, last_weight, *rest = ctx.saved_tensors
        weights, outputs = rest[:len(rest) // 2], rest[len(rest) // 2:]
        grad_u, grad_last_weight, grad_bias = native.to_one_channel_backward_through_relu(outputs[-1], grad,
                                                                                           last_weight)
        layer_grads: list[torch.Tensor | None] = []
        for index in reversed(range(len(weights))):
            x = outputs[index - 1] if index else h
            grad_x, grad_weight = _conv_transpose_backward(ctx, grad_u, x, weights[index], *ctx.geometries[index],
                                                           needs=(index > 0 or ctx.needs_input_grad[0], True))
            layer_grads[:0] = [grad_weight, grad_bias]
            if index:  # the ReLU before this layer, in place on the gradient made just now
                grad_u = torch.ops.aten.threshold_backward.grad_input(grad_x, x, 0, grad_input=grad_x)
                grad_bias = grad_u.sum((0, 2, 3))
        return grad_x, None, grad_last_weight, grad.sum((0, 2, 3)), *layer_grads


class _FromOneChannelReLUFunction(torch.autograd.Function):
    """relu(conv2d(x, weight, bias, stride=2, padding=1)) of a one-channel image x that takes no gradient, by
    native.c: the forward in one pass, the weight and bias gradients through the ReLU's mask in one pass over
    the output's gradient (oneDNN's kernels for one input channel ran far below their rate, and the mask and
    the bias sum were passes of their own)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = native.from_one_channel(x, weight, bias)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, y = ctx.saved_tensors
        return None, *native.from_one_channel_backward_through_relu(x, y, grad)


class _OneDNNLinearFunction(torch.autograd.Function):
    """x @ weight.T + bias with all three products of forward and backward in oneDNN: strided
    (transposed) operands go in as views, without copies."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_rows, x_rows = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        grad_x = _onednn_linear(grad, weight.t()) if ctx.needs_input_grad[0] else None
        grad_weight = _onednn_linear(grad_rows.t(), x_rows.t()) if ctx.needs_input_grad[1] else None
        grad_bias = grad_rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class Linear(nn.Linear):
    """nn.Linear (same parameters, names and function) whose fp32 products on an AVX-512 CPU run in
    oneDNN instead of MKL when both sizes are at least 128: the MLP's training step ran 1.32x faster so
    at batch 128 and 1.66x at batch 512 compiled (benchmarks/README.md, issue 3, round 13). Smaller layers,
    other dtypes (autocast included), other devices, empty inputs (oneDNN has no product over 0 rows) and
    CPUs without AVX-512 use F.linear, which was as fast or faster there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (min(self.in_features, self.out_features) >= 128 and x.device.type == "cpu" and x.numel()
                and x.dtype == self.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
                and ONEDNN_LINEAR):
            return _OneDNNLinearFunction.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class _TapsConvTranspose2dFunction(torch.autograd.Function):
    """A stride-1 transposed convolution of a channels_last input, its forward as one oneDNN product
    and shifted sums: the kernel, as (out channels x taps, channels), times every input pixel's channels
    gives each tap's contribution to each output channel as a map of its own, and every output pixel
    adds up the taps that reach it. The backward is torch's own kernel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        batch, channels, height, width = x.shape
        out_channels, (kh, kw), (ph, pw) = weight.shape[1], weight.shape[2:], padding
        rows = x.permute(0, 2, 3, 1).reshape(-1, channels)  # a view in channels_last
        taps = _onednn_linear(weight.reshape(channels, -1).t().contiguous(), rows)
        taps = taps.view(out_channels, kh, kw, batch, height, width)
        out_h, out_w = height + kh - 1 - 2 * ph, width + kw - 1 - 2 * pw
        out = taps.new_zeros(out_channels, batch, out_h, out_w)
        for i in range(kh):
            for j in range(kw):  # output (y, x) takes tap (i, j) of input (y + dy, x + dx)
                dy, dx = ph - i, pw - j
                y0, y1, x0, x1 = max(0, -dy), min(out_h, height - dy), max(0, -dx), min(out_w, width - dx)
                out[:, :, y0:y1, x0:x1] += taps[:, i, j, :, y0 + dy:y1 + dy, x0 + dx:x1 + dx]
        return out.permute(1, 0, 2, 3).contiguous(memory_format=torch.channels_last)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        return (*_conv_transpose_backward(ctx, grad, x, weight, (1, 1), ctx.padding, (0, 0)), None)


def _own_cpu_path(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether a convolution layer runs x through vaekit's own CPU paths (oneDNN's kernels, native.c): fp32
    on a CPU with AVX-512, eager or compiled, not under autocast, in prefer_fast_layout's channels_last."""
    return (ONEDNN_LINEAR and x.device.type == "cpu" and x.dim() == 4 and x.numel() > 0
            and x.dtype == layer.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and layer.weight.is_contiguous(memory_format=torch.channels_last)
            and layer.dilation == (1, 1) and layer.groups == 1)


class ConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d with the bias added after the convolution instead of inside it: the same
    parameters, names and function, but the bias gradient becomes a plain sum over the output. On a CPU
    oneDNN's transposed-convolution backward computes it inside the kernel several times slower (the conv
    design's 64->32 layer at batch 128, channels_last: 13.7 against 8.1 ms in bf16, 15.1 against 12.2 in fp32).

    relu=True applies a ReLU to the output, in fp32 on an AVX-512 CPU inside the forward kernel together
    with the bias (_ConvTranspose2dReLUFunction: the 64->32 layer's forward and backward 10.4 against 10.9 ms).
    A stride-1 layer to at most 3 channels (an image's last layer) there runs its forward as
    _TapsConvTranspose2dFunction: oneDNN's kernel for so few output channels is slow (the conv design's
    32->1 layer: 1.0 against 2.2 ms)."""

    def __init__(self, *args, relu: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu = relu

    def extra_repr(self) -> str:  # printed models show where the decoder's ReLUs went
        return super().extra_repr() + (", relu=True" if self.relu else "")

    def onednn(self, x: torch.Tensor) -> bool:
        """Whether this layer runs x through vaekit's own CPU paths (oneDNN's kernels, native.c)."""
        return _own_cpu_path(self, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        onednn = self.onednn(x)
        if onednn:  # e.g. the decoder's first layer, a reshaped Linear output
            x = x.contiguous(memory_format=torch.channels_last)
        if onednn and self.relu and self.bias is not None:
            return _ConvTranspose2dReLUFunction.apply(x, self.weight, self.bias, self.stride, self.padding,
                                                      self.output_padding)
        if onednn and self.out_channels <= 3 and self.stride == (1, 1) and self.output_padding == (0, 0) \
                and all(p < k for p, k in zip(self.padding, self.kernel_size)):
            out = _TapsConvTranspose2dFunction.apply(x, self.weight, self.padding)
        else:
            out = F.conv_transpose2d(x, self.weight, None, self.stride, self.padding, self.output_padding,
                                     self.groups, self.dilation)
        out = out if self.bias is None else out + self.bias.to(out.dtype)[:, None, None]
        return out.relu() if self.relu else out


def condition_planes(features: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Condition features as planes (batch, F, H, W): vectors (batch, F) broadcast, planes
    (batch, F, h, w) resized bilinearly."""
    if features.dim() == 2:
        return features[:, :, None, None].expand(-1, -1, *size)
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    return F.interpolate(features, size=tuple(size), mode="bilinear", align_corners=False)


def _condition_channels(condition_shape: Sequence[int]) -> int:
    return condition_shape[0] if condition_shape else 0


class MLP(nn.Module):
    """Flatten, then Linear -> activation for each hidden size, then a final Linear.

    Input (batch, *in_shape) and, with a condition_shape, features (batch, *condition_shape)
    concatenated flattened; output (batch, *out_shape).
    """

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int], out_shape: Sequence[int], act: str = "relu",
                 condition_shape: Sequence[int] = ()):
        super().__init__()
        self.out_shape = tuple(out_shape)
        sizes = [math.prod(in_shape) + (math.prod(condition_shape) if condition_shape else 0), *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [Linear(fan_in, fan_out), activation(act)]
        layers.append(Linear(sizes[-1], math.prod(self.out_shape)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1) if c is None else torch.cat([x.flatten(1), c.flatten(1)], 1)
        return self.layers(h).view(-1, *self.out_shape)


def _downsampled(size: int, n_layers: int, padding: str) -> int:
    for _ in range(n_layers):
        size = (size + 1) // 2 if padding == "same" else (size - 3) // 2 + 1
    return size


class ConvEncoder(nn.Module):
    """Strided 3x3 convolutions (stride 2) with an activation, flatten, one Linear.

    The Keras tutorial's design is channels=(32, 64), padding='valid'. Input (batch, C, H, W), and
    with a condition_shape features concatenated to it as planes.
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], out_features: int,
                 act: str = "relu", padding: str = "same", condition_shape: Sequence[int] = ()):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ConfigError(f"unknown padding '{padding}': use 'same' or 'valid'")
        in_channels, height, width = image_shape
        in_channels += _condition_channels(condition_shape)
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1 if padding == "same" else 0),
                       activation(act)]
            in_channels = out_channels
        h, w = (_downsampled(s, len(channels), padding) for s in (height, width))
        if h < 1 or w < 1:
            raise ConfigError(f"image {height}x{width} is too small for {len(channels)} strided convolutions: "
                              "pass fewer --conv-channels")
        self.convs = nn.Sequential(*layers)
        self.head = Linear(in_channels * h * w, out_features)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            x = torch.cat([x, condition_planes(c, x.shape[-2:])], 1)
        h = x
        for conv, act in zip(self.convs[::2], self.convs[1::2]):
            h = self._convolve(conv, act, h)
        return self.head(h.flatten(1))

    @staticmethod
    def _convolve(conv: nn.Conv2d, act: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """act(conv(h)); a grayscale image's first layer and its ReLU by native.c where it has kernels for
        them (_FromOneChannelReLUFunction)."""
        if (isinstance(act, nn.ReLU) and conv.bias is not None and not h.requires_grad and _own_cpu_path(conv, h)
                and native.from_one_channel_fits(h, conv.weight, conv.stride, conv.padding)):
            return _FromOneChannelReLUFunction.apply(h, conv.weight, conv.bias)
        return act(conv(h))


class ConvDecoder(nn.Module):
    """Linear -> reshape to (channels[-1], H/2^L, W/2^L) -> stride-2 transposed convs back up
    through reversed(channels) -> a stride-1 transposed conv to out_channels, cropped to H x W.

    With channels=(32, 64) on 28x28 this is the Keras tutorial's decoder exactly
    (Dense 7*7*32, ConvTranspose 64, 32, then 1), ending in logits. With a condition_shape the
    features join z at the Linear (flattened) and every transposed conv's input (as planes), so a
    low-resolution image reaches each scale of the output.
    """

    def __init__(self, latent_dim: int, image_shape: Sequence[int], channels: Sequence[int], out_channels: int,
                 act: str = "relu", condition_shape: Sequence[int] = ()):
        super().__init__()
        _, self.height, self.width = image_shape
        n_up = len(channels)
        self.start = (channels[0], _downsampled(self.height, n_up, "same"), _downsampled(self.width, n_up, "same"))
        extra = _condition_channels(condition_shape)
        head_in = latent_dim + (math.prod(condition_shape) if condition_shape else 0)
        self.head = nn.Sequential(Linear(head_in, math.prod(self.start)), activation(act))
        layers: list[nn.Module] = []
        in_channels = channels[0]
        for out_ch in reversed(channels):
            # a ReLU runs inside the transposed conv; the Identity keeps old checkpoints' layer indices
            layers += [ConvTranspose2d(in_channels + extra, out_ch, 3, stride=2, padding=1, output_padding=1,
                                       relu=act == "relu"), nn.Identity() if act == "relu" else activation(act)]
            in_channels = out_ch
        layers.append(ConvTranspose2d(in_channels + extra, out_channels, 3, stride=1, padding=1))
        self.deconvs = nn.Sequential(*layers)
        # Values one decoded example keeps alive (each layer's output and its activation): sizes the
        # chunks of the importance-weighted estimator, where these dwarf the output itself.
        _, h, w = self.start
        sizes = [2 * math.prod(self.start)]
        for index, out_ch in enumerate(reversed(channels)):
            sizes.append(2 * out_ch * (h << (index + 1)) * (w << (index + 1)))
        sizes.append(out_channels * (h << n_up) * (w << n_up))
        self.activation_elements = sum(sizes)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            out = self._upsample(self.head(z).view(-1, *self.start))
        else:
            out = self.head(torch.cat([z, c.flatten(1)], 1)).view(-1, *self.start)
            for layer in self.deconvs:
                if isinstance(layer, nn.ConvTranspose2d):
                    out = torch.cat([out, condition_planes(c, out.shape[-2:])], 1)
                out = layer(out)
        return out[..., : self.height, : self.width]

    def _upsample(self, h: torch.Tensor) -> torch.Tensor:
        """self.deconvs(h); as one _UpsamplingToOneChannelFunction where native.c has kernels for its end."""
        *relu_layers, last = self.deconvs[::2]  # (transposed conv, its activation) pairs, then the last layer
        if (all(layer.relu and layer.bias is not None and _own_cpu_path(layer, h) for layer in relu_layers)
                and all(isinstance(between, nn.Identity) for between in self.deconvs[1::2])
                and last.bias is not None and _own_cpu_path(last, h) and last.output_padding == (0, 0)
                and native.one_channel_fits(h, last.weight, last.stride, last.padding)):
            return _UpsamplingToOneChannelFunction.apply(
                h.contiguous(memory_format=torch.channels_last),
                tuple((layer.stride, layer.padding, layer.output_padding) for layer in relu_layers), last.weight,
                last.bias, *(p for layer in relu_layers for p in (layer.weight, layer.bias)))
        return self.deconvs(h)


NETWORKS = ("mlp", "conv")


def build_networks(kind: str, data_shape: Sequence[int], latent_dim: int, params_per_value: int,
                   hidden: Sequence[int] = (400,), conv_channels: Sequence[int] = (32, 64),
                   act: str = "relu", encoder_padding: str = "same",
                   condition_shape: Sequence[int] = ()) -> tuple[nn.Module, nn.Module]:
    """Build (encoder, decoder). The encoder outputs 2 * latent_dim numbers (loc, log-variance);
    the decoder outputs params_per_value numbers per data value, stacked along dim 1. A non-empty
    condition_shape makes both take condition features (batch, *condition_shape) as a second input."""
    condition_shape = tuple(condition_shape)
    data_shape = tuple(data_shape)
    out_shape = (params_per_value * data_shape[0], *data_shape[1:])
    if kind == "mlp":
        return (MLP(data_shape, hidden, (2 * latent_dim,), act, condition_shape),
                MLP((latent_dim,), tuple(reversed(hidden)), out_shape, act, condition_shape))
    if kind == "conv":
        if len(data_shape) != 3:
            raise ConfigError(f"--network conv needs images (C, H, W), got data of shape {data_shape}: "
                              "use --network mlp")
        return (ConvEncoder(data_shape, conv_channels, 2 * latent_dim, act, encoder_padding, condition_shape),
                ConvDecoder(latent_dim, data_shape, conv_channels, out_shape[0], act, condition_shape))
    raise ConfigError(f"unknown network '{kind}': use one of {', '.join(NETWORKS)}")
