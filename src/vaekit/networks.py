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
from .fused import (ConvTranspose2dReLUFunction, FromOneChannelReLUFunction, OneDNNLinearFunction,
                    TapsConvTranspose2dFunction, UpsamplingToOneChannelFunction)

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
            return OneDNNLinearFunction.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


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
    with the bias (ConvTranspose2dReLUFunction: the 64->32 layer's forward and backward 10.4 against 10.9 ms).
    A stride-1 layer to at most 3 channels (an image's last layer) there runs its forward as
    TapsConvTranspose2dFunction: oneDNN's kernel for so few output channels is slow (the conv design's
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
            return ConvTranspose2dReLUFunction.apply(x, self.weight, self.bias, self.stride, self.padding,
                                                      self.output_padding)
        if onednn and self.out_channels <= 3 and self.stride == (1, 1) and self.output_padding == (0, 0) \
                and all(p < k for p, k in zip(self.padding, self.kernel_size)):
            out = TapsConvTranspose2dFunction.apply(x, self.weight, self.padding)
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
        them (FromOneChannelReLUFunction)."""
        if (isinstance(act, nn.ReLU) and conv.bias is not None and not h.requires_grad and _own_cpu_path(conv, h)
                and native.from_one_channel_fits(h, conv.weight, conv.stride, conv.padding)):
            return FromOneChannelReLUFunction.apply(h, conv.weight, conv.bias)
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
        """self.deconvs(h); as one UpsamplingToOneChannelFunction where native.c has kernels for its end."""
        *relu_layers, last = self.deconvs[::2]  # (transposed conv, its activation) pairs, then the last layer
        if (all(layer.relu and layer.bias is not None and _own_cpu_path(layer, h) for layer in relu_layers)
                and all(isinstance(between, nn.Identity) for between in self.deconvs[1::2])
                and last.bias is not None and _own_cpu_path(last, h) and last.output_padding == (0, 0)
                and native.one_channel_fits(h, last.weight, last.stride, last.padding)):
            return UpsamplingToOneChannelFunction.apply(
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
