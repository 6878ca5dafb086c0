"""Data-parallel training: gradient normalisation, 2 gloo processes on 127.0.0.1 against 1, resume
across world sizes, memory-mapped shards, and a killed rank failing fast with a clear message."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import distributed_worker as worker
from vaekit.checkpoint import read_checkpoint
from vaekit.config import TrainConfig
from vaekit.data.shards import NpyShards, write_npy_shards
from vaekit.distributed import DistributedError, Group, from_environment
from vaekit.errors import DataError
from vaekit.training import Trainer

WORKER = str(Path(__file__).with_name("distributed_worker.py"))
SRC = str(Path(__file__).parents[1] / "src")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", VAEKIT_DIST_TIMEOUT="30",
               PYTHONPATH=os.pathsep.join([SRC, env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args, nproc=2):
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
               "--master-addr=127.0.0.1", f"--master-port={_free_port()}", WORKER, *map(str, args)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def _single(run_dir, epochs, resume=False, *extra):
    assert worker.main([str(run_dir), str(epochs), *(["--resume"] if resume else []), *extra]) == 0


def _model(run_dir) -> dict:
    from safetensors.torch import load_file

    state = read_checkpoint(run_dir / "checkpoint").files["state.safetensors"]
    return {k: v for k, v in load_file(str(state)).items() if k.startswith("model.")}


def _assert_close(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=2e-5, msg=name)


def _read_rows(run_dir):
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_ranks_split_each_global_batch_and_scaled_gradients_average_to_the_full_batch_gradient():
    index = torch.arange(7)
    groups = [Group(rank, 3, torch.device("cpu")) for rank in range(3)]
    shares = [g.shard(index) for g in groups]
    assert torch.equal(torch.cat([s for s, _ in shares]), index) and [c for _, c in shares] == [3, 2, 2]
    assert groups[2].shard(torch.arange(2)) == (torch.arange(1), 0)  # an empty share still joins, weighted 0
    assert [len(g.span(10)) for g in groups] == [4, 3, 3] and groups[1].span(10) == range(4, 7)

    vae, x = worker.build(), worker.data()[0][:7]

    def gradient(batch, scale=1.0):
        vae.zero_grad()
        (vae.loss(batch).loss * scale).backward()
        return torch.cat([p.grad.flatten() for p in vae.parameters()])

    full = gradient(x)
    averaged = sum(gradient(x[s], g.loss_scale(c, len(x))) for g, (s, c) in zip(groups, shares)) / 3
    torch.testing.assert_close(averaged, full, rtol=1e-4, atol=1e-6)
    unscaled = sum(gradient(x[s]) for s, _ in shares) / 3  # what plain DDP would do with unequal shares
    assert not torch.allclose(unscaled, full, rtol=1e-4, atol=1e-6)


def test_two_gloo_processes_match_one_and_resume_on_one(tmp_path):
    _torchrun(tmp_path / "two", 1)
    _single(tmp_path / "one", 1)
    _assert_close(_model(tmp_path / "two"), _model(tmp_path / "one"))
    two, one = _read_rows(tmp_path / "two")[0], _read_rows(tmp_path / "one")[0]
    for key in ("loss", "kl", "val_neg_elbo"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    assert not list((tmp_path / "two").glob(".*.tmp"))
    _single(tmp_path / "two", 3, resume=True)  # started on 2 processes, continued on 1
    _single(tmp_path / "one", 3, resume=True)
    _assert_close(_model(tmp_path / "two"), _model(tmp_path / "one"))
    assert [row["epoch"] for row in _read_rows(tmp_path / "two")] == [1, 2, 3]


def test_a_learned_mixture_prior_trains_the_same_on_two_processes_as_on_one(tmp_path):
    _torchrun(tmp_path / "two", 1, "--variant")
    _single(tmp_path / "one", 1, False, "--variant")
    two, one = _model(tmp_path / "two"), _model(tmp_path / "one")
    assert any(key.startswith("model.prior.") for key in one)
    _assert_close(two, one)


def test_a_vq_codebook_takes_the_same_ema_steps_and_reports_the_same_usage_on_two_processes_as_on_one(tmp_path):
    from safetensors.torch import load_file

    _torchrun(tmp_path / "two", 1, "--codebook")
    _single(tmp_path / "one", 1, False, "--codebook")
    two, one = (load_file(str(tmp_path / name / "codebook.safetensors")) for name in ("two", "one"))
    assert not torch.allclose(one["embed"][:2], torch.tensor([[0.0, 0.0], [3.0, 3.0]]))  # the codes moved
    _assert_close(two, one)


def test_a_run_started_on_one_process_resumes_on_two_reading_memory_mapped_shards(tmp_path):
    x_train, _ = worker.data()
    write_npy_shards(x_train.numpy(), tmp_path / "shards", rows_per_shard=40)
    _single(tmp_path / "a", 1)
    _torchrun(tmp_path / "a", 2, "--resume", "--shards", tmp_path / "shards")
    _single(tmp_path / "b", 2)
    _assert_close(_model(tmp_path / "a"), _model(tmp_path / "b"))


def test_two_ranks_streaming_shards_resume_mid_epoch_on_two_exactly_and_on_one(tmp_path):
    """Each rank reads its share of every batch from memory-mapped shards; rank 1 is killed mid-epoch after a step
    checkpoint; the job resumes on 2 processes as if never stopped, and on 1 process within float rounding."""
    import shutil

    write_npy_shards(worker.data()[0].numpy(), tmp_path / "shards", rows_per_shard=40)
    flags = ["--shards", tmp_path / "shards", "--checkpoint-every", "2"]
    _torchrun(tmp_path / "whole", 2, *flags)
    procs, survivor = _one_rank_fails(WORKER, str(tmp_path / "cut"), "2", "--die-rank", "1", "--die-step", "6",
                                   *map(str, flags))
    assert procs[1].returncode == -9 and procs[0].returncode == 2, survivor
    meta = read_checkpoint(tmp_path / "cut" / "checkpoint").files["state.json"]
    assert '"step": 2' in meta.read_text()  # epoch 2 of 4 steps, stopped after its second
    shutil.copytree(tmp_path / "cut", tmp_path / "cut-one")
    _torchrun(tmp_path / "cut", 2, "--resume", *flags)
    assert all(torch.equal(a, b) for a, b in zip(_model(tmp_path / "cut").values(), _model(tmp_path / "whole").values()))
    _single(tmp_path / "cut-one", 2, resume=True)
    _assert_close(_model(tmp_path / "cut-one"), _model(tmp_path / "whole"))


def test_two_ranks_read_their_own_tar_shards_resume_mid_epoch_on_two_exactly_and_refuse_one(tmp_path, capsys):
    """Each rank reads its own .tar shards (unequal ones: 30, 25, 20, 15 and 10 samples); rank 1 is killed mid-epoch
    after a step checkpoint; the job resumes on 2 processes as if never stopped, and a resume on 1 is refused, since
    one process would split the epoch's shards otherwise. An epoch checkpoint resumes on any number."""
    import shutil

    from test_scale import write_tar

    tar = write_tar(tmp_path / "tar", worker.data()[0].numpy(), (30, 25, 20, 15, 10))
    flags = ["--tar", tar, "--checkpoint-every", "2"]
    _torchrun(tmp_path / "whole", 2, *flags)
    procs, survivor = _one_rank_fails(WORKER, str(tmp_path / "cut"), "2", "--die-rank", "1", "--die-step", "6", *flags)
    assert procs[1].returncode == -9 and procs[0].returncode == 2, survivor
    shutil.copytree(tmp_path / "cut", tmp_path / "cut-one")
    _torchrun(tmp_path / "cut", 2, "--resume", *flags)
    assert all(torch.equal(a, b) for a, b in zip(_model(tmp_path / "cut").values(), _model(tmp_path / "whole").values()))
    assert worker.main([str(tmp_path / "cut-one"), "2", "--resume", *flags]) == 2
    assert "taken mid-epoch by 2 process(es), each reading its own .tar shards" in capsys.readouterr().err
    _single(tmp_path / "one", 1, False, "--tar", tar)
    _torchrun(tmp_path / "one", 2, "--resume", "--tar", tar)
    assert [row["epoch"] for row in _read_rows(tmp_path / "one")] == [1, 2]


