"""Experiment tracking (issue 46): `--log-to mlflow` sends a run's parameters, per-epoch metrics, curves, and
later its eval figures and pictures, to one MLflow run in a local store; MLFLOW_TRACKING_URI is honoured."""

import json

import pytest

from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.tracking import TRACKING_FILE, tracker_names

TINY = ["--data", "digits", "--network", "mlp", "--hidden", "8", "--latent-dim", "2"]


def _mlflow_run(folder):
    from mlflow.tracking import MlflowClient

    saved = json.loads((folder / TRACKING_FILE).read_text())["mlflow"]
    client = MlflowClient(saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def test_a_run_logs_params_epochs_curves_then_eval_and_pictures(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="mlflow is not installed: pip install 'vaekit[mlflow]'")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "store").as_uri())
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--log-to", "mlflow", "--out", str(run)]) == 0
    client, tracked = _mlflow_run(run)
    assert tracked.info.run_name == "run" and tracked.info.status == "FINISHED"
    assert tracked.data.params["model.latent_dim"] == "2" and tracked.data.params["data.data"] == "digits"
    losses = client.get_metric_history(tracked.info.run_id, "loss")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m.step, m.value) for m in losses] == [(row["epoch"], row["loss"]) for row in metrics]
    assert main(["eval", str(run), "--k", "2", "--limit", "20"]) == 0
    assert main(["sample", str(run), "-n", "4"]) == 0
    client, tracked = _mlflow_run(run)
    evaluation = json.loads((run / "eval-k2-limit20.json").read_text())
    assert tracked.data.metrics["test_nll"] == pytest.approx(evaluation["nll"])
    artifacts = {item.path for item in client.list_artifacts(tracked.info.run_id)}
    assert {"config.json", "curves.png", "eval-k2-limit20.json", "samples.png"} <= artifacts


def test_the_store_defaults_to_mlruns_in_the_working_directory_and_resume_continues_the_run(tmp_path,
                                                                                             monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed: pip install 'vaekit[mlflow]'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--epochs", "1", "--log-to", "mlflow", "--out", "run"]) == 0
    assert (tmp_path / "mlruns").is_dir()
    assert main(["train", "--epochs", "2", "--resume", "--log-to", "mlflow", "--out", "run"]) == 0
    client, tracked = _mlflow_run(tmp_path / "run")
    assert [m.step for m in client.get_metric_history(tracked.info.run_id, "loss")] == [1, 2]


def test_an_unknown_tracker_is_a_config_error():
    assert tracker_names(["mlflow", "tensorboard", "mlflow"]) == ("mlflow", "tensorboard")
    with pytest.raises(ConfigError, match="--log-to wandb is not a tracker: use tensorboard or mlflow"):
        tracker_names("wandb")
