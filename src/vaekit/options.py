"""A config's options, for any config dataclass: fields declared with `option`, the checks every value gets, the
flags made from the fields (`add_arguments`), their JSON form (`to_dict`, `from_dict`) and the one router of
keyword options to their configs (`route`). vaekit.config declares the core's configs with these and
re-exports them. This module imports no torch (fast --help)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
from collections.abc import Sequence
from dataclasses import field, fields

from .errors import ConfigError

SCALE_MODES = ("learned", "decoder")  # or a positive number: a fixed scale
MAX_INT = 2 ** 31 - 1  # no count, size or seed of a config is larger: a bigger one is a typo
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def option(default, help: str, cli: bool = True, short: str | None = None, flag: str | None = None,
           choices: Sequence[str] | None = None):
    """A config field with its CLI help. `cli=False` keeps it out of the command line; `flag` names its
    flag when that differs from the field's name (e.g. `seed` for scikit-learn's `random_state`);
    `choices` are the values its flag accepts."""
    return field(default=default, metadata={"help": help, "cli": cli, "short": short, "flag": flag,
                                            "choices": choices})


def flag_name(name: str) -> str:
    """The flag of a config field: latent_dim -> latent-dim."""
    return name.replace("_", "-")


def _declared(kind, value) -> bool:
    """Whether `value` has the declared type `kind` of a config field (what a hand-edited config.json may break)."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(_declared(args[0], item) for item in value)
    if type(None) in args:
        return value is None or any(_declared(arg, value) for arg in args if arg is not type(None))
    return True  # a field holding another config, or a type this check does not know


def check_values(config) -> None:
    """What every field of every config needs, whatever it means: a value of its declared type (a config.json
    edited by hand may say "four" for an int), a finite float, and an int (or each int of a list) within
    +-MAX_INT. Each config's `validate` starts here."""
    types = _field_types(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            continue
        if not _declared(types[f.name], value):
            raise ConfigError(f"{f.name} must be {_type_name(types[f.name])}, got {value!r}")
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"--{flag_name(f.name)} must be a finite number, got {item}")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
                raise ConfigError(f"--{flag_name(f.name)} {item} is beyond {MAX_INT:,}: give a smaller number")


def _type_name(kind) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(kind) is tuple:
        lists = {int: "a list of integers", float: "a list of numbers"}
        return lists.get(typing.get_args(kind)[0], "a list of strings")
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return f"{names.get(args[0], str(args[0]))} or null" if args else names.get(kind, str(kind))


def check_device(name: str, flag: str = "--device") -> None:
    """A device's name must be auto, cpu, mps, cuda or cuda:N; whether it is there is for the one that uses it."""
    if not DEVICE.match(str(name)):
        raise ConfigError(f"{flag} must be auto, cpu, cuda or cuda:N, got '{name}'")


def check_scale(value: str, flag: str) -> None:
    """A likelihood's scale: learned, decoder or a positive number (a fixed scale)."""
    if value in SCALE_MODES:
        return
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{flag} must be {', '.join(SCALE_MODES)} or a positive number, got '{value}'")


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """'64x64' -> (64, 64): the size --image-size resizes images to; None stays None."""
    if text is None:
        return None
    try:
        height, width = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"--image-size must look like 64x64, got '{text}'") from None
    if not (0 < height <= 65535 and 0 < width <= 65535):
        raise ConfigError(f"--image-size sides must be in 1..65535, got '{text}'")
    return height, width


def one_of(config, name: str, choices: Sequence[str]) -> None:
    if getattr(config, name) not in choices:
        raise ConfigError(f"--{flag_name(name)} must be one of {', '.join(choices)}, got '{getattr(config, name)}'")


def check_count(flag: str, value: int, minimum: int = 1, why: str = "") -> None:
    """ConfigError unless the count `value` of option `flag` is at least `minimum` (1: a positive integer, 0: a
    non-negative one; `why` says the reason of another minimum)."""
    if value < minimum:
        need = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"at least {minimum} ({why})")
        raise ConfigError(f"{flag} must be {need}, got {value}")


def parse_ints(text: str) -> tuple[int, ...]:
    """'64,32' -> (64, 32): the argparse type of a flag that lists sizes."""
    return _parse_list(text, int, "integers")


def parse_floats(text: str) -> tuple[float, ...]:
    """'0.15,0.75,0.1' -> (0.15, 0.75, 0.1): the argparse type of a flag that lists numbers."""
    return _parse_list(text, float, "numbers")


