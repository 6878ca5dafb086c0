"""The trainer: exact resume, early stopping, warm-up, divergence handling, saving and loading."""

import dataclasses
import itertools
import json
import math
import warnings

import numpy as np
import pytest
import torch

from vaekit.apps import images
from vaekit.data.splits import load_splits
from vaekit.conditioning import binarize
from vaekit.checkpoint import read_checkpoint
from vaekit.config import ModelConfig, TrainConfig
from vaekit.errors import CheckpointError, ConfigError
from vaekit.optimization import CompiledLoss, updating_only
from vaekit.training import Trainer, TrainingDiverged
from vaekit.vae import build_vae

TINY = dict(data="digits", hidden=(32,), latent_dim=3, batch_size=64, progress=False)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_binarize_draws_bernoulli_with_the_pixel_as_probability():
    torch.manual_seed(0)
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(200_000, 1)
    draws = binarize(p)
    assert draws.dtype == p.dtype and set(draws.unique().tolist()) <= {0.0, 1.0}
    # 4 standard errors of a mean of 200,000 draws at p = 0.5 is 0.0045
    assert torch.allclose(draws.mean(0), p[0], atol=0.0045)
    assert draws[:, 0].sum() == 0 and draws[:, -1].min() == 1
    torch.manual_seed(1)
    expected = torch.bernoulli(p[:1000])
    torch.manual_seed(1)
    assert torch.equal(binarize(p[:1000]), expected)  # the same stream: earlier runs reproduce and resume
    # and from a given generator, as the fixed binarization of validation and test sets draws
    expected = torch.bernoulli(p[:1000], generator=torch.Generator().manual_seed(2))
    assert torch.equal(binarize(p[:1000], torch.Generator().manual_seed(2)), expected)


def assert_resume_is_exact(folder, monkeypatch, epochs: int = 4, die_after: int = 2, **options) -> None:
    """A run trained straight, and the same run killed after checkpoint `die_after` and resumed, end with the
    same metrics and weights (a schedule spans --epochs, so both must be the same run)."""
    straight = images.train(folder / "a", epochs=epochs, **options)
    with monkeypatch.context() as patch:
        def save_then_die(trainer, save=Trainer.save_checkpoint):
            save(trainer)
            if trainer.epoch == die_after:
                raise KeyboardInterrupt
        patch.setattr(Trainer, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            images.train(folder / "b", epochs=epochs, **options)
    resumed = images.train(folder / "b", epochs=epochs, resume=True, progress=False)
    drop = ("epoch_seconds", "samples_per_s")
    strip = lambda history: [{k: v for k, v in row.items() if k not in drop} for row in history]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)
    for name, tensor in _weights(folder / "a").items():
        assert torch.equal(tensor, _weights(folder / "b")[name]), name


@pytest.mark.parametrize("network, schedule, ema", [("mlp", "constant", 0.0), ("conv", "constant", 0.0),
                                                   ("mlp", "cosine", 0.0), ("mlp", "constant", 0.9)])
def test_resume_ends_exactly_where_an_uninterrupted_run_does(tmp_path, monkeypatch, network, schedule, ema):
    # deterministic: on a GPU, cuDNN's fastest kernels may sum in any order
    assert_resume_is_exact(tmp_path, monkeypatch, binarize="dynamic", **dict(
        TINY, network=network, conv_channels=(4, 8), lr_schedule=schedule, ema=ema, deterministic=True))
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_resume_is_exact_for_the_model_variants(tmp_path, monkeypatch):
    """Pseudo-inputs and flow and two-layer networks are saved and restored with the rest (issue 42)."""
    variant = dict(prior="vamp", prior_components=4, posterior="iaf", stochastic_layers=2)
    assert_resume_is_exact(tmp_path, monkeypatch, epochs=2, die_after=1, binarize="dynamic", **TINY, **variant)
    weights = _weights(tmp_path / "b")
    assert "prior.top.pseudo_inputs" in weights and any(name.startswith("posterior.steps.") for name in weights)


