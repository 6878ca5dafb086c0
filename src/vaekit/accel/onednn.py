"""oneDNN's products and kernels called directly, as autograd Functions for vaekit's fast layers (layers.py),
and native.c's kernels (native.py) inside them. Each computes what torch's modules compute, to float rounding;
layers.py decides where each one runs (fp32 on a CPU, channels_last).

oneDNN's ops are registered as ops of vaekit's own (`register_ops`, called by accelerate before the first
fast layer is put in place, never at import), so torch.compile keeps each one whole."""

from __future__ import annotations

import functools

import torch

from . import native
from .switches import ONEDNN, switched_on


def available() -> bool:
    """True on a CPU with AVX-512 where this torch has oneDNN's dense linear op, unless VAEKIT_ONEDNN_LINEAR
    is 0 (or false/no/off). Measured on an AMD EPYC (Zen 5), where MKL's sgemm runs its AVX2 code (~185
    GFLOP/s on 2 threads at the MLP's 784x400 shapes) and oneDNN its AVX-512 code (~350)."""
    return (switched_on(ONEDNN) and torch.backends.mkldnn.is_available()
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def _conv_transpose_relu_shape(x, weight, bias, stride, padding, output_padding):
    sizes = ((size - 1) * s - 2 * p + k + q
             for size, s, p, k, q in zip(x.shape[2:], stride, padding, weight.shape[2:], output_padding))
    return x.new_empty((x.shape[0], weight.shape[1], *sizes)).contiguous(memory_format=torch.channels_last)


@functools.cache
def register_ops() -> torch.library.Library:
    """vaekit::onednn_linear (oneDNN's product) and vaekit::onednn_conv_transpose_relu (its transposed
    convolution with the bias and a ReLU inside the kernel), once per process. Ops of their own, so
    torch.compile keeps each as one opaque call (inductor's lowering of mkldnn._linear_pointwise expects
    prepacked weights and fails on these). Returns the library, whose ops live as long as it does."""
    library = torch.library.Library("vaekit", "FRAGMENT")
    library.define("onednn_linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor")
    library.impl("onednn_linear", lambda x, weight, bias: torch.ops.mkldnn._linear_pointwise(
        x, weight, bias, "none", [], ""), "CPU")
    torch.library.register_fake("vaekit::onednn_linear", lambda x, weight, bias: x.new_empty(
        (*x.shape[:-1], weight.shape[0])), lib=library)
    library.define("onednn_conv_transpose_relu(Tensor x, Tensor weight, Tensor bias, int[] stride, "
                   "int[] padding, int[] output_padding) -> Tensor")
    library.impl("onednn_conv_transpose_relu", lambda x, weight, bias, stride, padding, output_padding:
                 torch.ops.mkldnn._convolution_transpose_pointwise(
                     x, weight, bias, padding, output_padding, stride, [1, 1], 1, "relu", [], ""), "CPU")
    torch.library.register_fake("vaekit::onednn_conv_transpose_relu", _conv_transpose_relu_shape, lib=library)
    return library


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight.T + bias by oneDNN (register_ops first)."""
    return torch.ops.vaekit.onednn_linear(x, weight, bias)


def conv_transpose_backward(ctx, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride, padding,
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


class ConvTranspose2dReLUFunction(torch.autograd.Function):
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
        return (*conv_transpose_backward(ctx, grad, x, weight, stride, padding, output_padding), grad_bias,
                None, None, None)


class UpsamplingToOneChannelFunction(torch.autograd.Function):
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
            grad_x, grad_weight = conv_transpose_backward(ctx, grad_u, x, weights[index], *ctx.geometries[index],
                                                           needs=(index > 0 or ctx.needs_input_grad[0], True))
            layer_grads[:0] = [grad_weight, grad_bias]
            if index:  # the ReLU before this layer, in place on the gradient made just now
                grad_u = torch.ops.aten.threshold_backward.grad_input(grad_x, x, 0, grad_input=grad_x)
                grad_bias = grad_u.sum((0, 2, 3))
        return grad_x, None, grad_last_weight, grad.sum((0, 2, 3)), *layer_grads


class FromOneChannelReLUFunction(torch.autograd.Function):
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


class OneDNNLinearFunction(torch.autograd.Function):
    """x @ weight.T + bias with all three products of forward and backward in oneDNN: strided
    (transposed) operands go in as views, without copies."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return onednn_linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_rows, x_rows = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        grad_x = onednn_linear(grad, weight.t()) if ctx.needs_input_grad[0] else None
        grad_weight = onednn_linear(grad_rows.t(), x_rows.t()) if ctx.needs_input_grad[1] else None
        grad_bias = grad_rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class TapsConvTranspose2dFunction(torch.autograd.Function):
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
        taps = onednn_linear(weight.reshape(channels, -1).t().contiguous(), rows)
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
        return (*conv_transpose_backward(ctx, grad, x, weight, (1, 1), ctx.padding, (0, 0)), None)
