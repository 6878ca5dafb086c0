"""Experiment tracking: a training run's parameters, per-epoch metrics, final figures and pictures sent to
TensorBoard or MLflow (`vaekit train --log-to mlflow`). A tracker has three calls, `start(params)`,
`epoch(row)` (the Trainer's on_epoch) and `finish(files)`; `trackers` makes the ones asked for.

MLflow writes where MLFLOW_TRACKING_URI says, else to the file store ./mlruns (`mlflow ui` reads it there).
The run folder's tracking.json keeps the MLflow run's id, so `vaekit eval` and the pictures a run writes
later join the same MLflow run (`follow_up`) and `--resume` continues it. Neither package is needed until
asked for; each is an optional install."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .errors import ConfigError
from .io import write_json

TRACKING_FILE = "tracking.json"  # in the run folder: {"mlflow": {"tracking_uri": ..., "run_id": ...}}
DEFAULT_STORE = "mlruns"  # MLflow's own default folder name, in the working directory
EXPERIMENT = "vaekit"  # unless MLFLOW_EXPERIMENT_NAME names another


class TensorBoard:
    """Scalars per epoch in RUN/tensorboard (./runs without a run folder)."""

    def __init__(self, out: Path | None, resume: bool = False):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log-to tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(str(out / "tensorboard")) if out is not None else SummaryWriter()

    def start(self, params: dict) -> None:
        self.writer.add_text("config", json.dumps(params, indent=2))

    def epoch(self, row: dict) -> None:
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def finish(self, files: list[Path]) -> None:
        self.writer.close()


def _mlflow_client(tracking_uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--log-to mlflow needs MLflow: pip install 'vaekit[mlflow]' (or mlflow)") from None
    # MLflow 3 refuses its file store unless told otherwise; the database store it suggests needs SQLAlchemy,
    # which mlflow-skinny lacks. A user's own setting of the variable stands.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri)


class MLflow:
    """Parameters, per-epoch metrics (step = epoch) and files as artifacts, in one MLflow run named after the
    run folder; its id kept in RUN/tracking.json."""

    def __init__(self, out: Path | None, resume: bool = False):
        saved = _saved(out).get("mlflow") if resume else None
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or (
            saved["tracking_uri"] if saved else Path(DEFAULT_STORE).absolute().as_uri())
        self.client = _mlflow_client(self.tracking_uri)
        if saved:
            self.run_id = saved["run_id"]
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
            found = self.client.get_experiment_by_name(name)
            experiment = found.experiment_id if found else self.client.create_experiment(name)
            self.run_id = self.client.create_run(experiment, run_name=out.name if out else None).info.run_id
        if out is not None:
            write_json(out / TRACKING_FILE, {"mlflow": {"tracking_uri": self.tracking_uri, "run_id": self.run_id}})

    def start(self, params: dict) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(key, json.dumps(value) if not isinstance(value, str)
                                                         else value) for key, value in params.items()])

    def epoch(self, row: dict) -> None:
        log_metrics(self.client, self.run_id, row, step=row["epoch"])

    def finish(self, files: list[Path]) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)


TRACKERS = {"tensorboard": TensorBoard, "mlflow": MLflow}


def tracker_names(names) -> tuple[str, ...]:
    """`names` (one name or several) checked to be keys of TRACKERS, each once."""
    names = (names,) if isinstance(names, str) else tuple(dict.fromkeys(names))
    unknown = sorted(set(names) - set(TRACKERS))
    if unknown:
        raise ConfigError(f"--log-to {unknown[0]} is not a tracker: use {' or '.join(TRACKERS)}")
    return names


def trackers(names, out: Path | None, resume: bool = False) -> list:
    """The trackers named in `names` (`tracker_names`) for the run folder `out`, continuing its MLflow run on
    `resume`."""
    return [TRACKERS[name](out, resume) for name in tracker_names(names)]


def log_metrics(client, run_id: str, values: dict, step: int = 0, prefix: str = "") -> None:
    """The numbers of `values` as MLflow metrics (booleans and text left out)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(prefix + key, float(value), now, step) for key, value in values.items()
                                      if isinstance(value, (int, float)) and not isinstance(value, bool)])


def _saved(out: Path | None) -> dict:
    path = None if out is None else out / TRACKING_FILE
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def follow_up(run_dir: Path | None, metrics: dict | None = None, files=(), prefix: str = "") -> None:
    """Send figures (`metrics`, each named with `prefix`) and `files` that a command computed for a run after
    its training to the run's MLflow run, if it was tracked there (its tracking.json says so); else nothing."""
    saved = _saved(run_dir).get("mlflow")
    if not saved:
        return
    client = _mlflow_client(saved["tracking_uri"])
    if metrics:
        log_metrics(client, saved["run_id"], metrics, prefix=prefix)
    for path in files:
        client.log_artifact(saved["run_id"], str(path))
