"""Saving and loading: config.json + model.safetensors, and training state for exact resume.

Every file is written atomically (vaekit.io), so a crash never leaves a half-written file. A training
checkpoint is several files that must belong together: they are written into a new folder of checkpoint/ and
committed by one atomic replace of the manifest checkpoint/latest.json, which names the folder and each file's
size and sha256 (see write_checkpoint).
Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import CheckpointError
from .io import atomic_write, write_json

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
STATE_DIR = "checkpoint"
MANIFEST_FILE = "latest.json"  # in STATE_DIR: names the committed checkpoint; replacing it is the commit
MANIFEST_VERSION = 1
# A training state's files: in a checkpoint folder; before manifests, in checkpoint/ itself, renamed one by one
STATE_TENSORS, STATE_META = "state.safetensors", "state.json"
LEGACY_FILES = (STATE_TENSORS, STATE_META)
_FOLDER = re.compile(r"epoch-\d+-[0-9a-f]{8}")  # a checkpoint folder, committed or not
_RANDOM = r"[a-z0-9_]{8}"  # the random part of mkstemp's names, as temporary_beside makes them


def read_json(path: str | os.PathLike) -> dict:
    """A saved folder's JSON file (config.json, ...); missing or unreadable is a CheckpointError."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found: pass a run directory written by 'vaekit train'") from None
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path} ({err}): the run directory is damaged; retrain") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a saved folder's JSON-lines file (metrics.jsonl); a missing file has none, a damaged one is a
    CheckpointError naming its first bad line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            row = ...
        if row is ... or (row is not None and not (isinstance(row, dict) and isinstance(row.get("epoch"), int))):
            raise CheckpointError(f"{path} line {number} is damaged: delete the line (a resumed run rewrites the "
                                  "file from its checkpoint) or restore the file")
        if row is not None:
            rows.append(row)
    return rows


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """Tensors as the bytes of a safetensors file; a tensor sharing memory with an earlier one (tied weights) is
    stored as a copy, since safetensors refuses aliases and load_state_dict fills both names of a tied weight alike."""
    stored, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous().cpu()
        memory = tensor.untyped_storage().data_ptr()
        stored[name] = tensor.clone() if memory in seen else tensor
        seen.add(memory)
    return save(stored)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors as a safetensors file, atomically (see tensor_bytes)."""
    atomic_write(path, tensor_bytes(tensors))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    if not Path(path).exists():
        raise CheckpointError(f"{path} not found: the run has no saved weights yet; train it first")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path} ({err}): the checkpoint is corrupt; retrain or resume") from None


def load_weights(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors state dict into module; any missing, extra or reshaped tensor is an error."""
    tensors = load_tensors(path)
    own = module.state_dict()
    problems = sorted(set(own) ^ set(tensors)) + [k for k in own if k in tensors and own[k].shape != tensors[k].shape]
    if problems:
        raise CheckpointError(f"{path} does not match the model in config.json (mismatched: {', '.join(problems[:4])}"
                              f"{', ...' if len(problems) > 4 else ''}): the files come from different runs")
    broken = next((name for name, _ in module.named_parameters()
                   if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all()), None)
    if broken is not None:
        raise CheckpointError(f"{path} holds NaN or infinite weights ({broken}): the training diverged; retrain it, "
                              "e.g. with a lower --lr or --grad-clip 10")
    module.load_state_dict(tensors)