def test_resume_is_exact_with_the_tc_discriminator(tmp_path, monkeypatch):
    """FactorVAE's discriminator and its Adam are saved and restored: the model's final weights (which D's
    logits steer) and D's own in the last checkpoint are the same with and without an interruption."""
    from vaekit.checkpoint import STATE_DIR, STATE_TENSORS, load_tensors

    assert_resume_is_exact(tmp_path, monkeypatch, epochs=2, die_after=1, tc_weight=5.0,
                           tc_estimator="discriminator", **TINY)
    saved = [load_tensors(read_checkpoint(tmp_path / run / STATE_DIR).files[STATE_TENSORS]) for run in "ab"]
    names = [name for name in saved[0] if name.startswith(("tc_discriminator.", "tc_optimizer."))]
    assert names and all(torch.equal(saved[0][name], saved[1][name]) for name in names)


def test_resume_refuses_changed_model_options_but_accepts_repeated_ones(tmp_path):
    images.train(tmp_path / "r", epochs=1, **TINY)
    with pytest.raises(ConfigError, match="only.*latent_dim"):
        images.train(tmp_path / "r", epochs=2, resume=True, latent_dim=5)
    resumed = images.train(tmp_path / "r", epochs=2, resume=True, **TINY)  # the options it started with
    assert len(resumed.history) == 2


def test_existing_run_is_not_overwritten(tmp_path):
    images.train(tmp_path / "r", epochs=1, **TINY)
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="--resume"):
        images.train(tmp_path / "r", epochs=1, **TINY)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before


def test_early_stopping_stops_and_keeps_the_best_weights(tmp_path):
    # A learning rate this high makes validation -ELBO stop improving quickly.
    run = images.train(tmp_path / "r", epochs=40, early_stopping=2, lr=0.05, **TINY)
    assert len(run.history) < 40
    best = min(row["val_neg_elbo"] for row in run.history)
    assert run.history[-1]["val_neg_elbo"] > best
    reloaded = images.load_run(tmp_path / "r", device="cpu")
    splits = load_splits(reloaded.data, reloaded.train.seed)
    from vaekit.evaluation import negative_elbo

    torch.manual_seed(0)
    assert abs(negative_elbo(reloaded.vae, splits.x_val)[0] - best) < 1.0


def test_early_stopping_can_monitor_a_probed_score_higher_better_without_validation_data():
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.3, 0.9, 0.95])  # no gain after epoch 2 for three epochs: stop after 5
    vae = build_vae(ModelConfig(data_shape=(16,), hidden=(8,), latent_dim=2))
    config = TrainConfig(epochs=7, batch_size=8, early_stopping=3, progress=False)
    trainer = Trainer(vae, config, probe=lambda scored, row: {"val_score": next(scores)}, monitor="val_score")
    history = trainer.fit(torch.rand(16, 16).round())
    assert [row["val_score"] for row in history] == [0.1, 0.3, 0.2, 0.25, 0.3]
    assert trainer.best_epoch == 2 and "val_neg_elbo" not in history[0]
    with pytest.raises(ConfigError, match="probe"):
        Trainer(vae, config, monitor="val_score")


def test_kl_warmup_ramps_linearly_to_beta():
    trainer = Trainer(torch.nn.Linear(1, 1), TrainConfig(beta=2.0, kl_warmup=2, progress=False))
    assert [trainer.kl_weight(step, steps_per_epoch=10) for step in (0, 9, 19, 50)] == [0.1, 1.0, 2.0, 2.0]


@pytest.mark.parametrize("schedule, middle", [("cosine", 0.5 * (1 + 0.01)), ("exponential", 0.1)])
def test_learning_rate_schedules_fall_from_lr_to_the_end_factor(schedule, middle):
    config = TrainConfig(epochs=3, lr=2e-3, lr_schedule=schedule, lr_end_factor=0.01, progress=False)
    trainer = Trainer(torch.nn.Linear(1, 1), config)
    rates = [trainer.learning_rate(step, steps_per_epoch=11) for step in range(33)]
    assert rates[0] == pytest.approx(2e-3) and rates[-1] == pytest.approx(2e-5)
    assert rates[16] == pytest.approx(2e-3 * middle)  # step 16 of 0..32 is halfway
    assert all(a > b for a, b in itertools.pairwise(rates))
    constant = Trainer(torch.nn.Linear(1, 1), TrainConfig(lr=2e-3, progress=False))
    assert constant.learning_rate(20, steps_per_epoch=11) == 2e-3


