"""What this machine has (memory, disk space) and the checks of a requested size against it, made before the
work starts: a size that cannot fit is a ConfigError naming the number and the limit, instead of a command
that grows until the kernel kills it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import ConfigError

MEMORY_SHARE = 0.8  # of the memory available now, what one command may plan to hold
PARAMETER_COPIES = 4  # a trained parameter is held four times: the weight, its gradient and Adam's two moments


def available_memory() -> int | None:
    """Bytes of memory available now: Linux's MemAvailable (free memory plus reclaimable caches), capped by
    the cgroup's limit in a container; the free pages elsewhere; None where the system does not say."""
    found = None
    try:
        with open("/proc/meminfo") as f:
            found = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")), None)
    except OSError:
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            found = min(found, int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return found


def size(nbytes: float) -> str:
    """'24.0 GB': a number of bytes for a message."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """ConfigError unless `nbytes` (what `what` would hold) fits in the memory this machine can spare now."""
    available = available_memory()
    if available is not None and nbytes > MEMORY_SHARE * available:
        raise ConfigError(f"{what} would need about {size(nbytes)} of memory, more than the "
                          f"{size(MEMORY_SHARE * available)} this machine can spare now: {fix}")


def check_disk(path: str | os.PathLike, nbytes: float, what: str, fix: str) -> None:
    """ConfigError unless `nbytes` fit in the free space of the disk that will hold `path`."""
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise ConfigError(f"{what} would take about {size(nbytes)}, more than the {size(free)} free on {folder}: {fix}")


def build_within_memory(build, what: str, fix: str):
    """The module `build()` makes, after making it once on torch's meta device (which allocates nothing) to check
    that its parameters fit in memory while training. A model the meta device cannot build is built unchecked."""
    import torch

    try:
        with torch.device("meta"):
            sketch = build()
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return build()
    nbytes = sum(p.numel() * p.element_size() for p in sketch.parameters()) * PARAMETER_COPIES
    check_memory(nbytes, what, fix)
    return build()
