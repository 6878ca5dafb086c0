"""Encoder and decoder networks: plain modules that map tensors to raw parameters.

An encoder maps data (batch, *data_shape) to (batch, out_features); a decoder maps
latents (batch, latent_dim) to (batch, params_per_value * C, H, W) for images or
(batch, params_per_value * D) for flat data, which a likelihood turns into p(x|z).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{name}': use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Flatten, then Linear -> activation for each hidden size, then a final Linear.

    Input (batch, *in_shape); output (batch, *out_shape).
    """

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int], out_shape: Sequence[int], act: str = "relu"):
        super().__init__()
        self.out_shape = tuple(out_shape)
        sizes = [math.prod(in_shape), *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), activation(act)]
        layers.append(nn.Linear(sizes[-1], math.prod(self.out_shape)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1)).view(-1, *self.out_shape)


def _downsampled(size: int, n_layers: int, padding: str) -> int:
    for _ in range(n_layers):
        size = (size + 1) // 2 if padding == "same" else (size - 3) // 2 + 1
    return size


class ConvEncoder(nn.Module):
    """Strided 3x3 convolutions (stride 2) with an activation, flatten, one Linear.

    The Keras tutorial's design is channels=(32, 64), padding='valid'. Input (batch, C, H, W).
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], out_features: int,
                 act: str = "relu", padding: str = "same"):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ConfigError(f"unknown padding '{padding}': use 'same' or 'valid'")
        in_channels, height, width = image_shape
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x).flatten(1))


class ConvDecoder(nn.Module):
    """Linear -> reshape to (channels[-1], H/2^L, W/2^L) -> stride-2 transposed convs back up
    through reversed(channels) -> a stride-1 transposed conv to out_channels, cropped to H x W.

    With channels=(32, 64) on 28x28 this is the Keras tutorial's decoder exactly
    (Dense 7*7*32, ConvTranspose 64, 32, then 1), ending in logits.
    """

    def __init__(self, latent_dim: int, image_shape: Sequence[int], channels: Sequence[int], out_channels: int,
                 act: str = "relu"):
        super().__init__()
        _, self.height, self.width = image_shape
        n_up = len(channels)
        self.start = (channels[0], _downsampled(self.height, n_up, "same"), _downsampled(self.width, n_up, "same"))
        self.head = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start)), activation(act))
        layers: list[nn.Module] = []
        in_channels = channels[0]
        for out_ch in reversed(channels):
            layers += [nn.ConvTranspose2d(in_channels, out_ch, 3, stride=2, padding=1, output_padding=1),
                       activation(act)]
            in_channels = out_ch
        layers.append(nn.ConvTranspose2d(in_channels, out_channels, 3, stride=1, padding=1))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.deconvs(self.head(z).view(-1, *self.start))
        return out[..., : self.height, : self.width]


NETWORKS = ("mlp", "conv")


def build_networks(kind: str, data_shape: Sequence[int], latent_dim: int, params_per_value: int,
                   hidden: Sequence[int] = (400,), conv_channels: Sequence[int] = (32, 64),
                   act: str = "relu", encoder_padding: str = "same") -> tuple[nn.Module, nn.Module]:
    """Build (encoder, decoder). The encoder outputs 2 * latent_dim numbers (loc, log-variance);
    the decoder outputs params_per_value numbers per data value, stacked along dim 1."""
    data_shape = tuple(data_shape)
    out_shape = (params_per_value * data_shape[0], *data_shape[1:])
    if kind == "mlp":
        return (MLP(data_shape, hidden, (2 * latent_dim,), act),
                MLP((latent_dim,), tuple(reversed(hidden)), out_shape, act))
    if kind == "conv":
        if len(data_shape) != 3:
            raise ConfigError(f"--network conv needs images (C, H, W), got data of shape {data_shape}: "
                              "use --network mlp")
        return (ConvEncoder(data_shape, conv_channels, 2 * latent_dim, act, encoder_padding),
                ConvDecoder(latent_dim, data_shape, conv_channels, out_shape[0], act))
    raise ConfigError(f"unknown network '{kind}': use one of {', '.join(NETWORKS)}")
