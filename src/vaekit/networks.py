"""Encoder and decoder networks: plain modules that map tensors to raw parameters.

An encoder maps data (batch, *data_shape) to (batch, out_features); a decoder maps
latents (batch, latent_dim) to (batch, params_per_value * C, H, W) for images or
(batch, params_per_value * D) for flat data, which a likelihood turns into p(x|z).

Built with a `condition_shape` (the shape of one example's condition features, conditioning.py),
each network takes the features as an optional second argument: MLPs concatenate them flattened
to their input; conv networks concatenate them as extra channels (vectors as constant planes,
images resized) to the input of every convolution, and to the decoder's first Linear, flattened.
Without a condition_shape the networks are exactly the unconditional ones.

These are torch's own layers, the same on every device; vaekit.accel swaps in faster CPU paths for training
(same parameters and state_dict keys, so a checkpoint loads into either).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{name}': use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


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
            layers += [nn.Linear(fan_in, fan_out), activation(act)]
        layers.append(nn.Linear(sizes[-1], math.prod(self.out_shape)))
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
        self.head = nn.Linear(in_channels * h * w, out_features)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            x = torch.cat([x, condition_planes(c, x.shape[-2:])], 1)
        return self.head(self.convs(x).flatten(1))


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
        self.head = nn.Sequential(nn.Linear(head_in, math.prod(self.start)), activation(act))
        layers: list[nn.Module] = []
        in_channels = channels[0]
        for out_ch in reversed(channels):
            layers += [nn.ConvTranspose2d(in_channels + extra, out_ch, 3, stride=2, padding=1, output_padding=1),
                       activation(act)]
            in_channels = out_ch
        layers.append(nn.ConvTranspose2d(in_channels + extra, out_channels, 3, stride=1, padding=1))
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
            out = self.deconvs(self.head(z).view(-1, *self.start))
        else:
            out = self.head(torch.cat([z, c.flatten(1)], 1)).view(-1, *self.start)
            for layer in self.deconvs:
                if isinstance(layer, nn.ConvTranspose2d):
                    out = torch.cat([out, condition_planes(c, out.shape[-2:])], 1)
                out = layer(out)
        return out[..., : self.height, : self.width]


NETWORKS = ("mlp", "conv")


def build_networks(kind: str, data_shape: Sequence[int], latent_dim: int, params_per_value: int,
                   hidden: Sequence[int] = (400,), conv_channels: Sequence[int] = (32, 64),
                   act: str = "relu", encoder_padding: str = "same",
                   condition_shape: Sequence[int] = (), stats_per_latent: int = 2) -> tuple[nn.Module, nn.Module]:
    """Build (encoder, decoder). The encoder outputs stats_per_latent * latent_dim numbers (2: loc and log-variance;
    1: a quantized bottleneck's input);
    the decoder outputs params_per_value numbers per data value, stacked along dim 1. A non-empty
    condition_shape makes both take condition features (batch, *condition_shape) as a second input."""
    condition_shape = tuple(condition_shape)
    data_shape = tuple(data_shape)
    out_shape = (params_per_value * data_shape[0], *data_shape[1:])
    if kind == "mlp":
        return (MLP(data_shape, hidden, (stats_per_latent * latent_dim,), act, condition_shape),
                MLP((latent_dim,), tuple(reversed(hidden)), out_shape, act, condition_shape))
    if kind == "conv":
        if len(data_shape) != 3:
            raise ConfigError(f"--network conv needs images (C, H, W), got data of shape {data_shape}: "
                              "use --network mlp")
        return (ConvEncoder(data_shape, conv_channels, stats_per_latent * latent_dim, act, encoder_padding,
                            condition_shape),
                ConvDecoder(latent_dim, data_shape, conv_channels, out_shape[0], act, condition_shape))
    raise ConfigError(f"unknown network '{kind}': use one of {', '.join(NETWORKS)}")
