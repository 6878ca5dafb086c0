"""Fetch a file over HTTP(S) atomically and verify it: a failed or mismatching download never
leaves anything at the destination."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from vaekit.io import temporary_beside
from vaekit.progress import progress_bar
from vaekit.data.readers import decompress
from vaekit.errors import DataError

CHUNK = 1 << 20
TIMEOUT_S = 30
FETCH_YOURSELF = "fetch the file yourself and pass --data-dir DIR"


def download(url: str, dest, sha256: str | None = None, content_sha256: str | None = None,
             progress: bool = True) -> Path:
    """Download `url` to `dest` and return `dest`.

    The bytes stream to a temporary file beside `dest`, are checked, then moved into place
    with `os.replace`. `sha256` checks the file as sent; `content_sha256` checks the
    decompressed content of a gzip file (mirrors recompress, so the content is what is stable).
    A progress bar is shown on a terminal when `progress` is true."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temporary_beside(dest, suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write to {dest.parent}: {e.strerror}; set VAEKIT_CACHE to a writable folder, or {FETCH_YOURSELF}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _fetch(url, f, dest.name, progress)
        _verify(Path(tmp), url, sha256, content_sha256)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _fetch(url: str, f, label: str, progress: bool) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with progress_bar(total=total, desc=label, enabled=progress, unit="B", unit_scale=True) as bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise _failed(url, f"HTTP {e.code} {e.reason}") from None
    except (http.client.HTTPException, OSError) as e:  # URLError, timeouts, resets, IncompleteRead
        raise _failed(url, str(getattr(e, "reason", e)) or type(e).__name__) from None
    if total is not None and received != total:
        raise _failed(url, f"connection closed after {received} of {total} bytes")


def _failed(url: str, reason: str) -> DataError:
    return DataError(f"cannot download {url}: {reason}; check your connection, or {FETCH_YOURSELF}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify(path: Path, url: str, sha256: str | None, content_sha256: str | None) -> None:
    raw = path.read_bytes() if sha256 or content_sha256 else b""
    if sha256 and _sha256(raw) != sha256.lower():
        raise DataError(f"{url} sent a file whose sha256 does not match; try again later, or {FETCH_YOURSELF}")
    if content_sha256:
        try:
            content = decompress(raw)
        except ValueError as e:
            raise DataError(f"{url} sent a broken file ({e}); try again later, or {FETCH_YOURSELF}") from None
        if _sha256(content) != content_sha256.lower():
            raise DataError(f"{url} sent a file whose content sha256 does not match; try again later, or {FETCH_YOURSELF}")