def _one_rank_fails(*args: str, failing: int = 1, **env) -> tuple[list[subprocess.Popen], str]:
    """Start `python ARGS` as ranks 0 and 1 of a 2-process job whose rank `failing` dies or hangs; the processes
    and the other rank's stderr."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *args], stderr=subprocess.PIPE, text=True,
                              env=_env(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **env))
             for rank in range(2)]
    try:
        survivor = procs[1 - failing].communicate(timeout=90)[1]
        if env.get("FAIL_SIGNAL") != "SIGSTOP":  # a stopped rank never exits by itself: `finally` kills it
            procs[failing].wait(timeout=30)
    except subprocess.TimeoutExpired:
        if procs[1 - failing].returncode is None:
            raise
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return procs, survivor


def test_a_killed_rank_fails_the_job_with_a_clear_message_not_a_hang(tmp_path):
    procs, survivor = _one_rank_fails(WORKER, str(tmp_path / "run"), "3", "--die-rank", "1", "--die-step", "2")
    assert procs[1].returncode == -9
    assert procs[0].returncode == 2, survivor
    assert "rank 0 of 2: the gradient all-reduce failed because another process died" in survivor
    assert "Traceback" not in survivor


_FAIL_IN_THE_FIRST_EPOCH = """
import os, signal, sys
from vaekit import cli, vae
loss, calls = vae.VAE.loss, [0]
def failing(self, *args, **kwargs):
    calls[0] += 1
    if os.environ["RANK"] == os.environ.get("FAIL_RANK", "1") and calls[0] > 2:
        os.kill(os.getpid(), getattr(signal, os.environ.get("FAIL_SIGNAL", "SIGKILL")))
    return loss(self, *args, **kwargs)
