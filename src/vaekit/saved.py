"""The saved-model contract: every folder vaekit saves holds a config.json naming its `kind` (a key of
KINDS) and its `format_version` (an int the kind bumps when its files change), so a command can say what
a folder is before it reads the rest, and a folder of another kind is told which commands take it.

Each kind's loader starts with `read_config(path, KIND, FORMAT_VERSION)`; `vaekit.apps.registry` maps
every kind to its loader for `vaekit.load` and `vaekit serve`. Folders saved by vaekit 0.1.0, before the
contract, are recognised by the markers they carry (`saved_kind`). docs/architecture.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError


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
