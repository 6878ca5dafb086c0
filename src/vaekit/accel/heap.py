"""Freed memory kept in the process while training, instead of handed back to the kernel every step.

glibc's malloc unmaps a freed block above its mmap threshold at once and trims the free top of its heap
beyond its trim threshold. Both thresholds adapt to the program, up to 32 and 64 MiB on 64-bit Linux, but
a training step's pattern (the same large activation buffers freed and allocated again every step) can
keep them low, and a larger batch's buffers outgrow even those ceilings: the conv design's fp32 step at
batch 128 took ~10,000 page faults, the kernel zeroing every page again, and a fresh process's first epoch
on Fashion-MNIST ran 1.7-1.9x longer (benchmarks/README.md, issue 3, round 15). Inside
`keeping_freed_memory` both thresholds are fixed high (1 GiB), so those buffers stay mapped from step to
step; after it, malloc_trim hands the kept memory back and the thresholds drop to the ceilings glibc's own
adaptation reaches (it has no way to turn that adaptation back on). Other C libraries and platforms: a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator
from functools import cache

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
TRAINING_THRESHOLDS = (1 << 30, 1 << 30)  # (mmap, trim) while training: 1 GiB, within a C int
GLIBC_CEILINGS = (32 << 20, 64 << 20)  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, and twice it for trim


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: its C library's malloc
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt thresholds
        return libc
    except (OSError, AttributeError):
        return None


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Fix glibc's malloc thresholds (bytes); False where the C library is not glibc or refuses them."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) \
        and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


_holders = 0  # blocks inside keeping_freed_memory now, nested or in other threads: the last one out restores
_holders_lock = threading.Lock()


@contextlib.contextmanager
def keeping_freed_memory(enabled: bool) -> Iterator[None]:
    """Freed memory stays mapped inside the block and is handed back after it (see the module docstring).
    Nested or concurrent blocks (a fit inside another's callback, fits in two threads) keep it until the
    last of them ends."""
    global _holders
    with _holders_lock:
        kept = enabled and (_holders > 0 or set_thresholds(*TRAINING_THRESHOLDS))
        if kept:
            _holders += 1
    if not kept:
        yield
        return
    try:
        yield
    finally:
        with _holders_lock:
            _holders -= 1
            if not _holders:
                set_thresholds(*GLIBC_CEILINGS)
                _glibc().malloc_trim(0)
