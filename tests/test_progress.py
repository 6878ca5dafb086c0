"""Progress off a terminal (a log file, a pipe): plain lines, never a carriage-return redraw."""

import io
import sys

import torch

from vaekit.config import ModelConfig, TrainConfig
from vaekit.progress import QUIET_SECONDS, ProgressLines, progress_bar
from vaekit.training import Trainer
from vaekit.vae import build_vae


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_off_a_terminal_writes_one_plain_line_per_epoch_and_no_redraws(capsys):
    vae = build_vae(ModelConfig(data_shape=(16,), network="mlp", hidden=(8,), latent_dim=2))
    Trainer(vae, TrainConfig(epochs=3, batch_size=16, progress=True)).fit(torch.rand(200, 16))
    out, err = capsys.readouterr()  # neither stream is a terminal here
    assert "\r" not in out + err
    assert [line.split("  ")[0] for line in out.splitlines()] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert err == ""  # epochs this short: no progress lines beside the summaries


def test_a_long_job_off_a_terminal_prints_a_line_per_tenth_once_past_the_quiet_time():
    seconds = iter(range(1000))
    log = io.StringIO()
    bar = ProgressLines(total=100, desc="epoch 1/1", file=log, clock=lambda: float(next(seconds)))  # built at 0
    for step in range(100):  # one second a step
        bar.set_postfix(loss=f"{100 - step:.2f}")
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    first = int(QUIET_SECONDS) // 10 * 10  # the first tenth reached past the quiet time
    assert [line.split(" it ")[0] for line in lines] == [f"epoch 1/1: {n}/100" for n in range(first, 101, 10)]
    assert lines[-1] == "epoch 1/1: 100/100 it (100%) in 100 s, 1.00 it/s, loss=1.00"


def test_a_terminal_gets_the_live_bar_and_disabled_shows_nothing(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    for _ in progress_bar(range(3), desc="live"):
        pass
    assert "live" in terminal.getvalue() and "\r" in terminal.getvalue()
    monkeypatch.setattr(sys, "stderr", log := io.StringIO())
    assert isinstance(progress_bar(range(3)), ProgressLines)
    for _ in progress_bar(range(3), desc="off", enabled=False):
        pass
    assert log.getvalue() == ""