def test_lr_warmup_ramps_the_scheduled_rate_linearly():
    config = TrainConfig(epochs=4, lr=2e-3, lr_schedule="cosine", lr_end_factor=0.01, lr_warmup=2, progress=False)
    warm, cold = (Trainer(torch.nn.Linear(1, 1), c) for c in (config, dataclasses.replace(config, lr_warmup=0)))
    for step in (0, 4, 9, 15, 39):
        ramp = min(1.0, (step + 1) / 20)
        assert warm.learning_rate(step, steps_per_epoch=10) == pytest.approx(ramp * cold.learning_rate(step, 10))
    constant = Trainer(torch.nn.Linear(1, 1), TrainConfig(lr=1e-3, lr_warmup=0.5, progress=False))
    assert [constant.learning_rate(step, 10) for step in (0, 4, 7)] == pytest.approx([2e-4, 1e-3, 1e-3])
    with pytest.raises(ConfigError, match="--lr-warmup must be >= 0"):
        TrainConfig(lr_warmup=-1).validate()


def test_a_constant_rate_with_warmup_logs_its_rising_learning_rate(tmp_path):
    run = images.train(tmp_path / "r", epochs=2, lr_warmup=2, **TINY)
    rates = [row["lr"] for row in run.history]
    assert rates[0] < rates[1] <= 1e-3


def test_a_cosine_run_logs_its_falling_learning_rate(tmp_path):
    run = images.train(tmp_path / "r", epochs=3, lr_schedule="cosine", lr_end_factor=0.1, **TINY)
    rates = [row["lr"] for row in run.history]
    assert rates[0] < 1e-3 and rates[-1] == pytest.approx(1e-4) and rates[0] > rates[1] > rates[2]
    with pytest.warns(UserWarning, match="schedule now spans 5 epochs"):
        images.train(tmp_path / "r", epochs=5, resume=True, progress=False)
    with pytest.raises(ConfigError, match="--lr-schedule must be one of"):
        images.train(tmp_path / "bad", epochs=1, lr_schedule="step", **TINY)


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = images.train(tmp_path / "r", epochs=1, **TINY)
    saved = (tmp_path / "r" / "model.safetensors").read_bytes()
    original = type(run.vae).loss

    def poisoned(self, x, **kwargs):
        out = original(self, x, **kwargs)
        return type(out)(out.loss * float("nan"), out.reconstruction, out.kl)

    monkeypatch.setattr(type(run.vae), "loss", poisoned)
    with pytest.raises(TrainingDiverged, match="--lr"):
        images.train(tmp_path / "r", epochs=2, resume=True, progress=False)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == saved
    assert read_checkpoint(tmp_path / "r" / "checkpoint").epoch == 1


def test_saved_run_reloads_to_the_same_model(tmp_path):
    run = images.train(tmp_path / "r", epochs=1, device="cpu", **TINY)  # across devices: tests/test_cuda.py
    again = images.load_run(tmp_path / "r", device="cpu")
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(run.vae.reconstruct(x), again.vae.reconstruct(x))
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["data_shape"] == [1, 8, 8]


def test_mismatched_checkpoint_is_a_checkpoint_error(tmp_path):
    images.train(tmp_path / "a", epochs=1, **TINY)
    images.train(tmp_path / "b", epochs=1, **{**TINY, "latent_dim": 5})
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="different runs"):
        images.load_run(tmp_path / "a")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        images.load_run(tmp_path / "b")


def test_a_time_limit_is_a_budget_no_epoch_is_started_that_would_overrun_it(monkeypatch):
    clock = itertools.count()  # every read of the clock advances it by 1 s: each epoch takes 1 s
    monkeypatch.setattr("vaekit.training.time.perf_counter", lambda: float(next(clock)))
    run = images.train(None, epochs=10, time_limit=3.5 / 60, **TINY)
    assert len(run.history) == 3  # a 4th epoch would end at 4 s, past the 3.5 s budget


def test_a_schedule_under_a_time_limit_falls_with_the_clock_when_that_budget_runs_out_first(monkeypatch):
    clock = itertools.count()  # each epoch takes 1 s, as above; the schedule is planned over 1,000 epochs
    monkeypatch.setattr("vaekit.training.time.perf_counter", lambda: float(next(clock)))
    run = images.train(None, epochs=1000, time_limit=3.5 / 60, lr_schedule="cosine", **TINY)
    rates = [row["lr"] for row in run.history]
    assert len(rates) == 3 and rates[0] > 0.99e-3  # the first epoch has no pace to go by: the step budget rules
    assert rates[0] > rates[1] > rates[2] and rates[2] < 1e-4  # about 6/7 of the clock spent by the last step


