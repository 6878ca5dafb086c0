"""Config files (issue 46): a run's options as JSON or YAML (`vaekit config RUN`), read back by
`vaekit train --config FILE` under the flags given; a run's own config.json repeats the run exactly."""

import json

import pytest

from vaekit.cli import main
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.config_files import dump, editable, read_options
from vaekit.errors import ConfigError

CONFIGS = (ModelConfig, TrainConfig, DataConfig)
TINY = ["--data", "digits", "--network", "mlp", "--hidden", "8", "--latent-dim", "2", "--epochs", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "run"
    assert main(["train", *TINY, "--out", str(path)]) == 0
    return path


def test_flat_and_sectioned_files_give_the_same_options(tmp_path):
    flat, sections = tmp_path / "flat.json", tmp_path / "sections.yaml"
    flat.write_text(json.dumps({"latent_dim": 3, "epochs": 2, "binarize": "dynamic"}))
    sections.write_text("kind: core\nformat_version: 1\nmodel:\n  latent_dim: 3\ntrain: {epochs: 2}\n"
                        "data:\n  binarize: dynamic\n")
    assert read_options(flat, *CONFIGS) == read_options(sections, *CONFIGS) == {
        "latent_dim": 3, "epochs": 2, "binarize": "dynamic"}


@pytest.mark.parametrize("format", ["json", "yaml"])
def test_a_dumped_config_reads_back_as_its_options(tmp_path, format):
    model, train = ModelConfig(hidden=(16, 8), latent_dim=4), TrainConfig(lr=3e-4, epochs=7)
    path = tmp_path / f"c.{format}"
    path.write_text(dump({"model": editable(model), "train": editable(train)}, format))
    options = read_options(path, *CONFIGS)
    assert options["hidden"] == [16, 8] and options["lr"] == 3e-4 and options["epochs"] == 7
    assert "data_shape" not in options and "progress" not in options  # set from the data, not by a flag


@pytest.mark.parametrize("text, message", [
    ('{"latnt_dim": 3}', "unknown option 'latnt_dim': did you mean 'latent_dim'?"),
    ('{"model": {"zzzz": 1}}', "unknown option 'zzzz': valid options are .*latent_dim"),
    ('{"epochs": 2,', "is not valid JSON"),
    ("[1, 2]", "must hold a mapping of options, got list"),
])
def test_a_wrong_file_is_one_config_error_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_options(path, *CONFIGS)


def test_a_wrong_yaml_file_and_a_missing_one_are_config_errors(tmp_path):
    (tmp_path / "c.yml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_options(tmp_path / "c.yml", *CONFIGS)
    with pytest.raises(ConfigError, match="not found"):
        read_options(tmp_path / "missing.yaml", *CONFIGS)


def test_rerunning_a_runs_config_json_repeats_it_bit_for_bit(run_dir, tmp_path):
    again = tmp_path / "again"
    assert main(["train", "--config", str(run_dir / "config.json"), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text()) == json.loads((run_dir / "config.json").read_text())
    assert (again / "model.safetensors").read_bytes() == (run_dir / "model.safetensors").read_bytes()


def test_flags_given_win_over_the_file_and_the_file_over_the_defaults(run_dir, tmp_path, capsys):
    assert main(["config", str(run_dir), "--format", "yaml"]) == 0
    text = capsys.readouterr().out
    assert "latent_dim: 2" in text and "data_shape" not in text
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace("latent_dim: 2", "latent_dim: 3"))
    # --batch-size repeats its default: given, so it wins over the file's 64 all the same
    edited.write_text(edited.read_text().replace("batch_size: 128", "batch_size: 64"))
    out = tmp_path / "edited"
    assert main(["train", "--config", str(edited), "--epochs", "1", "--batch-size", "128", "--lr", "0.01",
                 "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["model"]["latent_dim"], saved["model"]["hidden"]) == (3, [8])  # the file's, over the defaults
    assert (saved["train"]["batch_size"], saved["train"]["lr"]) == (128, 0.01)  # the flags', over the file's


def test_config_prints_json_that_train_reads(run_dir, capsys):
    assert main(["config", str(run_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"model", "train", "data"} and printed["data"]["data"] == "digits"


def test_a_value_of_the_wrong_type_in_the_file_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  latent_dim: four\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "never")]) == 2
    assert "latent_dim must be an integer, got 'four'" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_an_unknown_key_in_the_file_is_one_line_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"epoch": 2}')
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"vaekit: error: --config {path}: unknown option 'epoch': did you mean 'epochs'?"
    assert not (tmp_path / "never").exists()
