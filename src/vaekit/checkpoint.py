"""Saving and loading: config.json + model.safetensors, and training state for exact resume.

Every file is written atomically (vaekit.io), so a crash never leaves a half-written checkpoint.
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import CheckpointError
from .io import atomic_write

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
STATE_DIR = "checkpoint"


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


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors as safetensors; a tensor sharing memory with an earlier one (tied weights) is written as a
    copy, since safetensors refuses aliases and load_state_dict fills both names of a tied weight alike."""
    stored, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous().cpu()
        memory = tensor.untyped_storage().data_ptr()
        stored[name] = tensor.clone() if memory in seen else tensor
        seen.add(memory)
    atomic_write(path, save(stored))


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


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into tensors (for safetensors) and the JSON rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
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
