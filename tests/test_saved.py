"""The saved-model contract (vaekit.saved): every saved folder's config.json names its kind and format
version; the folders vaekit 0.1.0 wrote (tests/fixtures/saved, made by commit 4103566) still load; a
folder of the wrong kind, of an unknown kind or without config.json is told so in one line."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pandas")
pytest.importorskip("scipy")

from vaekit.cli import main  # noqa: E402
from vaekit.errors import CheckpointError  # noqa: E402
from vaekit.saved import KINDS, read_config, saved_kind  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "saved"
VERSIONS = {"core": 1, "audio": 1, "tabular": 1, "text": 1, "recommend": 1, "anomaly": 2}
# What vaekit 0.1.0 wrote instead of today's kind and format_version.
LEGACY_MARKS = {"core": {}, "audio": {}, "tabular": {"format": "vaekit.tabular/1"}, "text": {"kind": "text-vae"},
                "recommend": {"kind": "recommend"}, "anomaly": {"kind": "vaekit.anomaly"}}


def own_loader(kind: str):
    """Each kind's own loader, as its commands call it."""
    from vaekit import recommend
    from vaekit.apps import anomaly, audio
    from vaekit.apps import images as runs
    from vaekit.tabular import TabularVAE
    from vaekit.text.model import load_text_model

    return {"core": lambda path: runs.load_run(path, device="cpu"), "audio": lambda path: audio.load(path, "cpu"),
            "tabular": lambda path: TabularVAE.load(path, device="cpu"), "text": load_text_model,
            "recommend": lambda path: recommend.load(path, device="cpu"),
            "anomaly": anomaly.VAEAnomalyDetector.load}[kind]


