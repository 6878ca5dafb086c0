"""Progress for long jobs: on a terminal, tqdm on stderr with its rate and ETA; elsewhere (a log file, a pipe) plain
lines, never a carriage-return redraw, and none at all for a job that ends quickly, so that short commands' output
stays what it was."""

from __future__ import annotations

import sys
import time

QUIET_SECONDS = 30.0  # off a terminal, a job this short prints no line: only long jobs need telling they progress
LINE_EVERY = 0.1  # ...and a long one prints a line per tenth of its total (per QUIET_SECONDS when it is unknown)


def progress_bar(iterable=None, total: int | None = None, desc: str = "", enabled: bool = True, unit: str = "it",
                 unit_scale: bool = False):
    """tqdm over `iterable` (or a bar to `update` by hand, of `total` steps) on a terminal, leaving no line behind
    when done; off a terminal, `ProgressLines` with the same methods; nothing shown when `enabled` is false."""
    if enabled and not sys.stderr.isatty():
        return ProgressLines(iterable, total, desc, unit, sys.stderr)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=False, dynamic_ncols=True,
                mininterval=0.5, disable=not enabled)


class ProgressLines:
    """A progress bar for a log: one plain line (count, percent, elapsed time, rate, postfix) each time a job that
    has run past `QUIET_SECONDS` crosses another `LINE_EVERY` of its total (another QUIET_SECONDS, when the total is
    unknown). Iterate it, or call `update`, `set_postfix`, `write` and `close` as on tqdm."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", unit: str = "it", file=None,
                 clock=time.monotonic):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.file, self.clock = file if file is not None else sys.stderr, clock
        self.n, self.postfix, self.started, self.shown = 0, "", clock(), -1

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        seconds = self.clock() - self.started
        mark = int(self.n / (self.total * LINE_EVERY)) if self.total else int(seconds / QUIET_SECONDS)
        if mark > self.shown and seconds >= QUIET_SECONDS:
            self.shown = mark
            self.file.write(self._line(seconds) + "\n")
            self.file.flush()

    def set_postfix(self, **figures) -> None:
        self.postfix = ", ".join(f"{name}={value}" for name, value in figures.items())

    def _line(self, seconds: float) -> str:
        """The figures tqdm's bar shows, as one line."""
        count = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total else \
            f"{self.n} {self.unit}"
        rate = f", {self.n / seconds:.2f} {self.unit}/s" if seconds > 0 else ""
        return (f"{self.desc}: " if self.desc else "") + f"{count} in {seconds:.0f} s{rate}" + \
            (f", {self.postfix}" if self.postfix else "")

    @staticmethod
    def write(text: str) -> None:
        """As tqdm.write: a line on stdout."""
        print(text, flush=True)

    def close(self) -> None:
        """Nothing to erase."""
