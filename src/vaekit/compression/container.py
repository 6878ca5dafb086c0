"""The .vae file format, shared by lossless (bits-back) and lossy (latent) codes. Little-endian:

    offset  size  field
    0       8     magic b"VAEKIT\\x00C"
    8       2     format version (uint16), currently 1
    10      1     kind: 0 lossless bits-back, 1 lossy latent code, 2 a quantized run's codes
    11      1     reserved (0)
    12      32    sha256 of every byte from offset 44 to the end (detects corruption)
    44      32    model hash: sha256 of the model config and weights (`model_hash`)
    76      32    data hash: sha256 of the original array (dtype, shape, bytes) (lossless: exact
                  round trip; lossy: identifies the source)
    108     4     length L of the JSON metadata (uint32)
    112     L     JSON metadata: n, shape, dtype, scale, and the coder's parameters
    112+L   ...   payload (lossless and codes: ANS words as uint32; lossy: packed bit-planes of indices)
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, DataError

MAGIC = b"VAEKIT\x00C"
VERSION = 1
LOSSLESS, LOSSY, CODES = 0, 1, 2
_PREFIX = struct.Struct("<8sHBB32s")  # magic, version, kind, reserved, checksum
_BODY = struct.Struct("<32s32sI")  # model hash, data hash, metadata length


@dataclass(frozen=True)
class Container:
    kind: int
    model_hash: bytes
    data_hash: bytes
    meta: dict
    payload: bytes


def model_hash(vae, model_config: dict | None = None) -> bytes:
    """sha256 of the model's config (if given) and every tensor of its state dict (name, dtype,
    shape, bytes), so files coded with other weights are refused."""
    digest = hashlib.sha256(json.dumps(model_config or {}, sort_keys=True).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.digest()


def array_hash(x: np.ndarray) -> bytes:
    """sha256 of dtype, shape and C-order bytes."""
    x = np.ascontiguousarray(x)
    return hashlib.sha256(f"{x.dtype.str}|{x.shape}|".encode() + x.tobytes()).digest()


def pack(container: Container) -> bytes:
    meta = json.dumps(container.meta, sort_keys=True).encode()
    body = _BODY.pack(container.model_hash, container.data_hash, len(meta)) + meta + container.payload
    return _PREFIX.pack(MAGIC, VERSION, container.kind, 0, hashlib.sha256(body).digest()) + body


def unpack(data: bytes, source: str | Path = "the file") -> Container:
    """Parse and verify a .vae file; DataError names what is wrong."""
    if len(data) < _PREFIX.size + _BODY.size or data[:8] != MAGIC:
        raise DataError(f"{source} is not a vaekit compressed file (bad magic): pass a file written by 'vaekit compress'")
    _, version, kind, _, checksum = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise DataError(f"{source} has format version {version}; this vaekit reads version {VERSION}: "
                        "decompress it with the vaekit that wrote it")
    body = data[_PREFIX.size:]
    if hashlib.sha256(body).digest() != checksum:
        raise DataError(f"{source} is corrupted (checksum mismatch): use an intact copy of the file")
    model, data_hash, length = _BODY.unpack_from(body)
    try:
        meta = json.loads(body[_BODY.size:_BODY.size + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{source} has an unreadable header: use an intact copy of the file") from None
    return Container(kind, model, data_hash, meta, body[_BODY.size + length:])


def check_model(container: Container, expected: bytes, source: str | Path) -> None:
    if container.model_hash != expected:
        raise CheckpointError(f"{source} was compressed with another model (model hash {container.model_hash.hex()[:12]}"
                              f" != {expected.hex()[:12]}): pass the run it was compressed with")
