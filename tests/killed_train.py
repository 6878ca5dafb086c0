"""`vaekit ARGS` killed by SIGKILL when it starts its optimizer step STEPS + 1, as a preemption would kill it:

    python tests/killed_train.py STEPS train --data ... --checkpoint-every N --out RUN

Used by tests/test_scale.py and benchmarks/scale.py (kill -9 at random steps, then --resume)."""

import os
import signal
import sys

from vaekit.cli import main
from vaekit.vae import VAE

loss, calls = VAE.loss, [0]


def dying(self, x, **kwargs):
    calls[0] += 1
    if calls[0] > int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return loss(self, x, **kwargs)


VAE.loss = dying
main(sys.argv[2:])
