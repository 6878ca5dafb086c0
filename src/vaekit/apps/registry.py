"""The loader of every saved kind, `LOADERS = {kind: loader(path, device)}`, behind `vaekit.load` and
`vaekit serve`. vaekit.saved holds the rest of the contract (the kinds, their legacy markers, the
messages); a new app names its kind there and its loader here.

Each loader imports its app when called: the CLI imports every module of vaekit.apps to build --help.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import CheckpointError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name, as the Hugging Face Hub spells a model
HUB_FILES = ["*.json", "*.jsonl", "*.safetensors", "*.md", "*.png"]  # what a saved folder holds: never a pickle


def _core(path, device: str):
    from .images import load_run

    return load_run(path, device=device)


def _audio(path, device: str):
    from .audio import load

    return load(path, device=device)


def _tabular(path, device: str):
    from ..tabular import TabularVAE

    return TabularVAE.load(path, device=device)


def _text(path, device: str):
    from ..text.model import load_text_model

    return load_text_model(path, device=device)


def _recommend(path, device: str):
    from ..recommend import api

    return api.load(path, device=device)


def _anomaly(path, device: str):
    from .anomaly import VAEAnomalyDetector

    return VAEAnomalyDetector.load(path, device=device)


LOADERS = {"core": _core, "audio": _audio, "tabular": _tabular, "text": _text, "recommend": _recommend,
           "anomaly": _anomaly}


def load(path, device: str = "auto"):
    """The model saved in the folder `path`, whatever its kind, on `device` ('auto': a GPU where there is
    one): a vaekit.Run (core), apps.audio.AudioModel, TabularVAE, text.model.TextModel,
    recommend.Recommender or VAEAnomalyDetector. A folder vaekit did not save is a CheckpointError.
    `path` may name a model on the Hugging Face Hub, "owner/name", when no such folder is here (`resolve`)."""
    from ..saved import saved_kind
    from ..devices import select_device

    path = resolve(path)
    return LOADERS[saved_kind(path)](path, str(select_device(device)))


def resolve(path) -> Path:
    """The local folder of `path`: itself where it exists or cannot be a Hub id, else the Hugging Face Hub's
    model "owner/name" downloaded (or found in huggingface_hub's cache) by `snapshot_download`, its
    json, safetensors, markdown and PNG files only. Needs huggingface_hub (`pip install 'vaekit[hub]'`)."""
    if Path(path).exists() or not HUB_ID.match(str(path)):
        return Path(path)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{path} is no folder here; to load the Hugging Face Hub model {path}, install "
                              "huggingface_hub: pip install 'vaekit[hub]'") from None
    try:
        return Path(snapshot_download(repo_id=str(path), allow_patterns=HUB_FILES))
    except Exception as err:  # huggingface_hub's errors: not found, gated, offline, ...
        raise CheckpointError(f"{path} is no folder here, and the Hugging Face Hub model {path} could not be "
                              f"fetched ({type(err).__name__}): check the name, or the network") from None
