"""What every use's flags are made of: a subcommand with an example under its --help, a command whose verbs
are subcommands, and a flag for a parameter of an API function, whose default is the function's own (written
once, in the API, and shown in --help). Flags for config fields come from `config.add_arguments`."""

from __future__ import annotations

import argparse
import inspect

from ..errors import ConfigError


def add_command(subparsers, name: str, help: str, example: str, description: str | None = None):
    """A subcommand with its one-line help and an example under --help."""
    return subparsers.add_parser(name, help=help, description=description or help, epilog=f"example:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def add_verbs(subparsers, name: str, help: str, description: str, dest: str = "verb"):
    """`vaekit NAME VERB ...`: a command whose verbs are subcommands (add them to what this returns). Without a
    verb it names them in a one-line error."""
    parser = subparsers.add_parser(name, help=help, description=description)
    verbs = parser.add_subparsers(dest=dest, metavar="VERB")

    def missing_verb(args: argparse.Namespace):
        raise ConfigError(f"'vaekit {name}' needs a verb: {', '.join(verbs.choices)} (see vaekit {name} --help)")

    parser.set_defaults(handler=missing_verb)
    return verbs


def add_parameter(parser, function, name: str, *flags: str, help: str, **options) -> None:
    """A flag for parameter `name` of API function `function`, its default the function's own: shown in
    --help unless it is None (the help then says what happens) or False (a switch). Its type is the default's
    unless `options` say otherwise."""
    default = inspect.signature(function).parameters[name].default
    if isinstance(default, bool):
        options.setdefault("action", argparse.BooleanOptionalAction if default else "store_true")
    elif default is not None and "action" not in options:
        options.setdefault("type", type(default))
    if default is not None and default is not False:
        help = f"{help} (default: {','.join(map(str, default)) if isinstance(default, tuple) else default})"
    parser.add_argument(*(flags or (f"--{name.replace('_', '-')}",)), dest=name, default=default, help=help, **options)