def use(kind: str, model):
    """One natural call on a loaded model, deterministic, as a list or array to compare."""
    from vaekit import recommend
    from vaekit.apps import text

    z = torch.zeros(1, 2)
    with torch.no_grad():
        return {"core": lambda: model.vae.decode_mean(z).numpy(), "audio": lambda: model.decode(z),
                "tabular": lambda: model.sample(4, seed=0).to_numpy().tolist(),
                "text": lambda: text.sample(model, 2, method="greedy"),
                "recommend": lambda: recommend.top(model, user="u0", k=2),
                "anomaly": lambda: model.decision_function(np.zeros((2, 3), np.float32))}[kind]()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A copy of the fixtures: no test may write into the repository."""
    root = tmp_path_factory.mktemp("saved")
    for kind in KINDS:
        shutil.copytree(FIXTURES / kind, root / kind)
    return root


def test_fixtures_are_vaekit_0_1_0_folders_of_every_kind():
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(KINDS) == sorted(VERSIONS)
    for kind, marks in LEGACY_MARKS.items():
        config = json.loads((FIXTURES / kind / "config.json").read_text())
        assert {key: config.get(key) for key in marks} == marks and config.get("kind") in (None, marks.get("kind"))
    size = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    assert size < 200_000, f"the fixtures grew to {size} bytes"


@pytest.mark.parametrize("kind", sorted(VERSIONS))
def test_legacy_folder_loads_with_its_own_loader(saved, kind):
    assert saved_kind(saved / kind) == kind
    assert read_config(saved / kind, kind, VERSIONS[kind])
    result = use(kind, own_loader(kind)(saved / kind))
    assert len(result) == (1 if kind in ("core", "audio") else 2 if kind in ("text", "recommend", "anomaly") else 4)


@pytest.mark.parametrize("kind", ["tabular", "text", "recommend", "anomaly"])
def test_a_legacy_model_saved_again_names_kind_and_version_and_gives_the_same_answers(saved, tmp_path, kind):
    from vaekit import recommend

    old = own_loader(kind)(saved / kind)
    folder = tmp_path / kind
    if kind == "text":  # the Trainer writes a text model's weights; save() adds config.json and the vocabulary
        shutil.copytree(saved / kind, folder)
    recommend.save(old, folder) if kind == "recommend" else old.save(folder)
    config = json.loads((folder / "config.json").read_text())
    assert (config["kind"], config["format_version"]) == (kind, VERSIONS[kind]) and "format" not in config
    assert np.array_equal(np.asarray(use(kind, own_loader(kind)(folder)), dtype=object),
                          np.asarray(use(kind, old), dtype=object))


def _fit_core(out: Path):
    from vaekit.apps import images as runs

    x = (torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float().numpy()
    runs.train(out, data=x, epochs=1, network="conv", conv_channels=(2, 4), latent_dim=2, progress=False,
               device="cpu")


def _fit_audio(out: Path):
    from vaekit.apps import audio
    from vaekit.data.audio import SpectrogramFormat

    fmt = SpectrogramFormat(sample_rate=8000, clip_samples=1024, hop=64)
    t = np.arange(fmt.clip_samples) / fmt.sample_rate
    clips = np.stack([np.sin(2 * np.pi * f * t) * 0.5 for f in (220.0, 330.0, 440.0, 550.0)]).astype(np.float32)
    audio.fit_clips(clips, None, out, fmt, epochs=1, latent_dim=2, conv_channels=(2, 4), batch_size=4,
                    progress=False, device="cpu")


@pytest.mark.parametrize("kind, fit", [("core", _fit_core), ("audio", _fit_audio)])
def test_a_new_run_names_kind_and_version(tmp_path, kind, fit):
    fit(tmp_path / kind)
    config = json.loads((tmp_path / kind / "config.json").read_text())
    assert (config["kind"], config["format_version"]) == (kind, VERSIONS[kind])
    assert saved_kind(tmp_path / kind) == kind and len(use(kind, own_loader(kind)(tmp_path / kind))) == 1


# Every command that takes a saved folder, given a folder of another kind (WRONG[kind]).
WRONG = {"core": "tabular", "audio": "core", "tabular": "text", "text": "recommend", "recommend": "anomaly",
         "anomaly": "audio"}
COMMANDS = [
    ("core", ["eval", "{}"]), ("core", ["sample", "{}"]), ("core", ["reconstruct", "{}"]),
    ("core", ["interpolate", "{}"]), ("core", ["embed", "{}"]), ("core", ["report", "{}"]),
    ("core", ["denoise", "{}", "{data}", "-o", "{out}"]),
    ("core", ["superres", "{}", "{data}", "-o", "{out}"]), ("core", ["restore-eval", "{}"]),
    ("core", ["compress", "{}", "{data}", "-o", "{out}"]), ("core", ["decompress", "{}", "{data}", "-o", "{out}"]),
    ("core", ["train", "--out", "{}", "--resume"]),
    ("audio", ["audio", "sample", "{}"]), ("audio", ["audio", "reconstruct", "{}", "{data}"]),
    ("audio", ["audio", "interpolate", "{}", "{data}", "{data}"]),
    ("tabular", ["tabular", "sample", "{}", "-o", "{out}"]),
    ("tabular", ["tabular", "encode", "{}", "{data}", "-o", "{out}"]),
    ("tabular", ["tabular", "decode", "{}", "{codes}", "-o", "{out}"]),
    ("text", ["text", "sample", "{}"]), ("text", ["text", "reconstruct", "{}", "a b"]),
    ("text", ["text", "interpolate", "{}", "a", "b"]), ("text", ["text", "embed", "{}", "{data}"]),
    ("text", ["text", "classify", "{}", "{data}"]), ("text", ["text", "predict", "{}", "{sentences}"]),
    ("text", ["text", "eval", "{}", "{data}"]), ("text", ["text", "fit", "{data}", "-o", "{}", "--resume"]),
    ("recommend", ["recommend", "evaluate", "{}"]), ("recommend", ["recommend", "top", "{}", "--user", "u0"]),
    ("anomaly", ["anomaly", "score", "{}", "{data}", "-o", "{out}"]),
    ("anomaly", ["anomaly", "evaluate", "{}", "{data}"]),
]


def _run(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("wanted, argv", COMMANDS, ids=[" ".join(a[:2]) for _, a in COMMANDS])
def test_a_folder_of_another_kind_is_told_which_commands_take_it(saved, tmp_path, capsys, wanted, argv):
    found = WRONG[wanted]
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "codes.csv").write_text("1,2\n")
    (tmp_path / "sentences.txt").write_text("a b\n")
    fill = {name: str(tmp_path / file) for name, file in (("data", "data.csv"), ("codes", "codes.csv"),
                                                          ("sentences", "sentences.txt"), ("out", "out"))}
    err = _run([a.format(saved / found, **fill) for a in argv], capsys)
    article = "an" if found in ("audio", "anomaly") else "a"
    assert f"is not {KINDS[wanted].noun}: this is {article} {found} model: use `{KINDS[found].commands}`" in err


def test_every_kind_has_a_command_in_the_wrong_kind_table():
    assert set(WRONG) == set(KINDS) == {kind for kind, _ in COMMANDS}


def test_an_audio_model_is_a_core_run_too(saved, tmp_path):
    assert main(["sample", str(saved / "audio"), "-n", "2", "-o", str(tmp_path / "samples.png")]) == 0


def test_unknown_kind_missing_config_and_newer_format(saved, tmp_path, capsys):
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "config.json").write_text('{"kind": "video", "format_version": 1}')
    err = _run(["sample", str(tmp_path / "future")], capsys)
    assert "unknown kind 'video'" in err and all(kind in err for kind in KINDS)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"weights": 1}')
    assert "names no kind" in _run(["tabular", "sample", str(tmp_path / "odd"), "-o", str(tmp_path / "o.csv")], capsys)
    (tmp_path / "empty").mkdir()
    err = _run(["text", "sample", str(tmp_path / "empty")], capsys)
    assert "has no config.json" in err and "`vaekit text fit`" in err
    assert "not found" in _run(["recommend", "top", str(tmp_path / "nowhere"), "--user", "u0"], capsys)
    newer = tmp_path / "newer"
    shutil.copytree(saved / "anomaly", newer)
    config = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "kind": "anomaly", "format_version": 3}))
    err = _run(["anomaly", "evaluate", str(newer), str(tmp_path / "x.csv")], capsys)
    assert "format version 3, this vaekit reads version 2: refit it with `vaekit anomaly fit`" in err


# -- the registry: vaekit.load and every kind's loader -----------------------------------------------
def _types() -> dict:
    from vaekit import recommend
    from vaekit.apps import anomaly, audio
    from vaekit.apps.images import Run
    from vaekit.tabular import TabularVAE
    from vaekit.text.model import TextModel

    return {"core": Run, "audio": audio.AudioModel, "tabular": TabularVAE, "text": TextModel,
            "recommend": recommend.Recommender, "anomaly": anomaly.VAEAnomalyDetector}


def test_every_kind_has_a_loader():
    from vaekit.apps.registry import LOADERS

    assert set(LOADERS) == set(KINDS) == set(_types())


@pytest.mark.parametrize("kind", sorted(VERSIONS))
def test_vaekit_load_returns_each_kind_s_object(saved, kind):
    import vaekit

    model = vaekit.load(saved / kind, device="cpu")
    assert type(model) is _types()[kind]
    assert np.array_equal(np.asarray(use(kind, model), dtype=object),
                          np.asarray(use(kind, own_loader(kind)(saved / kind)), dtype=object))


def test_vaekit_load_says_what_is_wrong_with_a_folder(tmp_path):
    import vaekit

    with pytest.raises(CheckpointError, match="not found: pass a folder written by a vaekit command"):
        vaekit.load(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="has no config.json"):
        vaekit.load(tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "video"}')
    with pytest.raises(CheckpointError, match="unknown kind 'video': this vaekit reads core, audio, tabular"):
        vaekit.load(tmp_path)
    for odd in ('{"kind": ["core"]}', "[1, 2]"):
        (tmp_path / "config.json").write_text(odd)
        with pytest.raises(CheckpointError, match="kind"):
            vaekit.load(tmp_path)


def test_serve_loads_through_the_registry_and_refuses_what_it_does_not_serve(saved):
    from vaekit.apps.serve import load_models

    models = load_models([f"{kind}={saved / kind}" for kind in ("core", "audio", "tabular", "text", "recommend")])
    assert {name: model.kind for name, model in models.items()} == \
        {"core": "core", "audio": "core", "tabular": "tabular", "text": "text", "recommend": "recommend"}
    with pytest.raises(CheckpointError, match=re.escape("this is an anomaly model: use `vaekit anomaly score|evaluate "
                                                        "MODEL`; `vaekit serve` serves core, tabular, recommend, text")):
        load_models([saved / "anomaly"])
