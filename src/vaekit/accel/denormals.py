"""Denormal floats as zero on a CPU, on every intra-op thread.

Adam's moments of gradients that are almost always zero (e.g. of an image's border pixels) decay
into denormals (below 1.2e-38 in fp32), which Intel cores process many times slower: flushing them
made Fashion-MNIST MLP training 1.26x faster on a Xeon, with the same test nats to the last digit
(benchmarks/README.md). torch.set_flush_denormal sets the calling thread's mode only, so OpenMP
worker threads started before it keep theirs; `set_flush_denormal` runs it on each of them too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from functools import cache

import torch

_TEAM_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@cache
def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime torch runs its intra-op threads on (GNU libgomp, or an Intel/LLVM one with
    its GOMP entry points) among the loaded libraries: the one in torch's folder, else the only one
    (scikit-learn's wheels load their own copy); None where that is unclear or there is no /proc."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if any(
                name in line for name in ("/libgomp", "/libiomp", "/libomp"))}
        torch_folder = os.path.dirname(torch.__file__) + os.sep
        own = [path for path in paths if path.startswith(torch_folder)]
        (path,) = own or paths
        runtime = ctypes.CDLL(path)
        runtime.GOMP_parallel.argtypes = [_TEAM_TASK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        return runtime
    except (OSError, ValueError, AttributeError):
        return None


def set_flush_denormal(enabled: bool) -> bool:
    """Set the mode on this thread and on every thread of its OpenMP team; False where the CPU has no such mode."""
    supported = torch.set_flush_denormal(enabled)
    runtime = _openmp_runtime()
    if supported and runtime is not None and torch.get_num_threads() > 1:
        task = _TEAM_TASK(lambda _: torch.set_flush_denormal(enabled))  # ctypes drops the GIL: workers take it in turn
        runtime.GOMP_parallel(task, None, torch.get_num_threads(), 0)
    return supported


def denormals_flushed() -> bool:
    """Whether denormals come out as zero on every intra-op thread (torch has a setter only)."""
    # the smallest denormal, from its bits (converting 1e-45 would already flush on this thread); large
    # enough that every thread takes a share of the product
    tiny = torch.ones(1 << 18, dtype=torch.int32).view(torch.float32)
    return bool(tiny.mul(1.0).eq(0).all())


@contextlib.contextmanager
def flushing_denormals(enabled: bool) -> Iterator[None]:
    """Denormals as zero inside the block (where the CPU supports it), the caller's mode after."""
    if not enabled:
        yield
        return
    was_flushed = denormals_flushed()
    set_flush_denormal(True)
    try:
        yield
    finally:
        set_flush_denormal(was_flushed)
