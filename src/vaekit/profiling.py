"""Where a training loop's time goes: wall time laps of its phases (`vaekit train --profile`).

A lap ends a phase: the time since the previous lap (or `mark`) is the named phase's, so every moment between
`mark` and the last lap counts once and the phases add up to the time measured around them. On a GPU, `sync`
(e.g. torch.cuda.synchronize) runs before each lap, so a phase's kernels count in it rather than in the next
phase that waits for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PHASES = ("data", "forward", "backward", "optimizer", "host reads", "progress bar", "metrics and logging", "other")


class StepProfile:
    """Seconds per phase of a training loop, and the steps they were spread over."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, sync: Callable[[], None] | None = None):
        self.clock, self.sync = clock, sync
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.steps = 0
        self.between = 0.0  # seconds outside the phases: validation, checkpoints, the epochs' ends
        self.last = clock()

    def mark(self) -> None:
        """Start timing here: the time since the last lap was spent outside the phases."""
        if self.sync is not None:
            self.sync()
        now = self.clock()
        self.between += now - self.last
        self.last = now

    def lap(self, phase: str) -> None:
        """The time since the last lap or mark was spent in `phase` (one of PHASES)."""
        if self.sync is not None:
            self.sync()
        now = self.clock()
        self.seconds[phase] += now - self.last
        self.last = now

    def step(self) -> None:
        """Count one training step."""
        self.steps += 1

    @property
    def total(self) -> float:
        """Seconds in all phases together."""
        return sum(self.seconds.values())

    def table(self) -> str:
        """The phases as lines of milliseconds per step and shares of the total."""
        steps, total = max(1, self.steps), self.total or 1.0
        lines = [f"where the training steps' time went ({self.steps:,} steps, {self.total:.2f} s):",
                 f"  {'phase':<20} {'ms/step':>8} {'share':>7}"]
        for phase, seconds in (*self.seconds.items(), ("total", self.total)):
            lines.append(f"  {phase:<20} {1000 * seconds / steps:>8.3f} {100 * seconds / total:>6.1f}%")
        lines.append(f"  and {self.between:.2f} s outside the steps (validation, checkpoints, logging between epochs)")
        return "\n".join(lines)
