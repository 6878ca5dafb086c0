"""The saved-model contract: every folder vaekit saves holds a config.json naming its `kind` (a key of
KINDS) and its `format_version` (an int the kind bumps when its files change), so a command can say what
a folder is before it reads the rest, and a folder of another kind is told which commands take it.

Each kind's loader starts with `read_config(path, KIND, FORMAT_VERSION)`; `vaekit.apps.registry` maps
every kind to its loader for `vaekit.load` and `vaekit serve`. Folders saved by vaekit 0.1.0, before the
contract, are recognised by the markers they carry (`saved_kind`). docs/architecture.md has the table.

Where a command writes is checked here too, before it works: a new model never replaces a saved one unless
the caller says `overwrite` (`check_new_folder`, then `clear_folder` just before the first write), and an
output file or folder must be one (`check_output_file`, `check_output_folder`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class Kind:
    """What a folder of one kind is, in the words its error messages use."""

    noun: str  # what a command wanted: "is not a text VAE"
    fit: str  # the command that writes such a folder
    commands: str  # the commands that take one


KINDS = {
    "core": Kind("a core VAE run", "vaekit train",
                 "vaekit eval|sample|reconstruct|interpolate|embed|report|denoise|superres|compress RUN"),
    "audio": Kind("an audio model", "vaekit audio fit", "vaekit audio sample|reconstruct|interpolate MODEL"),
    "tabular": Kind("a tabular model", "vaekit tabular fit", "vaekit tabular sample|encode|decode MODEL"),
    "text": Kind("a text VAE", "vaekit text fit",
                 "vaekit text sample|reconstruct|interpolate|embed|classify|predict|eval MODEL"),
    "recommend": Kind("a recommender", "vaekit recommend fit", "vaekit recommend evaluate|top MODEL"),
    "anomaly": Kind("an anomaly detector", "vaekit anomaly fit", "vaekit anomaly score|evaluate MODEL"),
}
EXTENDS = {"audio": "core"}  # an audio model is a core run plus audio.json: what takes a core run takes it too
LEGACY_KINDS = {"text-vae": "text", "vaekit.anomaly": "anomaly"}  # kinds vaekit 0.1.0 wrote under other names
LEGACY_TABULAR = "vaekit.tabular/1"  # 0.1.0's tabular config.json: {"format": this} instead of kind and version
LEGACY_AUDIO_FILE = "audio.json"  # 0.1.0's core runs named no kind; its audio models are core runs with this file


def saved_config(path, wanted: str | None = None) -> dict:
    """config.json of the saved folder `path`; a missing folder or file is a CheckpointError naming the
    command that writes a folder of kind `wanted` (None: any kind)."""
    from .checkpoint import CONFIG_FILE, read_json

    path = Path(path)
    writer = f"`{KINDS[wanted].fit}`" if wanted else "a vaekit command (`vaekit train`, `vaekit tabular fit`, ...)"
    if not path.is_dir():
        raise CheckpointError(f"{path} not found: pass a folder written by {writer}")
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"{path} has no {CONFIG_FILE}, so vaekit did not save it: pass a folder written by {writer}")
    return read_json(path / CONFIG_FILE)


def saved_kind(path, config: dict | None = None) -> str:
    """The kind of the saved folder `path` (with its config.json if already read); a kind this vaekit does
    not know is a CheckpointError listing the ones it does."""
    from .checkpoint import CONFIG_FILE

    config = saved_config(path) if config is None else config
    config = config if isinstance(config, dict) else {}
    kind = config.get("kind")
    if kind is None and config.get("format") == LEGACY_TABULAR:
        kind = "tabular"
    elif kind is None and "model" in config:
        kind = "audio" if (Path(path) / LEGACY_AUDIO_FILE).is_file() else "core"
    kind = LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else kind
    if not (isinstance(kind, str) and kind in KINDS):
        named = f"names the unknown kind {kind!r}" if kind is not None else "names no kind"
        raise CheckpointError(f"{Path(path) / CONFIG_FILE} {named}: this vaekit reads {', '.join(KINDS)} models; "
                              "a newer vaekit may have written it")
    return kind


def use_instead(found: str) -> str:
    """What a command tells a folder of kind `found` it cannot take."""
    article = "an" if found[0] in "aeiou" else "a"
    return f"this is {article} {found} model: use `{KINDS[found].commands}`"


def read_config(path, kind: str, format_version: int) -> dict:
    """config.json of `path`, a folder saved as `kind` (or a kind EXTENDS makes one) in `format_version`.
    Anything else is a CheckpointError saying what the folder is and what to do with it."""
    config = saved_config(path, kind)
    found = saved_kind(path, config)  # config is a dict from here on
    if kind not in (found, EXTENDS.get(found)):
        raise CheckpointError(f"{path} is not {KINDS[kind].noun}: {use_instead(found)}")
    version = config.get("format_version", 1 if config.get("format") == LEGACY_TABULAR else None)
    if version != format_version:
        raise CheckpointError(f"{path} holds {KINDS[found].noun} of format version {version}, this vaekit reads "
                              f"version {format_version}: refit it with `{KINDS[found].fit}`")
    return config


def check_new_folder(path, overwrite: bool = False, resume: bool = False) -> Path:
    """Before a command fits a model to save in the folder `path`: a file there, or a folder holding a saved
    model (of any kind) without `overwrite`, is a ConfigError; `resume` says the command can continue that model.
    A config.json vaekit cannot read is refused even with `overwrite`, since vaekit did not write the folder."""
    from .checkpoint import CONFIG_FILE

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file: pass a folder for the model (it is made if missing)")
    _check_parents(path)
    if not (path / CONFIG_FILE).exists():
        return path
    try:
        found = f"{KINDS[saved_kind(path)].noun}"
    except CheckpointError:
        raise ConfigError(f"{path} holds a {CONFIG_FILE} that vaekit cannot read: choose another folder") from None
    if not overwrite:
        resuming = "--resume to continue it, " if resume else ""
        raise ConfigError(f"{path} already holds a model: pass {resuming}--overwrite to replace it, or choose "
                          f"another folder (it holds {found})")
    return path


def clear_folder(path, overwrite: bool) -> None:
    """With `overwrite`, remove the saved model in `path` (checked by `check_new_folder`) just before a new one
    is written there, so that no file of the old one stays beside it."""
    from .checkpoint import CONFIG_FILE

    path = Path(path)
    if overwrite and (path / CONFIG_FILE).exists():
        saved_kind(path)  # only a folder vaekit saved is removed
        shutil.rmtree(path)


def check_output_file(path, suffixes: tuple[str, ...] = (), flag: str = "-o") -> Path:
    """An output file's path, after checking that it can be one: not a folder, below folders (not files), and
    ending in one of `suffixes` when given. An existing file is replaced, as a picture or a table is."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder: pass a file name{_example(path, suffixes)}")
    _check_parents(path, flag)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {path} must end in {' or '.join(suffixes)}")
    return path


def check_output_folder(path, flag: str = "-o") -> Path:
    """An output folder's path (made if missing), after checking that it is not a file. Files in it that the
    command writes are replaced."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file: pass a folder (it is made if missing)")
    _check_parents(path, flag)
    return path


def _check_parents(path: Path, flag: str = "") -> None:
    blocking = next((parent for parent in path.absolute().parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        named = f"{flag} {path}" if flag else str(path)
        raise ConfigError(f"{named}: {blocking} is a file, not a folder: pass another path")


def _example(path: Path, suffixes: tuple[str, ...]) -> str:
    return f", e.g. {path / ('output' + suffixes[0])}" if suffixes else ""
