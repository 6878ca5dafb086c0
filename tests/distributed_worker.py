"""A tiny training job for tests/test_distributed.py, run under torchrun (or with WORLD_SIZE/RANK set).

    python tests/distributed_worker.py RUN_DIR EPOCHS [--resume] [--shards DIR | --tar DIR] [--checkpoint-every STEPS] [--variant]
        [--die-rank R --die-step S [--die-signal SIGSTOP]]

--codebook takes 5 EMA steps of a VQ codebook instead, each rank on its share of fixed vectors, and rank 0 writes the
codebook and its usage and perplexity to RUN_DIR/codebook.safetensors (issue 43: the steps and the figures must be
those of one process on all the vectors).

--variant trains with a learned mixture prior (issue 42), whose parameters DDP must average too. (A flow
posterior cannot join this comparison: with a scale of exp(-15), its Monte-Carlo log q(z) has gradients of
~1e6 that cancel only up to float rounding, which then differs between one process and two.)

The encoder's scale is fixed at exp(-15), so the reparameterization noise is ~3e-7: the runs
are deterministic up to float rounding and one process can be compared with several.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from torch import nn

from vaekit.config import TrainConfig
from vaekit.likelihoods import build_likelihood
from vaekit.networks import MLP
from vaekit.priors import MixtureOfGaussians, StandardNormal
from vaekit.training import Trainer
from vaekit.vae import VAE

N, D, LATENT = 120, 10, 3
CONFIG = dict(batch_size=33, lr=1e-2, seed=0, progress=False, device="cpu")


class NearlyDeterministic(nn.Module):
    """Encoder whose log-variance is a constant -30."""

    def __init__(self):
        super().__init__()
        self.net = MLP((D,), (16,), (LATENT,), "tanh")

    def forward(self, x):
        loc = self.net(x)
        return torch.cat([loc, torch.full_like(loc, -30.0)], -1)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.rand(N, D, generator=generator) * 0.8 + 0.1, generator=generator)
    return x[:100], x[100:]


def build(variant: bool = False) -> VAE:
    torch.manual_seed(0)
    prior = MixtureOfGaussians(LATENT, components=4) if variant else StandardNormal(LATENT)
    return VAE(NearlyDeterministic(), MLP((LATENT,), (16,), (D,), "tanh"), build_likelihood("bernoulli", (D,)),
               prior)


def codebook_steps(run_dir: str, steps: int = 5) -> int:
    """EMA steps of a VectorQuantizer on this rank's share of 40 fixed vectors; rank 0 saves the codebook."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from vaekit.bottlenecks import VectorQuantizer

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    vq = VectorQuantizer(latent_dim=2, codebook_size=4, code_dim=2, decay=0.5)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [3.0, 3.0], [-3.0, 0.0], [0.0, -3.0]]))
    vq.embed_sum.copy_(vq.embed)
    vq.cluster_size.fill_(10.0)  # far from dead: no restart draws from a rank's own vectors
    vq.initialized.fill_(True)
    h = torch.randn(40, 2, generator=torch.Generator().manual_seed(1)) * 2
    for _ in range(steps):
        vq(h[rank::world])
    stats = vq.epoch_statistics()  # every rank: the counts are all-reduced
    if rank == 0:
        os.makedirs(run_dir, exist_ok=True)
        figures = torch.tensor([stats["codebook_usage"], stats["perplexity"]], dtype=torch.float64)
        save_file({"embed": vq.embed, "cluster_size": vq.cluster_size, "statistics": figures},
                  os.path.join(run_dir, "codebook.safetensors"))
    if world > 1:
        dist.barrier()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("epochs", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--die-rank", type=int, default=-1)
    parser.add_argument("--die-step", type=int, default=0)
    parser.add_argument("--die-signal", default="SIGKILL", help="SIGSTOP makes a hung rank instead of a dead one")
    parser.add_argument("--shards", default=None, help="read the training rows from these .npy shards")
    parser.add_argument("--tar", default=None, help="read the training rows from the WebDataset .tar shards here")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every this many steps")
    parser.add_argument("--variant", action="store_true", help="a learned mixture prior")
    parser.add_argument("--codebook", action="store_true", help="EMA steps of a VQ codebook, no training")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.codebook:
        return codebook_steps(args.run_dir)
    vae = build(args.variant)
    if int(os.environ.get("RANK", "0")) == args.die_rank:
        steps = [0]
        loss = vae.loss

        def dying(x, **kwargs):
            steps[0] += 1
            if steps[0] > args.die_step:
                os.kill(os.getpid(), getattr(signal, args.die_signal))
            return loss(x, **kwargs)

        vae.loss = dying
    trainer = Trainer(vae, TrainConfig(epochs=args.epochs, checkpoint_every=args.checkpoint_every, workers=0, **CONFIG),
                      args.run_dir)
    if args.resume:
        trainer.resume()
    x_train, x_val = data()
    if args.shards:
        from vaekit.data.shards import NpyShards

        x_train = NpyShards(args.shards)
    if args.tar:
        from vaekit.data.streams import TarShards

        x_train = TarShards(args.tar)
    try:
        trainer.fit(x_train, x_val)
    except Exception as err:  # the CLI's behaviour: one line, exit 2
        from vaekit.errors import VaekitError

        if not isinstance(err, VaekitError):
            raise
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    # Known, unsolved: about 1 run in 4 a finished rank aborts in interpreter teardown ("terminate called
    # without an active exception", after its work and files are complete). These tests check training,
    # not teardown, so the worker leaves without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
