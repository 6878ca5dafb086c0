"""The command line, `vaekit COMMAND`: one module per use in this package, each holding only the flags of that
use's subcommands and a call into its API in vaekit.apps (docs/architecture.md). No logic lives only here.

Every module here imports without torch (the apps import it inside their functions; cli/compression.py imports
its API, which needs torch at import, when a command runs), so `vaekit --help` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import warnings
from pathlib import Path

from ..errors import VaekitError
from . import anomaly, audio, compression, export, hub, images, recommend, restoration, serve, tabular, text
from .flags import Parser, empty_argument

# The subcommand table: each use adds its subcommands, in this order under `vaekit --help`.
USES = (images, anomaly, audio, compression, export, hub, recommend, restoration, serve, tabular, text)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vaekit", description="Variational autoencoders: train, evaluate, "
                                     "sample, reconstruct, interpolate, embed.")
    parser.add_argument("--version", action="version", version=f"vaekit {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for use in USES:
        use.add_commands(subparsers)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"vaekit: warning: {str(message).strip().splitlines()[0]}", file=sys.stderr)


def _no_space(err: OSError, args: argparse.Namespace) -> str:
    where = Path(err.filename).parent if err.filename else "the disk"
    again = " with --resume" if getattr(args, "resume", None) is not None else ""
    return f"no space left on {where}; free space and rerun{again}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if message := empty_argument(argv):
        parser.error(message)
    code = _run(parser.parse_args(argv))
    if distributed := sys.modules.get("vaekit.distributed"):  # only a command that trained can have joined a group
        distributed.exit_process(code)
    return code


def _run(args: argparse.Namespace) -> int:
    from ..distributed import is_main_process

    with warnings.catch_warnings(), _quiet_unless(is_main_process()):
        warnings.showwarning = _one_line_warning  # a warning is one line too; catch_warnings puts theirs back
        try:
            written = args.handler(args)
        except VaekitError as err:
            print(f"vaekit: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            print(f"vaekit: error: {_no_space(err, args)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("vaekit: interrupted; the last completed checkpoint is intact (resume with --resume)",
                  file=sys.stderr)
            return 130
        for path in written if isinstance(written, tuple) else (written,):
            if path is not None:
                print(f"wrote {path}")
    return 0


@contextlib.contextmanager
def _quiet_unless(main: bool):
    """Under torchrun only rank 0 prints results and summaries: the other ranks' stdout goes nowhere (their errors
    and warnings still reach stderr)."""
    if main:
        yield
        return
    with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):
        yield
