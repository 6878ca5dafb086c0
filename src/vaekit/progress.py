"""Progress bars for long jobs: tqdm on stderr with its rate and ETA, shown on a terminal only, so that output piped
into a file or another program stays what it was."""

from __future__ import annotations


def progress_bar(iterable=None, total: int | None = None, desc: str = "", enabled: bool = True, unit: str = "it"):
    """tqdm over `iterable` (or a bar to `update` by hand, of `total` steps): off when `enabled` is false or stderr
    is no terminal; it leaves no line behind when done."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, mininterval=0.5,
                disable=None if enabled else True)
