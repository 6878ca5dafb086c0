"""Files vaekit writes and where it keeps them: atomic writers and the cache folder.

Every file is written to a temporary name in its folder, synced and renamed into place, so a
crash never leaves a half-written file; it gets the permissions a plain `open` would give.
A leaf: it imports nothing from vaekit, so any layer may use it.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """Where vaekit keeps downloads, decoded arrays and compiled kernels: $VAEKIT_CACHE, else
    $XDG_CACHE_HOME/vaekit, else ~/.cache/vaekit."""
    if custom := os.environ.get("VAEKIT_CACHE"):
        return Path(custom).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vaekit"


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def temporary_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file in `path`'s folder, as (fd, name), with the permissions a plain `open`
    would give under the user's umask (mkstemp alone makes every file 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `path` for writing; on a clean exit it is synced and renamed to
    `path`, on any error it is removed, so `path` is never half-written. A full disk is an OSError
    (ENOSPC) that names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno == errno.ENOSPC and not err.filename:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write data to path via a temporary file in the same folder and os.replace."""
    with atomic_open(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_npy(path: str | os.PathLike, array) -> Path:
    """Save a numpy array as .npy, atomically."""
    import numpy as np

    with atomic_open(path) as f:
        np.save(f, array)
    return Path(path)


def write_npy_chunks(path: str | os.PathLike, shape: tuple[int, ...], dtype: str, chunks) -> Path:
    """Save an array of `shape` and `dtype`, given as numpy chunks along its first axis, as .npy, atomically,
    holding one chunk at a time (the bytes np.save would write for the whole array)."""
    import numpy as np

    with atomic_open(path) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                 "shape": tuple(shape)})
        for chunk in chunks:
            f.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows) -> None:
    """One JSON object a line (metrics.jsonl), atomically."""
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))
