"""Checkpoints: one atomic step per epoch, verified on resume, the layout before manifests still read, and
leftovers of interrupted writes removed."""

import json
import shutil
from pathlib import Path

import pytest

from vaekit import runs
from vaekit.checkpoint import MANIFEST_FILE, read_checkpoint, write_checkpoint
from vaekit.errors import CheckpointError

TINY = dict(data="digits", network="mlp", hidden=(8,), latent_dim=2, batch_size=64, progress=False)
# Written by vaekit d16838b, the last version before checkpoint manifests (curves.png left out):
#   vaekit train --out run-d16838b --data digits --network mlp --hidden 8 --latent-dim 2 --epochs 2 --batch-size 64
#       --device cpu
BEFORE_MANIFESTS = Path(__file__).with_name("fixtures") / "run-d16838b"
TIMING = ("epoch_seconds", "samples_per_s")


def _state(run: Path) -> dict:
    return json.loads(read_checkpoint(run / "checkpoint").files["state.json"].read_text())


def test_each_epoch_commits_one_folder_that_holds_the_state_and_best_weights_and_replaces_the_last(tmp_path):
    run = runs.train(tmp_path / "r", epochs=2, **TINY)
    saved = read_checkpoint(tmp_path / "r" / "checkpoint")
    assert saved.epoch == 2 and sorted(saved.files) == ["model.safetensors", "state.json", "state.safetensors"]
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoint").iterdir()) == sorted(
        [MANIFEST_FILE, saved.files["state.json"].parent.name])
    assert saved.files["model.safetensors"].read_bytes() == (tmp_path / "r" / "model.safetensors").read_bytes()
    state = _state(tmp_path / "r")
    assert state["epoch"] == 2 and state["history"] == run.history


def test_a_resume_refuses_checkpoint_files_that_do_not_belong_together(tmp_path):
    runs.train(tmp_path / "r", epochs=1, **TINY)
    state_dir = tmp_path / "r" / "checkpoint"
    saved = read_checkpoint(state_dir)
    original = saved.files["state.json"].read_bytes()
    saved.files["state.json"].write_bytes(original.replace(b'"epoch": 1', b'"epoch": 0'))
    with pytest.raises(CheckpointError, match="state.json has .* bytes and sha256 .* do not belong together"):
        runs.train(tmp_path / "r", epochs=2, resume=True, progress=False)
    saved.files["state.json"].unlink()
    with pytest.raises(CheckpointError, match="state.json is missing"):
        runs.train(tmp_path / "r", epochs=2, resume=True, progress=False)
    manifest = json.loads((state_dir / MANIFEST_FILE).read_text())
    (state_dir / MANIFEST_FILE).write_text(json.dumps({**manifest, "folder": "../../elsewhere"}))
    with pytest.raises(CheckpointError, match="not a vaekit checkpoint manifest"):
        runs.train(tmp_path / "r", epochs=2, resume=True, progress=False)


def test_a_manifest_and_state_of_different_epochs_are_refused(tmp_path):
    runs.train(tmp_path / "r", epochs=1, **TINY)
    files = {name: path.read_bytes() for name, path in read_checkpoint(tmp_path / "r" / "checkpoint").files.items()}
    write_checkpoint(tmp_path / "r" / "checkpoint", 2, files)  # files of epoch 1 committed as epoch 2
    with pytest.raises(CheckpointError, match="is of epoch 1 but its checkpoint's manifest says 2"):
        runs.train(tmp_path / "r", epochs=3, resume=True, progress=False)


def test_a_run_saved_before_manifests_resumes_and_is_saved_in_the_new_layout(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(BEFORE_MANIFESTS, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    resumed = runs.train(run, epochs=3, resume=True, progress=False)
    assert resumed.history[:2] == rows and resumed.history[2]["epoch"] == 3
    saved = read_checkpoint(run / "checkpoint")
    assert saved.epoch == 3 and _state(run)["history"] == resumed.history
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == sorted(
        [MANIFEST_FILE, saved.files["state.json"].parent.name])  # the old state.* files went after the commit


def test_a_pair_of_old_checkpoint_files_from_different_epochs_is_refused(tmp_path):
    """The defect that manifests fix: a kill between the renames of state.safetensors and state.json left the
    tensors of epoch 2 beside the counters of epoch 1; Adam's step count gives it away."""
    run = tmp_path / "run"
    shutil.copytree(BEFORE_MANIFESTS, run)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    (run / "checkpoint" / "state.json").write_text(json.dumps({**state, "epoch": 1}))
    with pytest.raises(CheckpointError, match="holds 42 optimizer steps but state.json says 1 epochs of 21: the two "
                                              "files are from different epochs"):
        runs.train(run, epochs=3, resume=True, progress=False)


def test_a_run_that_stopped_before_its_first_checkpoint_starts_again_with_resume(tmp_path, monkeypatch):
    from vaekit.errors import ConfigError
    from vaekit.training import Trainer

    straight = runs.train(tmp_path / "straight", epochs=2, **TINY)
    with monkeypatch.context() as patch:
        def die_before_saving(trainer):
            raise KeyboardInterrupt
        patch.setattr(Trainer, "save_checkpoint", die_before_saving)
        with pytest.raises(KeyboardInterrupt):
            runs.train(tmp_path / "r", epochs=2, **TINY)
    assert (tmp_path / "r" / "config.json").exists() and not (tmp_path / "r" / "checkpoint").exists()
    with pytest.raises(ConfigError, match="already holds a run: pass --resume"):
        runs.train(tmp_path / "r", epochs=2, **TINY)
    with pytest.raises(ConfigError, match="only .* may change"):  # the saved configuration is checked
        runs.train(tmp_path / "r", epochs=2, resume=True, latent_dim=5)
    with pytest.warns(UserWarning, match="holds no checkpoint .* starts again from epoch 1"):
        resumed = runs.train(tmp_path / "r", epochs=2, resume=True, progress=False)
    strip = lambda history: [{k: v for k, v in row.items() if k not in TIMING} for row in history]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()


def test_start_and_resume_remove_only_what_interrupted_writes_left(tmp_path):
    run = tmp_path / "r"
    runs.train(run, epochs=1, **TINY)
    committed = read_checkpoint(run / "checkpoint").files["state.json"].parent
    leftovers = [run / ".model.safetensors.k2_x9abc.tmp", run / ".config.json.abcdefgh.tmp",
                 run / "checkpoint" / ".latest.json.0123abcd.tmp", run / "checkpoint" / "epoch-000002-0badc0de"]
    kept = [run / ".eval.json.abcdefgh.tmp", run / "notes.tmp", run / ".model.safetensors.tmp",
            run / "checkpoint" / "epoch-2", run / "checkpoint" / "mine.txt"]
    for path in leftovers[:3] + kept[:3] + kept[4:]:
        path.write_text("x")
    for path in (leftovers[3], kept[3]):
        path.mkdir()
        (path / "state.json").write_text("{}")
    runs.train(run, epochs=1, resume=True, progress=False)  # nothing to train: the cleaning alone
    assert [p for p in leftovers if p.exists()] == [] and all(p.exists() for p in kept)
    assert committed.exists()
