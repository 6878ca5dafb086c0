"""A Trainer's checkpoint: what it holds (weights, the weights' average, Adam's state, a TC discriminator's weights
and Adam, every RNG, the counters, the history and, for a step checkpoint, where the epoch stands) and how a resume
restores it exactly. The files are committed as one by checkpoint.write_checkpoint; model.safetensors and
metrics.jsonl are then shown beside it.
Each function takes the Trainer (training.Trainer, which imports this module) and reads or sets its state."""

from __future__ import annotations

import json

import torch

from .checkpoint import (MODEL_FILE, STATE_DIR, STATE_META, STATE_TENSORS, EpochPosition, load_tensors,
                         optimizer_state, read_checkpoint, read_json, read_jsonl, restore_optimizer, tensor_bytes,
                         write_checkpoint)
from .errors import CheckpointError
from .io import atomic_write, write_jsonl

METRICS_FILE = "metrics.jsonl"
TC_DISCRIMINATOR, TC_OPTIMIZER = "tc_discriminator", "tc_optimizer"  # the names of its tensors in the checkpoint


def rng_tensors(trainer) -> dict[str, torch.Tensor]:
    """Every RNG state a resume restores: the CPU generator, the shuffle generator and the GPU's where one runs."""
    rng = {"rng.cpu": torch.get_rng_state(), "rng.shuffle": trainer.shuffle.get_state()}
    if trainer.device.type == "cuda":
        rng["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
    return rng


def save_state(trainer, within: EpochPosition | None = None) -> None:
    """Commit the state after `epoch` epochs (and `within.step` steps of the next, for a step checkpoint) as one
    checkpoint, then show its best weights and history in model.safetensors and metrics.jsonl."""
    if trainer.run_dir is None or not trainer.group.is_main:
        return
    tensors, meta = optimizer_state(trainer.optimizer)
    tensors.update({f"model.{k}": v for k, v in trainer.vae.state_dict().items()})
    if trainer.averaged is not None:
        tensors.update({f"averaged.{k}": v for k, v in trainer.averaged.module.state_dict().items()})
    tensors.update(rng_tensors(trainer))
    state = {"epoch": trainer.epoch, "best_val": trainer.best_val, "bad_epochs": trainer.bad_epochs,
             "best_epoch": trainer.best_epoch, "optimizer": meta, "history": trainer.history}
    if trainer.tc_discriminator is not None:
        tc_tensors, state["tc_optimizer"] = optimizer_state(trainer.tc_optimizer, TC_OPTIMIZER)
        tensors.update(tc_tensors)
        tensors.update({f"{TC_DISCRIMINATOR}.{k}": v for k, v in trainer.tc_discriminator.state_dict().items()})
    if within is not None:  # the epoch is redrawn from its starting shuffle state and continued at `step`
        tensors.update({"rng.shuffle": within.shuffle, "epoch.sums": within.sums})
        state.update(step=within.step, epoch_seconds=within.seconds, world_size=within.world)
    files = {STATE_TENSORS: tensor_bytes(tensors), STATE_META: json.dumps(state).encode()}
    shown = trainer.run_dir / MODEL_FILE  # until this commit, the last checkpoint's best weights
    best = tensor_bytes(trainer.scored.state_dict()) if trainer.best_epoch == trainer.epoch and within is None else (
        shown.read_bytes() if shown.exists() else None)
    if best is not None:
        files[MODEL_FILE] = best
    write_checkpoint(trainer.run_dir / STATE_DIR, trainer.epoch, files)
    show(trainer, best)


def restore_state(trainer) -> None:
    """Restore model, optimizer, RNG, counters and history from run_dir/checkpoint, once its files are verified to
    be one checkpoint."""
    saved = read_checkpoint(trainer.run_dir / STATE_DIR) if trainer.run_dir is not None else None
    if saved is None:
        raise CheckpointError(f"nothing to resume in {trainer.run_dir}: no checkpoint saved in {STATE_DIR}/; "
                              "drop --resume to start a new run")
    meta = read_json(saved.files[STATE_META])
    tensors = load_tensors(saved.files[STATE_TENSORS])
    try:
        epoch, optimizer = meta["epoch"], meta["optimizer"]
        trainer.best_val, trainer.bad_epochs = meta["best_val"], meta["bad_epochs"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{saved.files[STATE_META]} is not a whole training state (no {err}): the checkpoint "
                              "is damaged; retrain") from None
    if saved.epoch is not None and epoch != saved.epoch:
        raise CheckpointError(f"{saved.files[STATE_META]} is of epoch {epoch} but its checkpoint's manifest says "
                              f"{saved.epoch}: the files do not belong together; retrain")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    trainer.vae.load_state_dict(model_state)
    if trainer.averaged is not None:
        trainer.averaged.module.load_state_dict({k[len("averaged."):]: v for k, v in tensors.items()
                                                 if k.startswith("averaged.")})
    restore_optimizer(trainer.optimizer, tensors, optimizer)
    if trainer.tc_discriminator is not None:
        restore_tc_discriminator(trainer, tensors, meta, saved.files[STATE_META])
    torch.set_rng_state(tensors["rng.cpu"])
    trainer.shuffle.set_state(tensors["rng.shuffle"])
    if "rng.cuda" in tensors and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], trainer.device)
    trainer.epoch, trainer.best_epoch = epoch, meta.get("best_epoch", 0)
    if "step" in meta:  # a step checkpoint: the epoch continues after its `step` steps
        trainer.within_epoch = EpochPosition(meta["step"], tensors["rng.shuffle"], tensors["epoch.sums"],
                                             meta["epoch_seconds"], meta.get("world_size", 1))
    if "history" in meta:
        trainer.history = meta["history"]
    else:  # the layout before manifests kept the history in metrics.jsonl only
        trainer.history = [row for row in read_metrics(trainer) if row["epoch"] <= trainer.epoch]
        trainer.legacy_steps = steps_taken(trainer.optimizer)
    best = saved.files.get(MODEL_FILE)
    if trainer.group.is_main:
        show(trainer, best.read_bytes() if best is not None else None)


def restore_tc_discriminator(trainer, tensors: dict[str, torch.Tensor], meta: dict, source) -> None:
    """The TC discriminator's weights and Adam state, as the checkpoint `source` holds them."""
    prefix = f"{TC_DISCRIMINATOR}."
    weights = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not weights or "tc_optimizer" not in meta:
        raise CheckpointError(f"{source} holds no TC discriminator: the run was trained with --tc-estimator mss or "
                              "no --tc-weight; resume it with those")
    trainer.tc_discriminator.load_state_dict(weights)
    restore_optimizer(trainer.tc_optimizer, tensors, meta["tc_optimizer"], TC_OPTIMIZER)


def show(trainer, best: bytes | None) -> None:
    """Bring model.safetensors (to `best`, unless None) and metrics.jsonl in line with the checkpoint just
    committed or loaded."""
    shown = trainer.run_dir / MODEL_FILE
    if best is not None and not (shown.exists() and shown.read_bytes() == best):
        atomic_write(shown, best)
    write_metrics(trainer)


def read_metrics(trainer) -> list[dict]:
    return read_jsonl(trainer.run_dir / METRICS_FILE)


def write_metrics(trainer) -> None:
    if trainer.run_dir is not None and trainer.group.is_main:
        write_jsonl(trainer.run_dir / METRICS_FILE, trainer.history)


def steps_taken(optimizer: torch.optim.Optimizer) -> int | None:
    """Adam's step count (None before its first step)."""
    return max((int(slots["step"]) for slots in optimizer.state.values() if "step" in slots), default=None)