def optimizer_state(optimizer: torch.optim.Optimizer,
                    prefix: str = "optimizer") -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into tensors (for safetensors, named `prefix.index.slot`) and the JSON rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                      prefix: str = "optimizer") -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(f"{prefix}."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    for param, slots in optimizer.state.items():  # moments in their parameter's memory format (channels_last)
        for key, value in slots.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                slots[key] = torch.empty_like(param).copy_(value)


@dataclass(frozen=True)
class SavedCheckpoint:
    """The files of a committed checkpoint, by name; epoch is the manifest's (None for the layout before manifests,
    whose two files nothing ties together)."""

    epoch: int | None
    files: dict[str, Path]


def write_checkpoint(state_dir: Path, epoch: int, files: dict[str, bytes]) -> None:
    """Save `files` (name -> bytes) as the checkpoint of `epoch`, visible in one atomic step.

    They are written and synced into a new folder state_dir/epoch-NNNNNN-XXXXXXXX, then committed by replacing
    the manifest state_dir/latest.json, which names the folder, the epoch and each file's size and sha256. A kill
    at any moment leaves either the previous checkpoint or this one, whole. After the commit every other
    checkpoint folder (and the files of the layout before manifests) is removed.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    folder = state_dir / f"epoch-{epoch:06d}-{secrets.token_hex(4)}"
    folder.mkdir()
    for name, data in files.items():
        with open(folder / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    _sync_folder(folder)
    fingerprints = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    for name, data in files.items()}
    write_json(state_dir / MANIFEST_FILE, {"format_version": MANIFEST_VERSION, "epoch": epoch, "folder": folder.name,
                                           "files": fingerprints})
    _remove_uncommitted(state_dir, folder.name)


def has_checkpoint(state_dir: Path) -> bool:
    """Whether state_dir holds a committed checkpoint (of either layout)."""
    return (state_dir / MANIFEST_FILE).exists() or (state_dir / STATE_META).exists()


def read_checkpoint(state_dir: Path) -> SavedCheckpoint | None:
    """The committed checkpoint in state_dir, each file checked against the manifest's size and sha256; None when
    there is none. A checkpoint of the layout before manifests (state.safetensors + state.json) is read as it is."""
    if not (state_dir / MANIFEST_FILE).exists():
        if not (state_dir / STATE_META).exists():
            return None
        return SavedCheckpoint(None, {name: state_dir / name for name in LEGACY_FILES})
    manifest = _manifest(state_dir)
    try:
        folder, epoch = manifest["folder"], int(manifest["epoch"])
        expected = {name: (entry["bytes"], entry["sha256"]) for name, entry in manifest["files"].items()}
        if not _FOLDER.fullmatch(folder) or any(Path(name).name != name for name in expected):
            raise ValueError("a name outside its checkpoint folder")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{state_dir / MANIFEST_FILE} is not a vaekit checkpoint manifest ({err!r}): "
                              "the run directory is damaged; retrain") from None
    folder = state_dir / folder
    for name, (size, digest) in expected.items():
        found = _fingerprint(folder / name)
        if found != (size, digest):
            what = "is missing" if found is None else f"has {found[0]} bytes and sha256 {found[1][:12]}..."
            raise CheckpointError(
                f"{folder / name} {what}, but {MANIFEST_FILE} names {size} bytes with sha256 {digest[:12]}...: the "
                "checkpoint's files do not belong together; restore the run directory from a copy, or retrain")
    return SavedCheckpoint(epoch, {name: folder / name for name in expected})


def remove_leftovers(run_dir: Path, names: Iterable[str]) -> None:
    """Delete what interrupted writes left in a run directory: temporary_beside's files for `names` in run_dir,
    and in its checkpoint/ every temporary and every folder that the manifest does not name. Nothing else."""
    for name in names:
        _remove_temporaries(run_dir, name)
    state_dir = run_dir / STATE_DIR
    committed = _manifest(state_dir).get("folder") if (state_dir / MANIFEST_FILE).exists() else None
    if (state_dir / MANIFEST_FILE).exists() and not _FOLDER.fullmatch(str(committed)):
        return  # a damaged manifest: keep whatever it may have named; a resume says what is wrong
    if state_dir.is_dir():
        _remove_uncommitted(state_dir, committed)


def _manifest(state_dir: Path) -> dict:
    manifest = read_json(state_dir / MANIFEST_FILE)
    if not isinstance(manifest, dict) or manifest.get("format_version") != MANIFEST_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise CheckpointError(f"{state_dir / MANIFEST_FILE} has format version {version}, this vaekit reads "
                              f"version {MANIFEST_VERSION}: resume with the vaekit that wrote it")
    return manifest


def _fingerprint(path: Path) -> tuple[int, str] | None:
    """(size, sha256) of a file, None when it is missing."""
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return size, digest.hexdigest()


def _sync_folder(folder: Path) -> None:
    """Make the folder's new entries durable (POSIX; elsewhere a folder cannot be opened, and need not be)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_temporaries(folder: Path, name: str | None = None) -> None:
    """Delete temporary_beside's files for `name` (None: for any name) in `folder`."""
    pattern = re.compile(rf"\.{re.escape(name) if name else '.+'}\.{_RANDOM}\.tmp")
    for path in folder.iterdir() if folder.is_dir() else ():
        if pattern.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def _remove_uncommitted(state_dir: Path, committed: str | None) -> None:
    """Remove from state_dir the temporaries and the checkpoint folders other than `committed`, and once a
    manifest names one, the files of the layout before manifests."""
    _remove_temporaries(state_dir)
    for path in state_dir.iterdir():
        if _FOLDER.fullmatch(path.name) and path.name != committed and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif committed is not None and path.name in LEGACY_FILES:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class EpochPosition:
    """Where a step checkpoint leaves an epoch: `step` steps done, the shuffle generator's state at the epoch's start
    (which draws its order again), the example-weighted sums of loss, reconstruction and KL so far (all ranks'), and
    the training seconds spent in it, and the processes that took those steps."""

    step: int
    shuffle: torch.Tensor
    sums: torch.Tensor
    seconds: float
    world: int = 1
