"""The Trainer: model-agnostic optimization of `vae.loss(x, beta=..., free_bits=..., iw_samples=...)`.

It owns Adam, batching, KL warm-up, early stopping, checkpoints, exact resume and logging;
the model owns its maths. Data that fits is held as one tensor on the device and batched by shuffled
index slices; larger data is streamed by DataLoader workers in the same order (batches.py). Per-step
metrics stay on the device and are read once per epoch. Under torchrun
the same loop runs data-parallel with DDP (see distributed.py); only rank 0 writes and logs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .accel import accelerate, process_settings
from .batches import epoch_batches, is_stream, splits_by_rank, worker_count
from .checkpoint import STATE_DIR, STATE_META, STATE_TENSORS, EpochPosition
from .conditioning import binarize
from .config import TrainConfig
from .devices import check_precision, deterministic_algorithms, select_device, synchronize
from .distributed import from_environment
from .errors import CheckpointError, ConfigError, VaekitError
from .evaluation import negative_elbo
from .optimization import (CompiledLoss, WeightAverage, kl_warmup, learning_rate, make_optimizer, tc_discriminator,
                           updating_only)
from .profiling import StepProfile
from .progress import progress_bar
# METRICS_FILE: the history file of a run, read by the apps from here
from .training_state import METRICS_FILE, restore_state, save_state  # noqa: F401



class TrainingDiverged(VaekitError):
    """The loss became NaN or infinite."""


class Trainer:
    """Fit a VAE. `run_dir` (optional) receives model.safetensors (best validation weights, or the
    last ones without validation; the weights' average under `ema`), metrics.jsonl, and checkpoint/ with
    everything needed to resume.

    After each epoch one checkpoint is committed atomically (checkpoint.write_checkpoint): the weights, optimizer,
    RNG states, counters and history, with the best weights beside them. model.safetensors and metrics.jsonl are
    then copied out of it, and again by a resume, so a kill between the commit and those copies loses nothing."""

    def __init__(self, vae: nn.Module, config: TrainConfig, run_dir: str | Path | None = None,
                 dynamic_binarization: bool = False, on_epoch: Callable[[dict], None] | None = None,
                 kl_schedule: Callable[[int, int], float] | None = None,
                 probe: Callable[[nn.Module, dict], dict] | None = None,
                 kl_per_example: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 alternate: tuple[int, int] | None = None, monitor: str | None = None):
        """monitor: a figure of the epoch's row that `probe` adds (e.g. a recommender's 'val_ndcg@100'), higher
        better, that replaces the validation -ELBO in choosing the best epoch and in early stopping; the probe then
        runs every epoch, with or without x_val.
        kl_per_example: batch -> (batch,) factors of each example's KL weight beta (RecVAE: its number of
        interactions). alternate=(e, d): each epoch makes e passes updating only the encoder, then d passes
        updating only the decoder with the encoder in eval mode (RecVAE's alternating updates, Shenbin et al.
        2020, sec. 3.4); None updates both together in one pass."""
        config.validate()
        self.config = config
        self.group = from_environment(select_device(config.device))  # world_size 1 outside torchrun
        if alternate is not None and (self.group.distributed or min(alternate) < 1):
            raise ConfigError(f"alternating updates need positive pass counts and one process, got {alternate}")
        if alternate is not None and config.checkpoint_every > 0:
            raise ConfigError("a step checkpoint cannot say which of an epoch's alternating passes it is in: drop "
                              "--checkpoint-every (epoch checkpoints still resume exactly)")
        if monitor is not None and probe is None:
            raise ConfigError(f"monitoring '{monitor}' needs a probe that adds it to each epoch's row")
        self.kl_per_example, self.alternate, self.monitor = kl_per_example, alternate, monitor
        self.device = self.group.device
        check_precision(config.precision, self.device)
        self.vae = accelerate(vae.to(self.device), self.device)  # vaekit.accel's CPU paths, in place
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dynamic_binarization = dynamic_binarization
        self.on_epoch = on_epoch
        self.kl_schedule = kl_schedule  # (global step, steps per epoch) -> beta; None: linear warm-up
        self.probe = probe  # (scored model, epoch row) -> more validation figures for the row, e.g. active units
        self.optimizer = make_optimizer(self.vae.parameters(), config, self.device)
        # FactorVAE's D(z) (--tc-estimator discriminator), stepped after the model on each batch's draws
        self.tc_discriminator = tc_discriminator(self.vae, config, self.group.distributed, self.device)
        self.tc_optimizer = self.tc_discriminator.optimizer() if self.tc_discriminator is not None else None
        # Polyak averaging: a copy whose weights trail the trained ones; it is what validation scores and what is saved
        self.averaged = WeightAverage(self.vae, config.ema) if config.ema > 0 else None
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.epoch = 0  # epochs completed
        self.best_val = math.inf
        self.best_epoch = 0  # the epoch whose weights model.safetensors holds (0: none yet)
        self.bad_epochs = 0
        self.history: list[dict] = []
        self.legacy_steps: int | None = None  # optimizer steps of a resumed checkpoint without a manifest
        self.within_epoch: EpochPosition | None = None  # where a resumed step checkpoint left the current epoch
        self.profile: StepProfile | None = None  # where the last fit's steps spent their time, under `profile`

    # -- checkpoints (what they hold and how a resume restores it: training_state) ----------------
    def save_checkpoint(self, within: EpochPosition | None = None) -> None:
        """Commit the state after `epoch` epochs (and `within.step` steps of the next, for a step checkpoint) as one
        checkpoint, then show its best weights and history in model.safetensors and metrics.jsonl."""
        save_state(self, within)

    def resume(self) -> None:
        """Restore model, optimizer, RNG, counters and history from run_dir/checkpoint, once its files are verified to
        be one checkpoint."""
        restore_state(self)

    # -- training ------------------------------------------------------------------------------
    def kl_weight(self, step: int, steps_per_epoch: int) -> float:
        """beta, ramped linearly from 0 over `kl_warmup` epochs (or what `kl_schedule` says)."""
        if self.kl_schedule is not None:
            return self.kl_schedule(step, steps_per_epoch)
        return kl_warmup(self.config, step, steps_per_epoch)

    def learning_rate(self, step: int, steps_per_epoch: int, seconds: float = 0.0) -> float:
        """The learning rate of global step `step` (vaekit.optimization.learning_rate of this run's config)."""
        return learning_rate(self.config, step, steps_per_epoch, seconds)

    def fit(self, x_train, x_val=None) -> list[dict]:
        """Train for the remaining epochs; returns one metrics dict per epoch (also in metrics.jsonl).

        x_train, x_val: (N, *data_shape) float tensors, moved to the trainer's device once; or any
        object with len() whose `[index_tensor]` returns a dense batch tensor (e.g. sparse rows, NpyShards), and
        which may regroup each epoch's shuffled order with `batch_order(order, batch_size, generator)`
        (sentences by length). x_train may also be a torch Dataset of single rows or an IterableDataset with
        len(), read by `workers` DataLoader processes (see vaekit.batches); x_val is read into memory.
        """
        with process_settings(self.device, flush_denormals=self.config.flush_denormals,
                              keep_freed_memory=self.config.keep_freed_memory), \
                deterministic_algorithms(self.config.deterministic):
            return self._fit(x_train, x_val)

    def _fit(self, x_train, x_val) -> list[dict]:
        # Long: the epoch loop reads as one story (checks, resume position, passes, the epoch's row, early stopping).
        cfg, group = self.config, self.group
        objective = group.wrap(self.vae)  # vae.loss; through DDP across processes
        if cfg.compile:
            objective = CompiledLoss(objective)
        if group.distributed and not splits_by_rank(x_train):
            raise ConfigError("this IterableDataset cannot be split among torchrun's processes: give .tar shards, "
                              ".npy shards, a datasets folder or a map-style Dataset, whose rows each rank reads its "
                              "share of")
        self._check_resumed_world(x_train)
        x_train = _on_device(x_train, self.device)
        x_val = _on_device(x_val, self.device) if x_val is not None and len(x_val) else None
        n, batch_size = len(x_train), min(cfg.batch_size, len(x_train))
        steps_per_epoch = math.ceil(n / batch_size)
        training_seconds = sum(row["epoch_seconds"] for row in self.history)
        self._check_legacy_steps(steps_per_epoch)
        profile = self.profile = StepProfile(sync=_synchronizer(self.device)) if cfg.profile else None
        while self.epoch < cfg.epochs:
            self.vae.train()
            if profile is not None:
                profile.mark()
            started = time.perf_counter()
            within, self.within_epoch = self.within_epoch, None
            sums, passes, bar = 0.0, 0, None
            seconds = within.seconds if within is not None else 0.0
            pass_counts = ((None, 1),) if self.alternate is None else tuple(zip(("encoder", "decoder"), self.alternate))
            passes_per_epoch = sum(count for _, count in pass_counts)
            for part, count in pass_counts:
                with updating_only(self.vae, part):
                    for _ in range(count):
                        if bar is not None:
                            bar.close()
                        # optimizer steps so far, over every pass: the weight average's clock
                        updates = (self.epoch * passes_per_epoch + passes) * steps_per_epoch
                        pass_sums, beta, bar = self._steps(objective, x_train, batch_size, steps_per_epoch,
                                                           training_seconds, within, started, updates)
                        sums, passes, within = sums + pass_sums, passes + 1, None
            synchronize(self.device)  # the epoch's time includes the GPU running its queued steps
            if profile is not None:
                profile.lap("other")
            seconds += time.perf_counter() - started
            if group.distributed:  # every rank takes the same decisions from the same numbers
                group.all_reduce(sums)
                seconds = group.all_reduce(torch.tensor([seconds], dtype=torch.float64), op="max").item()
            loss, reconstruction, kl = (sums / (n * passes)).tolist()
            if not all(map(math.isfinite, (loss, reconstruction, kl))):
                self._diverged(steps_per_epoch)
            self.epoch += 1
            row = {"epoch": self.epoch, "loss": loss, "reconstruction": reconstruction, "kl": kl, "beta": beta,
                   **getattr(self.vae, "epoch_statistics", dict)(),
                   "lr": self.optimizer.param_groups[0]["lr"], "epoch_seconds": seconds, "samples_per_s": n / seconds}
            if x_val is not None:
                self.scored.eval()
                row["val_neg_elbo"], row["val_reconstruction"], row["val_kl"] = negative_elbo(
                    self.scored, x_val, group=group)
            if self.probe is not None and (x_val is not None or self.monitor is not None):
                self.scored.eval()
                row.update(self.probe(self.scored, row))
            if bar is not None:
                bar.close()
                bar.write(_summary(row, cfg.epochs))
            training_seconds += seconds
            stop = self._end_epoch(row, x_val is not None or self.monitor is not None)
            # a budget, not a deadline: no epoch starts that would end past it at this epoch's pace
            stop = stop or 0 < cfg.time_limit * 60 < training_seconds + seconds
            if self.on_epoch and group.is_main:
                self.on_epoch(row)
            if stop:
                break
        if self.averaged is not None:  # the model fit returns is the average, as saved
            self.vae.load_state_dict(self.averaged.module.state_dict())
        if profile is not None and group.is_main:
            profile.mark()
            print(profile.table())
        group.barrier()  # rank 0's files are complete before any rank reads them
        return self.history

    def _steps(self, objective, x_train, batch_size: int, steps_per_epoch: int, training_seconds: float,
               within: EpochPosition | None, started: float, updates: int):
        """One pass's optimizer steps (from `within.step` on, for an epoch resumed mid-way): the example-weighted
        sums of loss, reconstruction and KL (on the device, read by the caller once), the last step's beta, and the
        progress bar (open, or None). `updates`: optimizer steps before the pass's first, over all passes (an
        alternating epoch makes several passes; the KL and learning-rate schedules count an epoch's steps once)."""
        # Long: one optimizer step with its profile laps in order; split, the laps would hide what a step does.
        cfg, group = self.config, self.group
        n = len(x_train)
        check_every = 1 if self.device.type == "cpu" else 50  # reading the loss syncs a GPU
        lap = self.profile.lap if self.profile is not None else _no_lap
        shuffle = self.shuffle.get_state()  # what a step checkpoint saves to draw this epoch's order again
        order = None if is_stream(x_train) else torch.randperm(n, generator=self.shuffle)  # the same on every rank
        if hasattr(x_train, "batch_order"):  # the data's own grouping, e.g. sentences of similar length
            order = x_train.batch_order(order, batch_size, self.shuffle)
        start = within.step if within is not None else 0
        if group.distributed:  # each rank its own noise, reproducible per epoch (and step checkpoint) whatever the history
            self._seed_rank(start)
        if torch.is_tensor(x_train):
            order = order.to(x_train.device)
        sums = within.sums.to(self.device) if within is not None else torch.zeros(3, device=self.device)
        terms = {"tc_weight": cfg.tc_weight, "dataset_size": n} if cfg.tc_weight > 0 else {}  # only for losses with it
        if self.tc_discriminator is not None:
            terms["tc_discriminator"] = self.tc_discriminator
        # time spent per step at the last epoch's pace: the same number on every rank and after a resume
        pace = self.history[-1]["epoch_seconds"] / steps_per_epoch if self.history else 0.0
        lap("data")
        bar = progress_bar(total=steps_per_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}") \
            if cfg.progress and group.is_main else None
        if bar is not None and start:
            bar.update(start)
        lap("progress bar")
        batches = epoch_batches(x_train, order, batch_size, start, group.shard, worker_count(cfg.workers), self.epoch,
                                group.rank, group.world_size, pin_memory=self.device.type == "cuda")
        for step, (batch, count, global_count) in zip(range(start, steps_per_epoch), batches):
            batch = batch.to(self.device, non_blocking=True)
            if self.dynamic_binarization:
                batch = binarize(batch)
            lap("data")
            global_step = self.epoch * steps_per_epoch + step
            beta = self.kl_weight(global_step, steps_per_epoch)
            weight = beta if self.kl_per_example is None else beta * self.kl_per_example(batch)
            if cfg.lr_schedule != "constant" or cfg.lr_warmup > 0:
                lr = self.learning_rate(global_step, steps_per_epoch, training_seconds + step * pace)
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = lr
            lap("other")
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                warm = {"standard_prior": True} if global_step < cfg.prior_warmup * steps_per_epoch else {}
                out = objective(batch, beta=weight, free_bits=cfg.free_bits, iw_samples=cfg.iw_samples, **terms, **warm)
            lap("forward")
            self.optimizer.zero_grad(set_to_none=True)
            loss = out.loss * group.loss_scale(count, global_count) if group.distributed else out.loss
            with group.guard("the gradient all-reduce"):
                loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.vae.parameters(), cfg.grad_clip)
            lap("backward")
            if step % check_every == 0:  # the one host read of the step: finiteness and the bar
                loss_value = float(out.loss.detach())
                if not math.isfinite(loss_value):
                    self._diverged(step)
                lap("host reads")
                if bar is not None and step % 50 == 0:
                    bar.set_postfix(loss=f"{loss_value:.2f}")
                    lap("progress bar")
            self.optimizer.step()
            if self.tc_discriminator is not None:  # on the draws the model's step took (Kim & Mnih 2018, alg. 1)
                self.tc_optimizer.zero_grad(set_to_none=True)
                self.tc_discriminator.loss(out.z).backward()
                self.tc_optimizer.step()
            if self.averaged is not None:
                self.averaged.update(self.vae, updates + step)
            lap("optimizer")
            sums += torch.stack([out.loss.detach(), out.reconstruction, out.kl]) * count
            lap("metrics and logging")
            if bar is not None:
                bar.update()
                lap("progress bar")
            if cfg.checkpoint_every > 0 and (global_step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                seconds = time.perf_counter() - started + (within.seconds if within is not None else 0.0)
                self._checkpoint_step(EpochPosition(step + 1, shuffle, sums, seconds, group.world_size))
                lap("metrics and logging")
            if self.profile is not None:
                self.profile.step()
        return sums, beta, bar

    def _checkpoint_step(self, position: EpochPosition) -> None:
        """A step checkpoint: every rank's sums so far go to rank 0, which saves them; under DDP every rank then
        reseeds its noise from the step, as a resume from this checkpoint does."""
        if self.group.distributed:
            totals = self.group.all_reduce(position.sums.clone())
            position = replace(position, sums=totals)
        self.save_checkpoint(position)
        if self.group.distributed:
            self._seed_rank(position.step)

    def _check_resumed_world(self, x_train) -> None:
        """A stream dealt to the ranks by shards (TarShards) is mid-epoch at a place in each rank's own shards, which
        another number of processes would split otherwise: such a step checkpoint resumes on its own number only."""
        within = self.within_epoch
        if within is None or within.world == self.group.world_size or not hasattr(x_train, "batch_bounds"):
            return
        raise ConfigError(f"the step checkpoint in {self.run_dir / STATE_DIR} was taken mid-epoch by {within.world} "
                          f"process(es), each reading its own .tar shards, and {self.group.world_size} would split the "
                          f"epoch's shards otherwise: resume it with {within.world} (torchrun --nproc-per-node "
                          f"{within.world}, or no torchrun for 1)")

    def _seed_rank(self, step: int) -> None:
        """Under DDP, this rank's noise from here on: a function of the seed, epoch, step and rank alone."""
        torch.manual_seed(self.config.seed + 1_000_003 * (self.epoch + 1) + 7919 * self.group.rank + 104_729 * step)

    @property
    def scored(self) -> nn.Module:
        """The model that validation scores and model.safetensors holds: the weights' average under --ema."""
        return self.averaged.module if self.averaged is not None else self.vae

    def _end_epoch(self, row: dict, has_val: bool) -> bool:
        """Log, keep the best weights, checkpoint; True when early stopping says stop."""
        if has_val:
            value = -row[self.monitor] if self.monitor is not None else row["val_neg_elbo"]  # lower is better
        improved = not has_val or value < self.best_val
        if has_val and improved:
            self.best_val, self.bad_epochs = value, 0
        elif has_val:
            self.bad_epochs += 1
        if improved:
            self.best_epoch = self.epoch
        self.history.append(row)
        self.save_checkpoint()
        return self.config.early_stopping > 0 and self.bad_epochs >= self.config.early_stopping

    def _check_legacy_steps(self, steps_per_epoch: int) -> None:
        """A checkpoint without a manifest is two files renamed one after the other: a kill between the renames left
        the tensors one epoch ahead of state.json. Adam's step count tells; resuming from such a pair is inexact."""
        if self.legacy_steps is not None and self.legacy_steps != self.epoch * steps_per_epoch:
            raise CheckpointError(
                f"{self.run_dir / STATE_DIR / STATE_TENSORS} holds {self.legacy_steps} optimizer steps but "
                f"{STATE_META} says {self.epoch} epochs of {steps_per_epoch}: the two files are from different epochs "
                "(a kill between their writes), so this run cannot resume exactly; retrain it")

    def _diverged(self, step: int) -> None:
        raise TrainingDiverged(
            f"the loss became NaN or infinite in epoch {self.epoch + 1} near step {step + 1}; the last good "
            "checkpoint is kept: lower --lr, set --grad-clip 10, or check the data for extreme values")


def _summary(row: dict, epochs: int) -> str:
    text = (f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.2f}  reconstruction {-row['reconstruction']:.2f}  "
            f"KL {row['kl']:.2f}")
    if "val_neg_elbo" in row:
        text += f"  validation -ELBO {row['val_neg_elbo']:.2f}"
    if "val_active_units" in row:
        text += f"  active units {row['val_active_units']}"
    return text + f"  ({row['epoch_seconds']:.1f} s, {row['samples_per_s']:,.0f} samples/s)"


def _no_lap(phase: str) -> None:
    """What a lap is when nothing is profiled."""


def _synchronizer(device: torch.device) -> Callable[[], None] | None:
    """What waits for a device's queued kernels (None on the CPU, whose kernels finish before they return)."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def _on_device(data, device: torch.device):
    return data.to(device) if torch.is_tensor(data) else data