def _parse_list(text: str, kind, what: str) -> tuple:
    try:
        return tuple(kind(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got '{text}'") from None


def _field_types(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _parsed_type(kind):
    """The type a flag parses: int for a field typed `int | None`."""
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return args[0] if len(args) == 1 and type(None) in typing.get_args(kind) else kind


def add_arguments(parser: argparse.ArgumentParser, cls, base=None, only: Sequence[str] | None = None) -> None:
    """Add one flag per CLI field of config class `cls` (per field named in `only`, when given), its help
    showing the default of `base` (an instance of `cls` holding a use's own defaults) or else the field's;
    unset flags stay out of the namespace (`options_from` reads the ones given)."""
    types = _field_types(cls)
    for f in fields(cls):
        if not (f.name in only if only is not None else f.metadata.get("cli", True)):
            continue
        kind = _parsed_type(types[f.name])
        default = f.default if base is None else getattr(base, f.name)
        short = [f.metadata["short"]] if f.metadata.get("short") else []
        flags = [f"--{flag_name(f.metadata.get('flag') or f.name)}", *short]
        extra: dict = {"default": argparse.SUPPRESS, "help": f"{f.metadata['help']} (default: {_show(default)})"}
        if f.metadata.get("choices"):
            extra["choices"] = f.metadata["choices"]
        elif kind is bool:
            extra["action"] = argparse.BooleanOptionalAction
        elif kind == tuple[int, ...]:
            extra.update(type=parse_ints, metavar="N[,N...]")
        elif kind == tuple[float, ...]:
            extra.update(type=parse_floats, metavar="X[,X...]")
        elif kind == tuple[str, ...]:
            extra.update(action="append", metavar="VALUE")
        elif kind in (int, float):
            extra.update(type=kind, metavar=kind.__name__.upper())
        else:
            extra["metavar"] = "VALUE"
        parser.add_argument(*flags, dest=f"{cls.__name__}.{f.name}", **extra)


def options_from(args: argparse.Namespace, *classes) -> dict:
    """The options given on the command line through the flags `add_arguments` made for `classes`:
    {field name: value}."""
    prefixes = tuple(f"{cls.__name__}." for cls in classes)
    return {key.split(".", 1)[1]: value for key, value in vars(args).items() if key.startswith(prefixes)}


def from_args(cls, args: argparse.Namespace, base=None):
    """Build `cls` from the flags the user gave, on top of `base` (a preset or a saved config)."""
    return with_options(base or cls(), options_from(args, cls))


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def option_names(config) -> set[str]:
    """The option names of a config (class or instance): its fields', with a config it holds (a field whose
    default is a config) contributing that config's names in place of its own."""
    names: set[str] = set()
    for f in fields(config):
        names |= option_names(f.default) if dataclasses.is_dataclass(f.default) else {f.name}
    return names


def with_options(config, options: dict):
    """`config` with `options` set, lists as tuples; the options of a config it holds are set in that one."""
    changes = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            held = {key: v for key, v in options.items() if key in option_names(value)}
            if held:
                changes[f.name] = with_options(value, held)
        elif f.name in options:
            changes[f.name] = tuple(options[f.name]) if isinstance(options[f.name], list) else options[f.name]
    return dataclasses.replace(config, **changes)


def route(options: dict, *configs) -> tuple:
    """`configs` with each keyword option set in the config that has it, each validated: the one place
    where the keyword options of an API call (`train(latent_dim=8, epochs=5)`) reach their configs.
    An unknown name is a ConfigError listing the valid ones."""
    routed: list[dict] = [{} for _ in configs]
    for key, value in options.items():
        owner = next((i for i, config in enumerate(configs) if key in option_names(config)), None)
        if owner is None:
            valid = sorted(set().union(*map(option_names, configs)))
            raise ConfigError(f"unknown option '{key}': valid options are {', '.join(valid)}")
        routed[owner][key] = value
    configs = tuple(with_options(config, given) for config, given in zip(configs, routed))
    for config in configs:
        config.validate()
    return configs


def from_dict(cls, data: dict):
    """Rebuild a config from its JSON form; lists become tuples. Unknown keys and values of the wrong type are
    an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - option_names(cls)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}: the file comes from another vaekit version")
    config = with_options(cls(), data)
    check_values(config)
    return config


def to_dict(config) -> dict:
    """The JSON form of a config: tuples as lists, and the fields of a config it holds beside its own (one flat
    object, as `from_dict` reads it)."""
    data = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            data.update(to_dict(value))
        else:
            data[f.name] = list(value) if isinstance(value, tuple) else value
    return data
