"""Config files: the options of a run as a JSON or YAML file users edit (`vaekit config RUN`) and give back
(`vaekit train --config FILE`, where flags given on the command line win). A run's own config.json is such a
file, so `--config RUN/config.json` repeats that run. YAML needs PyYAML (`pip install 'vaekit[yaml]'`); JSON
needs nothing. This module imports no torch (fast --help)."""

from __future__ import annotations

import difflib
import json
from dataclasses import fields
from pathlib import Path

from .config import option_names, to_dict
from .errors import ConfigError

FORMATS = ("json", "yaml")
YAML_SUFFIXES = (".yaml", ".yml")
SECTIONS = ("model", "train", "data")  # how config.json and `vaekit config` group the options
METADATA = ("kind", "format_version", "vaekit_version")  # what a saved config.json says about itself


def _yaml():
    try:
        import yaml
    except ImportError:
        raise ConfigError("YAML config files need PyYAML: pip install 'vaekit[yaml]', or use a .json file") from None
    return yaml


def read_options(path, *configs) -> dict:
    """The options in the config file `path` (JSON, or YAML by its .yaml/.yml suffix) as {option: value}, each
    an option of one of `configs` (classes or instances). The file holds one flat mapping, or sections (model,
    train, data) as a run's config.json does; that file's kind and format_version are read past. An unknown
    option is a ConfigError naming the nearest valid one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path} not found: pass a .json or .yaml file (`vaekit config RUN` writes one)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = _yaml().safe_load(text) if path.suffix.lower() in YAML_SUFFIXES else json.loads(text)
    except ValueError as err:
        raise ConfigError(f"--config {path} is not valid JSON ({err}): fix the file or write it as .yaml") from None
    except Exception as err:  # yaml.YAMLError, without importing yaml when the file is JSON
        if type(err).__module__.split(".")[0] != "yaml":
            raise
        raise ConfigError(f"--config {path} is not valid YAML ({str(err).splitlines()[0]}): fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of options, got {type(data).__name__}")
    options = {}
    for key, value in data.items():
        if key in METADATA:
            continue
        if key in SECTIONS and isinstance(value, dict):
            options.update(value)
        else:
            options[key] = value
    valid = sorted(set().union(*map(option_names, configs)))
    for key in options:
        if key not in valid:
            near = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"valid options are {', '.join(valid)}"
            raise ConfigError(f"--config {path}: unknown option '{key}': {hint}")
    return options


def editable(config) -> dict:
    """The JSON form of `config` (`config.to_dict`) without the fields no flag sets (those set from the data)."""
    hidden = {f.name for f in fields(config) if not f.metadata.get("cli", True)}
    return {key: value for key, value in to_dict(config).items() if key not in hidden}


def dump(data: dict, format: str = "json") -> str:
    """`data` (plain JSON values) as the text of a config file in `format` (json or yaml)."""
    if format == "yaml":
        return _yaml().safe_dump(data, sort_keys=False, default_flow_style=False)
    if format == "json":
        return json.dumps(data, indent=2) + "\n"
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got '{format}'")
