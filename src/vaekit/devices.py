"""Where and how a fit's kernels run: the device, whether it takes the asked precision, deterministic kernels."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import ConfigError, VaekitError


def select_device(name: str = "auto") -> torch.device:
    """'auto' is cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VaekitError(f"--device {name} asked for CUDA but no CUDA device is available: use --device cpu")
    return device


def synchronize(device: torch.device) -> None:
    """Wait until a GPU has run the work queued on it, so that a host clock read next counts that work; a no-op on
    the CPU, whose kernels have run when they return."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_device(t, device: torch.device):
    """t (a tensor, or anything with `.to(device)`) on `device`. A CPU tensor bound for a GPU goes through pinned
    memory: a copy from pageable memory makes the host wait until the GPU has run everything queued before it."""
    if device.type == "cuda" and torch.is_tensor(t) and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 autocast on a GPU without bfloat16 would fail at the first step: say so before training."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                          "use --precision fp32")


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """PyTorch's deterministic kernels inside the block, cuDNN's included; the caller's settings after.
    An operation without a deterministic kernel warns rather than fails. cuBLAS needs a fixed workspace
    for this, set here where the caller has not chosen one."""
    if not enabled:
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.deterministic, cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]
