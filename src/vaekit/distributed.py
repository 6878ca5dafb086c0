"""Training across processes with PyTorch's DistributedDataParallel, launched by torchrun.

torchrun starts one process per device and sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT in each. The Trainer calls `from_environment`, which joins the process group those
variables describe (gloo on CPU, NCCL on CUDA) or, in a plain `python` process, returns a
one-process `Group` whose collectives do nothing, so the training loop has a single code path.

Data parallelism as the Trainer uses it: every rank draws the same permutation of the training
set each epoch, cuts the same global batch of `batch_size` indices, and keeps its contiguous share
(`Group.shard`); DDP averages the gradients, and `Group.loss_scale` weights each rank's batch-mean
loss so the average equals the gradient of the mean over the whole global batch, also when the
shares are unequal. Metrics are summed across ranks; only rank 0 writes files and logs.

A peer that dies or stops answering makes the next collective fail; the error is re-raised as a
one-line `DistributedError` after at most $VAEKIT_DIST_TIMEOUT seconds (default 300). The CLI then
leaves through `exit_process`, which skips the group's teardown.
"""

from __future__ import annotations

import atexit
import datetime
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .errors import VaekitError
from .vae import Loss

TIMEOUT_ENV = "VAEKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


class DistributedError(VaekitError):
    """The process group could not form, or a peer died or stopped responding."""


def world_size() -> int:
    """Processes in the job as torchrun describes it (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 outside torchrun); readable before the group is formed."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True in the one process that writes files and logs (rank 0)."""
    return rank() == 0


def timeout_seconds() -> float:
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"${TIMEOUT_ENV} must be a positive number of seconds, got '{text}'")
    return value


@dataclass(frozen=True)
class Group:
    """This process's place in a data-parallel job; world_size 1 is a plain single process."""

    rank: int
    world_size: int
    device: torch.device
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, index: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's contiguous share of one global batch of indices, and how many examples it counts.

        Shares differ in size by at most one. A rank whose share is empty (a last batch smaller than
        the world) still has to join the gradient all-reduce: it gets the batch's first index and a
        count of 0, so its loss is weighted by 0.
        """
        if not self.distributed:
            return index, len(index)
        part = index.tensor_split(self.world_size)[self.rank]
        return (part, len(part)) if len(part) else (index[:1], 0)

    def loss_scale(self, count: int, global_count: int) -> float:
        """Weight of a rank's batch-mean loss so that DDP's gradient average, (1/W) sum_r grad_r, is
        the gradient of the mean over the global batch: count * W / global_count (1 in one process)."""
        return count * self.world_size / global_count

    def span(self, n: int) -> range:
        """This rank's contiguous share of range(n), e.g. for evaluation."""
        size, extra = divmod(n, self.world_size)  # the first `extra` ranks take one more, as tensor_split
        start = self.rank * size + min(self.rank, extra)
        return range(start, start + size + (self.rank < extra))

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Sum (or max) `tensor` across ranks, in place; returns it."""
        if self.distributed:
            import torch.distributed as dist

            with self.guard(f"all-reduce ({op})"):
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            with self.guard("barrier"):
                dist.barrier()

    def wrap(self, vae: nn.Module):
        """A callable with vae.loss's signature; across processes it runs through DDP so that
        backward() averages the gradients over ranks."""
        if not self.distributed:
            return vae.loss
        from torch.nn.parallel import DistributedDataParallel

        with self.guard("broadcast of the initial weights"):
            ddp = DistributedDataParallel(_Objective(vae), device_ids=[self.device.index]
                                          if self.device.type == "cuda" else None)

        def loss(x, **kwargs):
            return Loss(*ddp(x, **kwargs))

        return loss

    @contextmanager
    def guard(self, what: str):
        """Re-raise a failed collective (a peer died, hung, or the network broke) as DistributedError."""
        if not self.distributed:
            yield
            return
        try:
            yield
        except RuntimeError as err:
            if not _is_communication_error(err):
                raise
            detail = _first_sentence(err)
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed because another process died or did not "
                f"answer within {self.timeout_s:g} s ({detail}); read the other ranks' logs for the first error, "
                f"then restart with --resume (any number of processes)") from err


class _Objective(nn.Module):
    """vae.loss as a forward(), the entry point DDP hooks into; returns (loss, reconstruction, kl)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.vae.loss(x, **kwargs)
        return out.loss, out.reconstruction, out.kl


def _first_sentence(err: BaseException) -> str:
    """'[.../pair.cc:553] Connection closed by peer [127.0.0.1]:21916. This is ...' -> 'Connection ... :21916'."""
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", str(err).strip().splitlines()[0] if str(err).strip() else "")
    return (text.split(". ")[0][:160] or type(err).__name__).rstrip(".")


def _is_communication_error(err: RuntimeError) -> bool:
    import torch.distributed as dist

    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "peer",
                                         "socket", "broken pipe"))


def from_environment(device: torch.device) -> Group:
    """The group torchrun describes in the environment, joined once (gloo on CPU, NCCL on CUDA);
    a one-process Group on `device` when WORLD_SIZE is unset or 1.

    Under torchrun with CUDA, a device without an index becomes cuda:LOCAL_RANK.
    """
    size = world_size()
    if size <= 1:
        return Group(0, 1, device)
    import torch.distributed as dist

    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timeout_seconds()
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise DistributedError(f"WORLD_SIZE={size} but MASTER_ADDR is not set: launch with torchrun "
                                   "(which sets it), or unset WORLD_SIZE for a single process")
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        except RuntimeError as err:
            raise DistributedError(
                f"rank {rank()} could not join the {size}-process group at {os.environ['MASTER_ADDR']}:"
                f"{os.environ.get('MASTER_PORT', '?')} within {timeout:g} s ({_first_sentence(err)}); check that "
                "every process started and that the address is reachable") from err
        atexit.register(_leave_group)
    group = Group(dist.get_rank(), dist.get_world_size(), device, timeout)
    if group.world_size != size:
        raise DistributedError(f"the process group has {group.world_size} ranks but WORLD_SIZE says {size}")
    return group


def exit_process(code: int) -> None:
    """End this process now with exit status `code`, its output flushed, if it joined a process group;
    return if it joined none. For a command-line process whose work is done or has failed.

    Tearing a gloo group down, in destroy_process_group or in the interpreter's own teardown, now and then
    aborts a process after its work and its error message ("terminate called without an active exception",
    SIGABRT, status 134 instead of vaekit's), most often when a peer hung: a thread of the group is still
    blocked on that peer. Rank 0 has written every file atomically by then, so the process skips teardown.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _leave_group() -> None:
    """Tear down the group this module joined before the interpreter exits, for a Python program that
    trains under torchrun (the CLI leaves through `exit_process` instead, before this runs)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
