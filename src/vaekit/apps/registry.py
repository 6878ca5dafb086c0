"""The loader of every saved kind, `LOADERS = {kind: loader(path, device)}`, behind `vaekit.load` and
`vaekit serve`. vaekit.saved holds the rest of the contract (the kinds, their legacy markers, the
messages); a new app names its kind there and its loader here.

Each loader imports its app when called: the CLI imports every module of vaekit.apps to build --help.
"""

from __future__ import annotations


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
    recommend.Recommender or VAEAnomalyDetector. A folder vaekit did not save is a CheckpointError."""
    from ..saved import saved_kind
    from ..devices import select_device

    return LOADERS[saved_kind(path)](path, str(select_device(device)))
