"""The step profile (`vaekit train --profile`): laps add up to the time measured around them."""

import math

import torch

from vaekit.config import ModelConfig, TrainConfig
from vaekit.profiling import PHASES, StepProfile
from vaekit.training import Trainer
from vaekit.vae import build_vae


def test_each_lap_is_the_time_since_the_last_and_a_mark_counts_outside_the_phases():
    ticks = iter([0.0, 1.0, 1.5, 4.0, 10.0, 10.25])
    profile = StepProfile(clock=lambda: next(ticks))  # built at 0
    profile.lap("data")  # 1.0
    profile.lap("forward")  # 0.5
    profile.lap("data")  # 2.5
    profile.mark()  # 6.0 outside
    profile.lap("optimizer")  # 0.25
    profile.step()
    assert profile.seconds == {**dict.fromkeys(PHASES, 0.0), "data": 3.5, "forward": 0.5, "optimizer": 0.25}
    assert profile.total == 4.25 and profile.between == 6.0
    table = profile.table()
    assert "4250.000" in table and "82.4%" in table and "6.00 s outside" in table  # data: 3.5 of 4.25 s


def test_sync_runs_before_every_lap_and_mark():
    calls = []
    profile = StepProfile(sync=lambda: calls.append(1))
    profile.lap("data")
    profile.mark()
    assert len(calls) == 2


def test_a_profiled_fit_prints_phases_that_add_up_to_its_training_seconds(capsys):
    torch.manual_seed(0)
    x = torch.rand(300, 16)
    vae = build_vae(ModelConfig(data_shape=(16,), network="mlp", hidden=(8,), latent_dim=2))
    trainer = Trainer(vae, TrainConfig(epochs=2, batch_size=64, profile=True, progress=True))
    history = trainer.fit(x, x[:50])
    profile = trainer.profile
    assert profile.steps == 2 * math.ceil(300 / 64)
    training = sum(row["epoch_seconds"] for row in history)
    assert abs(profile.total - training) <= 0.03 * training
    assert all(profile.seconds[phase] > 0 for phase in ("data", "forward", "backward", "optimizer", "host reads",
                                                         "progress bar", "metrics and logging"))
    assert profile.between > 0  # the validation between the epochs
    printed = capsys.readouterr().out
    assert all(phase in printed for phase in PHASES)


def test_an_unprofiled_fit_keeps_no_profile(capsys):
    vae = build_vae(ModelConfig(data_shape=(16,), network="mlp", hidden=(8,), latent_dim=2))
    trainer = Trainer(vae, TrainConfig(epochs=1, batch_size=64, progress=False))
    trainer.fit(torch.rand(100, 16))
    assert trainer.profile is None and "where the training steps" not in capsys.readouterr().out
