"""vaekit's CPU speed paths, kept out of the core and applied in one place.

The core's networks (networks.py) are plain torch modules. `accelerate(model, device)` makes a model faster
on a CPU, in place, leaving its parameters and state_dict keys as they were (a checkpoint saved from an
accelerated model loads into plain networks, and the other way round):

- convolutions get channels_last weights (activations follow): the conv design's importance-weighted NLL
  ran 1.75x faster, its training level in speed with a fifth less peak memory;
- on a CPU with AVX-512 and oneDNN, the networks' layers become vaekit's fast ones (layers.py): Linear layers
  of 128 units or more multiply in oneDNN, transposed convolutions add their bias outside oneDNN's kernel and
  fuse the ReLU after them, and the conv networks' memory-bound passes run in C kernels (native.c, built on
  first use by torch.utils.cpp_extension into vaekit's cache).

`process_settings(device, ...)` holds two process-wide settings for the length of a fit, each a TrainConfig
option a user opts into (off by default: neither gave >= 1.10x in steady state where measured): denormals as
zero on every intra-op thread (denormals.py) and glibc's malloc keeping freed memory mapped (heap.py).

Switches (environment variables; 0, false, no or off turns one off):
  VAEKIT_ACCEL=0           accelerate() leaves every model as built: torch's layers and layout
  VAEKIT_ONEDNN_LINEAR=0   no fast layers (and so no C kernels, which run inside them); channels_last stays
  VAEKIT_NATIVE=0          no C kernels; the oneDNN layers stay

The Trainer accelerates the model it fits, and the loaders that put a saved model on a device for
evaluation (runs.load_run, the anomaly detector's load) do the same; nothing here runs at import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from . import native, onednn
from .denormals import flushing_denormals
from .heap import keeping_freed_memory
from .layers import swap_layers
from .switches import ACCEL, switched_on

__all__ = ["accelerate", "process_settings"]


def accelerate(model: nn.Module, device: torch.device | str) -> nn.Module:
    """`model` (already on `device`) made faster there, in place (see the module doc); returns it. A no-op on
    devices other than the CPU, and with VAEKIT_ACCEL=0."""
    if torch.device(device).type != "cpu" or not switched_on(ACCEL):
        return model
    if any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    if onednn.available() and swap_layers(model):
        native.library()  # built (or found in the cache) now rather than inside the first forward
    return model


@contextlib.contextmanager
def process_settings(device: torch.device | str, *, flush_denormals: bool, keep_freed_memory: bool
                     ) -> Iterator[None]:
    """Inside the block, on a CPU: denormals as zero on every intra-op thread where `flush_denormals`, freed
    memory kept mapped where `keep_freed_memory` (Linux with glibc). The process's own settings come back after
    it. Elsewhere a no-op."""
    cpu = torch.device(device).type == "cpu"
    with flushing_denormals(flush_denormals and cpu), keeping_freed_memory(keep_freed_memory and cpu):
        yield