vae.VAE.loss = failing
sys.exit(cli.main(sys.argv[1:]))
"""
_TINY_RUN = ["--data", "digits", "--network", "mlp", "--hidden", "8", "--latent-dim", "2", "--epochs", "2",
             "--batch-size", "64", "--device", "cpu"]


def test_a_rank_lost_before_the_first_checkpoint_is_recovered_as_the_message_says_with_resume(tmp_path, capsys):
    from vaekit import cli
    from vaekit.apps import images as runs

    options = _TINY_RUN
    procs, survivor = _one_rank_fails("-c", _FAIL_IN_THE_FIRST_EPOCH, "train", "--out", str(tmp_path / "run"), *options)
    assert procs[1].returncode == -9 and procs[0].returncode == 2, survivor
    assert "then restart with --resume" in survivor and not (tmp_path / "run" / "checkpoint").exists()
    capsys.readouterr()
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 0
    assert "vaekit: warning:" in (err := capsys.readouterr().err) and "starts again from epoch 1" in err  # one line
    runs.train(tmp_path / "straight", epochs=2, data="digits", network="mlp", hidden=(8,), latent_dim=2, batch_size=64,
               device="cpu")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (
        tmp_path / "straight" / "model.safetensors").read_bytes()


def test_a_rank_whose_peer_hangs_exits_with_vaekits_status_and_one_line_not_sigabrt(tmp_path):
    # The survivor is rank 1 and its peer rank 0 (which holds the group's store) is stopped: the case that
    # aborted in teardown ("terminate called without an active exception", status 134) about 1 run in 3.
    procs, survivor = _one_rank_fails("-c", _FAIL_IN_THE_FIRST_EPOCH, "train", "--out", str(tmp_path / "run"),
                                      *_TINY_RUN, failing=0, FAIL_RANK="0", FAIL_SIGNAL="SIGSTOP",
                                      VAEKIT_DIST_TIMEOUT="3")
    assert procs[1].returncode == 2, survivor
    errors = [line for line in survivor.splitlines() if "vaekit: error:" in line]
    assert len(errors) == 1 and "did not answer within 3 s" in errors[0], survivor
    assert "terminate called" not in survivor and "Traceback" not in survivor


def test_outside_torchrun_the_trainer_is_one_process_and_bad_settings_are_clear(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    trainer = Trainer(worker.build(), TrainConfig(progress=False, device="cpu"))
    assert (trainer.group.rank, trainer.group.world_size, trainer.group.distributed) == (0, 1, False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR"):
        from_environment(torch.device("cpu"))
    monkeypatch.setenv("VAEKIT_DIST_TIMEOUT", "soon")
    with pytest.raises(DistributedError, match="VAEKIT_DIST_TIMEOUT"):
        from_environment(torch.device("cpu"))


def test_npy_shards_read_rows_lazily_in_any_order(tmp_path):
    x = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    paths = write_npy_shards(iter([x[:2], x[2:]]), tmp_path, rows_per_shard=2)
    assert [p.name for p in paths] == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    shards = NpyShards(tmp_path)
    assert len(shards) == 5 and shards.shape == (5, 2, 3)
    assert isinstance(shards.arrays[0], np.memmap)
    index = torch.tensor([4, 0, 3, 0, 1])
    torch.testing.assert_close(shards[index], torch.as_tensor(x[index.numpy()], dtype=torch.float32) / 255)
    assert NpyShards(paths, scale=1.0)[torch.tensor([2])].max() == x[2].max()
    with pytest.raises(IndexError):
        shards[torch.tensor([5])]


def test_npy_shards_reject_what_they_cannot_read(tmp_path):
    with pytest.raises(DataError, match="no .npy shards"):
        NpyShards(tmp_path / "missing-*.npy")
    np.save(tmp_path / "a.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(DataError, match="same row shape"):
        NpyShards(tmp_path)
    with pytest.raises(DataError, match="empty"):
        write_npy_shards(np.zeros((0, 3)), tmp_path / "none")


def test_under_torchrun_only_rank_0_prints_the_epoch_summary_and_what_it_wrote(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-addr=127.0.0.1",
               f"--master-port={_free_port()}", "-m", "vaekit", "train", "--data", "digits", "--hidden", "16",
               "--latent-dim", "2", "--epochs", "2", "--out", str(tmp_path / "run")]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2  loss") == 1 and done.stdout.count("epoch 2: loss") == 1
    assert done.stdout.count("wrote ") == 1
    assert done.stderr.count("posterior collapse") <= 1
