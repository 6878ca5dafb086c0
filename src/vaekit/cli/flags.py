"""What every use's flags are made of: subcommands with an example under their --help, a command whose verbs
are subcommands, and a flag for a parameter of an API function, whose default is the function's own (written
once, in the API, and shown in --help). Flags for config fields come from `config.add_arguments`."""

from __future__ import annotations

import argparse
import inspect

from ..errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, as vaekit's own are: the problem, then where the usage is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def empty_argument(argv: list[str]) -> str | None:
    """The message for the first empty argument of a command line (an unset shell variable, most often): no flag
    or positional of vaekit takes an empty value. None if there is none."""
    if "" not in argv:
        return None
    where = argv.index("")
    after = f" after {argv[where - 1]}" if where and argv[where - 1].startswith("-") else ""
    return f"an empty argument{after}: give a value (an unset shell variable?)"


def command_maker(subparsers, examples: dict[str, str]):
    """make(name, help): a subcommand of `subparsers` with its one-line help and, under its --help, its
    example from `examples`."""
    def make(name: str, help: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help, description=help, epilog=f"example:\n  {examples[name]}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)

    return make


def add_verbs(subparsers, name: str, help: str, description: str, examples: dict[str, str], dest: str = "verb"):
    """`vaekit NAME VERB ...`: a command whose verbs are subcommands, with their examples from `examples`.
    Returns make(verb, help), as `command_maker` does. Without a verb the command names them in a one-line
    error."""
    parser = subparsers.add_parser(name, help=help, description=description)
    verbs = parser.add_subparsers(dest=dest, metavar="VERB")

    def missing_verb(args: argparse.Namespace):
        raise ConfigError(f"'vaekit {name}' needs a verb: {', '.join(verbs.choices)} (see vaekit {name} --help)")

    parser.set_defaults(handler=missing_verb)
    return command_maker(verbs, examples)


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


def add_overwrite(parser, function) -> None:
    """--overwrite, the one flag of every command that saves a model: without it a folder that already holds a
    saved model is refused."""
    add_parameter(parser, function, "overwrite", help="replace the model already saved in the output folder "
                  "(without it such a folder is refused)")