def test_convolutions_train_in_channels_last_on_a_cpu_with_their_adam_moments_alike():
    from vaekit.config import ModelConfig
    from vaekit.vae import build_vae

    vae = build_vae(ModelConfig(data_shape=(1, 8, 8), network="conv", conv_channels=(4, 8), latent_dim=2))
    trainer = Trainer(vae, TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"))
    trainer.fit(torch.rand(32, 1, 8, 8))
    kernels = [p for p in vae.parameters() if p.dim() == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert all(trainer.optimizer.state[p]["exp_avg"].stride() == p.stride() for p in kernels)


def test_in_memory_arrays_train_through_the_api(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((300, 6)) < 0.3).astype(np.float32)
    run = images.train(None, data=x, epochs=2, hidden=(8,), latent_dim=2, progress=False)
    assert len(run.history) == 2 and run.path is None
    assert np.isfinite(run.history[-1]["loss"])


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(UserWarning, match="eager"):
        run = images.train(None, data="digits", epochs=1, compile=True, **{k: v for k, v in TINY.items() if k != "data"})
    eager = images.train(None, data="digits", epochs=1, **{k: v for k, v in TINY.items() if k != "data"})
    assert run.history[0]["loss"] == eager.history[0]["loss"]


def test_compiled_loss_draws_the_noise_an_eager_loss_draws():
    vae = images.train(None, epochs=1, **TINY).vae
    x = torch.rand(64, *vae.likelihood.data_shape)
    compiled, losses = CompiledLoss(vae.loss), []
    for seed, loss in [(0, vae.loss), (0, compiled), (1, compiled)]:
        torch.manual_seed(seed)
        losses.append(loss(x, beta=1.0).loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and losses[2] != pytest.approx(losses[0], rel=1e-5)


def test_bf16_mixed_precision_trains_fp32_weights_to_the_fp32_loss_within_a_percent():
    fp32, bf16 = (images.train(None, epochs=3, precision=precision, **TINY) for precision in ("fp32", "bf16"))
    assert all(p.dtype == torch.float32 for p in bf16.vae.parameters())
    losses = fp32.history[-1]["loss"], bf16.history[-1]["loss"]
    assert losses[0] != losses[1]  # the products did run in bfloat16
    assert abs(losses[0] - losses[1]) < 0.01 * losses[0]


def test_under_autocast_the_likelihood_and_kl_are_summed_in_fp32():
    from vaekit.config import ModelConfig
    from vaekit.vae import build_vae

    vae = build_vae(ModelConfig(data_shape=(64,), hidden=(32,), latent_dim=3))
    x = torch.rand(8, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, elbo = vae.loss(x), vae.elbo(x)
        iw_loss = vae.loss(x, iw_samples=4)
    assert loss.loss.dtype == loss.kl.dtype == elbo.reconstruction.dtype == iw_loss.loss.dtype == torch.float32


def test_an_unknown_precision_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="--precision must be one of fp32, bf16"):
        TrainConfig(precision="fp16").validate()


def test_bf16_on_a_gpu_without_bfloat16_is_a_config_error_before_training(monkeypatch):
    from vaekit.training import check_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla P100")
    with pytest.raises(ConfigError, match="Tesla P100 has no bfloat16 support; use --precision fp32"):
        check_precision("bf16", torch.device("cuda"))
    check_precision("fp32", torch.device("cuda"))
    check_precision("bf16", torch.device("cpu"))


def test_the_process_wide_settings_are_opt_in():
    # issue 40: a process-wide tweak is on by default only at >= 1.10x in steady state (benchmarks/README.md)
    config = TrainConfig()
    assert (config.flush_denormals, config.keep_freed_memory) == (False, False)


@pytest.mark.parametrize("flush", [True, False])
def test_training_on_cpu_flushes_denormals_on_every_thread_only_while_it_runs(flush):
    from vaekit.config import ModelConfig
    from vaekit.accel.denormals import denormals_flushed
    from vaekit.vae import build_vae

    supported = torch.set_flush_denormal(False)  # x86 with SSE3; elsewhere the option is a no-op
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert not denormals_flushed()  # also starts the intra-op worker before training: its mode must follow too
        seen = []
        vae = build_vae(ModelConfig(data_shape=(64,), hidden=(32,), latent_dim=3))
        config = TrainConfig(epochs=2, batch_size=32, flush_denormals=flush, device="cpu", progress=False)
        Trainer(vae, config, on_epoch=lambda row: seen.append(denormals_flushed())).fit(torch.rand(64, 64))
        assert seen == [flush and supported] * 2
        assert not denormals_flushed()  # the caller's mode is back
        assert torch.tensor([1e-39]).mul(1.0).item() > 0  # denormals are numbers again outside training
    finally:
        torch.set_num_threads(threads)  # a failure here must not change the thread count of the tests after it


def test_deterministic_algorithms_hold_inside_the_block_only():
    from vaekit.training import deterministic_algorithms

    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # a missing kernel warns, never stops a run
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before
    with deterministic_algorithms(False):
        assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before


def test_ema_averages_the_weights_after_every_step_and_is_what_is_saved_and_returned(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(70, 1, 8, 8).round()
    vae = build_vae(ModelConfig(data_shape=(1, 8, 8), hidden=(16,), latent_dim=2))
    trainer = Trainer(vae, TrainConfig(epochs=2, batch_size=16, ema=0.9, progress=False, device="cpu"), tmp_path)
    expected = [p.detach().clone() for p in vae.parameters()]  # the average starts at the initial weights
    after_steps, step = [], trainer.optimizer.step

    def recording_step(*args, **kwargs):
        step(*args, **kwargs)
        after_steps.append([p.detach().clone() for p in vae.parameters()])

    trainer.optimizer.step = recording_step
    history = trainer.fit(x, x[:20])
    assert len(after_steps) == 10  # 5 steps an epoch
    for t, weights in enumerate(after_steps):
        decay = min(0.9, (1 + t) / (10 + t))  # warm-up: 0.1, 0.18, 0.25, ... up to 0.9
        expected = [decay * a + (1 - decay) * w for a, w in zip(expected, weights)]
    for got, want in zip(vae.parameters(), expected):  # fit leaves the average in the model
        torch.testing.assert_close(got.detach(), want)
    assert not torch.equal(expected[0], after_steps[-1][0])  # ... which differs from the last step's weights
    for name, tensor in _weights(tmp_path).items():
        torch.testing.assert_close(tensor, vae.state_dict()[name])
    assert trainer.scored is trainer.averaged.module and math.isfinite(history[-1]["val_neg_elbo"])
    with pytest.raises(ConfigError, match="--ema"):
        TrainConfig(ema=1.0).validate()


_KEPT_MEMORY_SCRIPT = """
import os, sys, torch
from vaekit.accel.heap import keeping_freed_memory

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

torch.ones(1)
base = resident_mb()
with keeping_freed_memory(sys.argv[1] != "trim"):
    with keeping_freed_memory(sys.argv[1] == "nested"):  # e.g. a fit inside another fit's callback
        pass
    torch.ones(12 << 20)  # 48 MB filled and freed, as a training step's activations are
    inside = resident_mb() - base
print(inside, resident_mb() - base)
"""


@pytest.mark.parametrize("keep", [True, False])
def test_training_keeps_freed_memory_mapped_only_while_it_runs(keep):
    import ctypes.util
    import subprocess
    import sys

    from vaekit.accel import heap

    if heap._glibc() is None:
        pytest.skip(f"the C library here ({ctypes.util.find_library('c')}) is not glibc: the option is a no-op")
    for mode in ("keep", "nested") if keep else ("trim",):
        out = subprocess.run([sys.executable, "-c", _KEPT_MEMORY_SCRIPT, mode], capture_output=True, text=True,
                             check=True)  # a fresh process: glibc's own thresholds before the block
        inside, after = map(float, out.stdout.split())
        # glibc's own thresholds unmap a freed block above 32 MiB at once (its pages fault in again next step);
        # kept, it stays mapped until the outermost block ends
        assert (inside > 40) if keep else (inside < 8), (mode, inside, after)
        assert after < 8, (mode, inside, after)
    vae = build_vae(ModelConfig(data_shape=(16,), hidden=(8,), latent_dim=2))
    config = TrainConfig(epochs=1, batch_size=8, keep_freed_memory=keep, device="cpu", progress=False)
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(heap, "set_thresholds", lambda *sizes: calls.append(sizes) or False)
        Trainer(vae, config).fit(torch.rand(16, 16))
    assert calls == ([heap.TRAINING_THRESHOLDS] if keep else [])


def test_each_epoch_logs_the_active_units_and_a_collapsing_run_warns_once_naming_the_flags(tmp_path):
    with pytest.warns(UserWarning, match="posterior collapse") as caught:
        run = images.train(tmp_path / "run", **{**TINY, "epochs": 2})  # two epochs on digits: no unit wakes yet
    assert [row["val_active_units"] for row in run.history] == [0, 0]
    collapse = [str(w.message) for w in caught if "posterior collapse" in str(w.message)]
    assert len(collapse) == 1 and all(flag in collapse[0] for flag in ("--kl-warmup", "--free-bits", "--epochs"))
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["val_active_units"] == 0


def test_the_collapse_watch_counts_units_whose_means_vary_and_judges_only_the_second_half_at_full_beta():
    from vaekit.evaluation import CollapseWatch

    vae = build_vae(ModelConfig(data_shape=(1, 8, 8), network="mlp", hidden=(8,), latent_dim=3))
    x = torch.rand(50, 1, 8, 8)
    with torch.no_grad():
        vae.encoder.layers[-1].weight.zero_()  # every mean is the bias: no unit varies
    watch = CollapseWatch(x, beta=1.0, epochs=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert watch(vae, {"epoch": 4, "beta": 1.0, "kl": 0.0}) == {"val_active_units": 0}  # first half: not judged
        assert watch(vae, {"epoch": 5, "beta": 0.5, "kl": 0.0}) == {"val_active_units": 0}  # still warming up
    with pytest.warns(UserWarning, match="none of the 3 latent units"):
        watch(vae, {"epoch": 5, "beta": 1.0, "kl": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        watch(vae, {"epoch": 6, "beta": 1.0, "kl": 0.0})  # once


def test_alternating_updates_step_one_network_at_a_time():
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=2))
    encoder_before = [p.detach().clone() for p in vae.encoder.parameters()]
    x = torch.bernoulli(torch.full((16, 6), 0.5))
    for part, stepped, held in (("encoder", vae.encoder, vae.decoder), ("decoder", vae.decoder, vae.encoder)):
        vae.zero_grad(set_to_none=True)
        with updating_only(vae, part):
            assert vae.encoder.training == (part == "encoder")
            vae.loss(x).loss.backward()
        assert all(p.grad is not None for p in stepped.parameters())
        assert all(p.grad is None for p in held.parameters())
    assert vae.training and all(p.requires_grad for p in vae.parameters())
    seen = []
    trainer = Trainer(vae, TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu"),
                      kl_per_example=lambda batch: seen.append(len(batch)) or batch.sum(-1), alternate=(2, 1))
    trainer.fit(x)
    assert seen == [8] * 6  # 3 passes of 2 steps, each step's weights from its batch
    assert not all(torch.equal(a, p) for a, p in zip(encoder_before, vae.encoder.parameters()))
    with pytest.raises(ConfigError):
        Trainer(vae, TrainConfig(epochs=1, device="cpu"), alternate=(0, 1))


def test_the_weight_average_counts_every_alternating_pass_as_its_own_steps(monkeypatch):
    import vaekit.optimization

    clock, update = [], vaekit.optimization.WeightAverage.update
    monkeypatch.setattr(vaekit.optimization.WeightAverage, "update",
                        lambda self, model, step: clock.append(step) or update(self, model, step))
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=2))
    Trainer(vae, TrainConfig(epochs=2, batch_size=8, ema=0.99, progress=False, device="cpu"),
            alternate=(2, 1)).fit(torch.bernoulli(torch.full((16, 6), 0.5)))
    assert clock == list(range(12))  # 2 epochs x 3 passes x 2 steps: the warm-up moves on at every update


def test_moving_data_to_the_cpu_neither_pins_nor_waits():
    from vaekit.conditioning import Batch
    from vaekit.devices import synchronize, to_device

    x = torch.rand(3, 2)
    synchronize(torch.device("cpu"))
    assert to_device(x, torch.device("cpu")) is x and not x.is_pinned()
    assert to_device(Batch(x, None, None), torch.device("cpu")).x is x  # anything with .to passes
