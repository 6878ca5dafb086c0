"""vaekit's fast CPU layers, and `swap_layers`, which puts them in place of the networks' own (networks.py).

Each fast layer is a subclass of the torch module it replaces, with its parameters, names and function; only
its forward differs, taking oneDNN's kernels called directly (onednn.py) and native.c's (native.py) where
they fit: fp32, not under autocast, on a CPU, in channels_last. Anything else runs torch's own kernels.
swap_layers changes each layer's class in place (as torch.nn.utils.parametrize does), so parameters,
optimizer state and state_dict keys stay what they were: a checkpoint loads into plain and fast networks alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..networks import MLP, ConvDecoder, ConvEncoder
from . import native
from .onednn import (ConvTranspose2dReLUFunction, FromOneChannelReLUFunction, OneDNNLinearFunction,
                     TapsConvTranspose2dFunction, UpsamplingToOneChannelFunction, register_ops)

MIN_ONEDNN_FEATURES = 128  # Linear layers with fewer inputs or outputs ran as fast or faster on F.linear


class OneDNNLinear(nn.Linear):
    """nn.Linear whose fp32 products on a CPU run in oneDNN instead of MKL: the MLP's training step ran 1.32x
    faster so at batch 128 and 1.66x at batch 512 compiled on an AVX-512 CPU (benchmarks/README.md, issue 3,
    round 13). Other dtypes (autocast included), other devices and empty inputs (oneDNN has no product over
    0 rows) use F.linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.numel() and x.dtype == self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu")):
            return OneDNNLinearFunction.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def own_cpu_path(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether a convolution layer runs x through vaekit's own CPU paths (oneDNN's kernels, native.c): fp32
    on a CPU, eager or compiled, not under autocast, with channels_last weights (accelerate lays them out so)."""
    return (x.device.type == "cpu" and x.dim() == 4 and x.numel() > 0
            and x.dtype == layer.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and layer.weight.is_contiguous(memory_format=torch.channels_last)
            and layer.dilation == (1, 1) and layer.groups == 1)


class OneDNNConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d with the bias added after the convolution instead of inside it: the bias gradient
    becomes a plain sum over the output, where oneDNN's transposed-convolution backward computes it inside the
    kernel several times slower (the conv design's 64->32 layer at batch 128, channels_last: 13.7 against 8.1
    ms in bf16, 15.1 against 12.2 in fp32).

    relu=True (swap_layers sets it where a ReLU followed the layer) applies a ReLU to the output, on the own
    CPU path inside the forward kernel together with the bias (ConvTranspose2dReLUFunction: the 64->32 layer's
    forward and backward 10.4 against 10.9 ms). A stride-1 layer to at most 3 channels (an image's last layer)
    there runs its forward as TapsConvTranspose2dFunction: oneDNN's kernel for so few output channels is slow
    (the conv design's 32->1 layer: 1.0 against 2.2 ms)."""

    relu = False

    def extra_repr(self) -> str:  # printed models show where the decoder's ReLUs went
        return super().extra_repr() + (", relu=True" if self.relu else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        own = own_cpu_path(self, x)
        if own:  # e.g. the decoder's first layer, a reshaped Linear output
            x = x.contiguous(memory_format=torch.channels_last)
        if own and self.relu and self.bias is not None:
            return ConvTranspose2dReLUFunction.apply(x, self.weight, self.bias, self.stride, self.padding,
                                                      self.output_padding)
        if own and self.out_channels <= 3 and self.stride == (1, 1) and self.output_padding == (0, 0) \
                and all(p < k for p, k in zip(self.padding, self.kernel_size)):
            out = TapsConvTranspose2dFunction.apply(x, self.weight, self.padding)
        else:
            out = F.conv_transpose2d(x, self.weight, None, self.stride, self.padding, self.output_padding,
                                     self.groups, self.dilation)
        out = out if self.bias is None else out + self.bias.to(out.dtype)[:, None, None]
        return out.relu() if self.relu else out


class Convolutions(nn.Sequential):
    """ConvEncoder's (convolution, activation) pairs, a grayscale image's first layer and its ReLU by native.c
    where it has kernels for them (FromOneChannelReLUFunction)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        for conv, act in zip(layers[::2], layers[1::2]):
            h = self.convolve(conv, act, h)
        return h

    @staticmethod
    def convolve(conv: nn.Conv2d, act: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """act(conv(h)), by native.c where it fits."""
        if (type(act) is nn.ReLU and conv.bias is not None and not h.requires_grad and own_cpu_path(conv, h)
                and native.from_one_channel_fits(h, conv.weight, conv.stride, conv.padding)):
            return FromOneChannelReLUFunction.apply(h, conv.weight, conv.bias)
        return act(conv(h))


class Upsampling(nn.Sequential):
    """ConvDecoder's transposed convolutions (OneDNNConvTranspose2d, each ReLU inside the layer before it), as
    one UpsamplingToOneChannelFunction where native.c has kernels for the last layer to one channel."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        *relu_layers, last = layers[::2]  # (transposed conv, its activation) pairs, then the last layer
        if (all(isinstance(layer, OneDNNConvTranspose2d) and layer.relu and layer.bias is not None
                and own_cpu_path(layer, h) for layer in relu_layers)
                and all(type(between) is nn.Identity for between in layers[1::2])
                and last.bias is not None and own_cpu_path(last, h) and last.output_padding == (0, 0)
                and native.one_channel_fits(h, last.weight, last.stride, last.padding)):
            return UpsamplingToOneChannelFunction.apply(
                h.contiguous(memory_format=torch.channels_last),
                tuple((layer.stride, layer.padding, layer.output_padding) for layer in relu_layers), last.weight,
                last.bias, *(p for layer in relu_layers for p in (layer.weight, layer.bias)))
        return super().forward(h)


def _fuse_relus(deconvs: nn.Sequential) -> None:
    """Each transposed convolution becomes a OneDNNConvTranspose2d, taking in the ReLU right after it (which
    becomes an Identity: the same layer indices, and no parameters either way)."""
    layers = list(deconvs)
    for index, layer in enumerate(layers):
        if type(layer) is nn.ConvTranspose2d:
            layer.__class__ = OneDNNConvTranspose2d
            if index + 1 < len(layers) and type(layers[index + 1]) is nn.ReLU:
                layer.relu = True
                deconvs[index + 1] = nn.Identity()


def swap_layers(model: nn.Module) -> bool:
    """Put vaekit's fast layers in place of torch's in every MLP, ConvEncoder and ConvDecoder inside `model`
    (networks.py), in place; a second call changes nothing. Registers oneDNN's ops first. Returns whether
    a convolutional network was found, for which native.c's kernels may run."""
    register_ops()
    networks = [module for module in model.modules() if isinstance(module, (MLP, ConvEncoder, ConvDecoder))]
    for network in networks:
        for layer in network.modules():
            if type(layer) is nn.Linear and min(layer.in_features, layer.out_features) >= MIN_ONEDNN_FEATURES:
                layer.__class__ = OneDNNLinear
        if isinstance(network, ConvEncoder) and type(network.convs) is nn.Sequential:
            network.convs.__class__ = Convolutions
        if isinstance(network, ConvDecoder) and type(network.deconvs) is nn.Sequential:
            _fuse_relus(network.deconvs)
            network.deconvs.__class__ = Upsampling
    return any(isinstance(network, (ConvEncoder, ConvDecoder)) for network in networks)
