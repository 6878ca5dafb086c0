"""Hub-compatible model folders (issue 46): save_pretrained writes config.json + model.safetensors + a model
card; from_pretrained / vaekit.load read it back bit for bit, from a folder or from a Hub id (snapshot_download
replaced by a local folder: no network here); nothing is pickled."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.apps.hub import from_pretrained, save_pretrained, write_card
from vaekit.apps.registry import resolve
from vaekit.cli import main
from vaekit.errors import CheckpointError, ConfigError

SAFE = {".json", ".jsonl", ".safetensors", ".md", ".png"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    x = (np.random.default_rng(0).random((64, 1, 4, 4)) > 0.5).astype(np.float32)
    folder = tmp_path_factory.mktemp("hub") / "run"
    trained = vaekit.train(folder, data=x, network="mlp", hidden=(8,), latent_dim=2, epochs=1, progress=False)
    (folder / "eval.json").write_text(json.dumps({"split": "test", "neg_elbo": 11.5, "k": 5}))
    (folder / "samples.png").write_bytes((folder / "curves.png").read_bytes())
    return trained


def _outputs(model) -> list[torch.Tensor]:
    x = torch.linspace(0, 1, 2 * 16).reshape(2, 1, 4, 4)
    z = torch.linspace(-2, 2, 3 * 2).reshape(3, 2)
    with torch.no_grad():
        qz = model.vae.encode(x)
        return [qz.mean, qz.stddev, model.vae.decode_mean(z)]


def _assert_same(a, b):
    for left, right in zip(_outputs(a), _outputs(b), strict=True):
        assert torch.equal(left, right)


def test_save_then_load_gives_bit_identical_outputs_and_no_pickle(run, tmp_path):
    folder = save_pretrained(run, tmp_path / "pretrained").parent
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "eval.json", "samples.png"} <= names
    assert {path.suffix for path in folder.iterdir()} <= SAFE
    assert not any(path.read_bytes()[:1] == b"\x80" for path in folder.iterdir())  # a pickle's first byte
    assert json.loads((folder / "config.json").read_text())["kind"] == "core"
    _assert_same(run, from_pretrained(folder, device="cpu"))
    _assert_same(run, vaekit.load(folder, device="cpu"))


def test_the_card_shows_data_config_eval_and_samples(run, tmp_path):
    card = (save_pretrained(run, tmp_path / "pretrained")).read_text()
    assert card.startswith("---\nlibrary_name: vaekit\n")
    assert "## Data\n\n`<array>` (arrays passed in memory)" in card and '"latent_dim": 2' in card
    assert "| neg_elbo | 11.5 |" in card and "![samples](samples.png)" in card


def test_a_hub_id_resolves_through_snapshot_download(run, tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    folder = save_pretrained(run, tmp_path / "snapshot").parent
    asked = {}

    def snapshot_download(repo_id, allow_patterns):
        asked.update(repo_id=repo_id, allow_patterns=allow_patterns)
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    monkeypatch.chdir(tmp_path)
    _assert_same(run, vaekit.load("someone/tiny-vae", device="cpu"))
    assert asked["repo_id"] == "someone/tiny-vae"
    assert {pattern.removeprefix("*") for pattern in asked["allow_patterns"]} == SAFE  # no .bin, .pt or .pkl


def test_a_local_folder_wins_and_a_failed_download_is_a_checkpoint_error(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert resolve("owner/name") == Path("owner/name")  # a folder here, though it could be a Hub id
    assert str(resolve("/no/such/folder")) == "/no/such/folder"  # not a Hub id: the loader says it is missing

    def offline(repo_id, allow_patterns):
        raise OSError("no network")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError, match="nobody/nothing is no folder here, and the Hugging Face Hub model"):
        vaekit.load("nobody/nothing")


def test_a_saved_folder_is_not_replaced_without_overwrite(run, tmp_path):
    save_pretrained(run, tmp_path / "p")
    with pytest.raises(ConfigError, match="already holds a model"):
        save_pretrained(run, tmp_path / "p")
    save_pretrained(run, tmp_path / "p", overwrite=True)
    with pytest.raises(ConfigError, match="got int"):
        save_pretrained(3, tmp_path / "q")


def test_vaekit_card_writes_the_card_of_any_saved_kind(tmp_path, capsys):
    fixture = tmp_path / "tabular"
    shutil.copytree(Path(__file__).parent / "fixtures" / "saved" / "tabular", fixture)
    assert main(["card", str(fixture)]) == 0
    card = (fixture / "README.md").read_text()
    assert "tags: [vaekit, variational-autoencoder, tabular]" in card and "vaekit tabular sample" in card
    assert main(["card", str(tmp_path / "missing")]) == 2
