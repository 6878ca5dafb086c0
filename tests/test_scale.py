"""Data at scale (issue 44): every streamed source reads the rows a tensor holds, training on a map-style source
equals training on the tensor, and a run interrupted mid-epoch (an exception, or a real kill -9) resumes from its
step checkpoint bit for bit, for every input kind."""

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data import streams
from vaekit.data.shards import write_npy_shards
from vaekit.data.splits import training_splits
from vaekit.errors import ConfigError, DataError
from vaekit.training import Trainer
from vaekit.vae import build_vae

ROWS, SIDE = 60, 4
SRC = str(Path(__file__).parents[1] / "src")


def pixels() -> np.ndarray:
    """(ROWS, SIDE, SIDE) uint8 binary images."""
    return ((np.random.default_rng(0).random((ROWS, SIDE, SIDE)) < 0.4) * 255).astype(np.uint8)


def as_model_input(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x[:, None].astype(np.float32) / 255)


def write_source(kind: str, folder: Path) -> str:
    """The rows of pixels() stored as `kind`; returns the --data path."""
    x = pixels()
    if kind == "npy":
        write_npy_shards(x, folder, rows_per_shard=25)
    elif kind == "datasets":
        datasets = pytest.importorskip("datasets")
        datasets.Dataset.from_dict({"label": [0] * ROWS, "pixels": list(x)}).save_to_disk(str(folder))
    elif kind == "tar":
        return write_tar(folder, x, (20, 20, 20))
    elif kind == "images":
        from PIL import Image

        folder.mkdir()
        for i, image in enumerate(x):
            Image.fromarray(image).save(folder / f"{i:03d}.png")
    return str(folder)


def write_tar(folder: Path, x: np.ndarray, sizes: tuple[int, ...]) -> str:
    """The rows of x as WebDataset shards of `sizes` samples (one .npy entry each); returns their brace pattern."""
    webdataset = pytest.importorskip("webdataset")
    folder.mkdir()
    starts = np.cumsum((0, *sizes))
    for shard, size in enumerate(sizes):
        with webdataset.TarWriter(str(folder / f"part-{shard:03d}.tar")) as tar:
            for i in range(starts[shard], starts[shard] + size):
                buffer = io.BytesIO()
                np.save(buffer, x[i])
                tar.write({"__key__": f"{i:06d}", "npy": buffer.getvalue()})
    return str(folder / f"part-{{000..{len(sizes) - 1:03d}}}.tar")


KINDS = ("npy", "datasets", "tar", "images")


@pytest.mark.parametrize("kind", KINDS)
def test_each_source_reads_the_rows_a_tensor_holds(tmp_path, kind):
    path = write_source(kind, tmp_path / kind)
    assert streams.stream_kind(path) == kind
    source = streams.open_source(path, "pixels" if kind == "datasets" else None)
    assert len(source) == ROWS and source.shape == (ROWS, 1, SIDE, SIDE)
    assert torch.equal(streams.read_all(source), as_model_input(pixels()))


class SingleRows(torch.utils.data.Dataset):
    """A user's torch Dataset of single (row, label) pairs."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 0


def _vae():
    torch.manual_seed(0)
    return build_vae(ModelConfig(network="mlp", hidden=(8,), latent_dim=2, data_shape=(1, SIDE, SIDE)))


def _fit(data, run_dir=None, die_after=None, resume=False, **options):
    """Train 2 epochs of 4 steps; with die_after, stop as a kill would at that optimizer step. The weights."""
    vae = _vae()
    if die_after is not None:
        calls, loss = [0], vae.loss

        def dying(x, **kwargs):
            calls[0] += 1
            if calls[0] > die_after:
                raise KeyboardInterrupt
            return loss(x, **kwargs)

        vae.loss = dying
    config = TrainConfig(**{"epochs": 2, "batch_size": 16, "lr": 1e-2, "progress": False, "device": "cpu",
                            "workers": 0, **options})
    trainer = Trainer(vae, config, run_dir)
    if resume:
        trainer.resume()
    try:
        trainer.fit(data)
    except KeyboardInterrupt:
        return None
    return {name: value.clone() for name, value in vae.state_dict().items()}


def _assert_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("kind,workers", [("npy", 0), ("datasets", 0), ("images", 1), ("single", 0)])
def test_training_on_a_map_style_source_equals_training_on_the_tensor(tmp_path, kind, workers):
    data = SingleRows(as_model_input(pixels())) if kind == "single" else streams.open_source(
        write_source(kind, tmp_path / kind), "pixels" if kind == "datasets" else None)
    _assert_equal(_fit(data, workers=workers), _fit(as_model_input(pixels())))


@pytest.mark.parametrize("kind,workers", [("tensor", 0), ("npy", 0), ("datasets", 0), ("tar", 0), ("tar", 2),
                                          ("images", 1), ("single", 0)])
def test_a_run_stopped_mid_epoch_resumes_from_its_step_checkpoint_bit_for_bit(tmp_path, kind, workers):
    if kind == "tensor":
        data = as_model_input(pixels())
    elif kind == "single":
        data = SingleRows(as_model_input(pixels()))
    else:
        data = streams.open_source(write_source(kind, tmp_path / kind), "pixels" if kind == "datasets" else None)
    whole = _fit(data, tmp_path / "whole", checkpoint_every=3, workers=workers)
    # steps 0..6 run; the step checkpoint after step 6 (epoch 2, step 3 of 4) is the last one
    assert _fit(data, tmp_path / "cut", die_after=7, checkpoint_every=3, workers=workers) is None
    _assert_equal(_fit(data, tmp_path / "cut", resume=True, checkpoint_every=3, workers=workers), whole)
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() != ""


def test_tar_shards_start_at_any_sample_and_give_each_worker_whole_batches(tmp_path):
    source = streams.open_source(write_source("tar", tmp_path / "tar"))
    assert sorted(source.epoch_order(1)) == [0, 1, 2]
    source.set_position(1, 0, 8)
    epoch = torch.stack(list(source))
    source.set_position(1, 24, 8)  # step 3 of batches of 8: inside the second shard of the epoch's order
    assert torch.equal(torch.stack(list(source)), epoch[24:])
    from vaekit.batches import epoch_batches

    def batches(workers):
        return [b for b, _, _ in epoch_batches(source, None, 8, 1, None, workers, epoch=1)]

    one, two = batches(0), batches(2)
    assert len(one) == len(two) == 7 and all(torch.equal(a, b) for a, b in zip(one, two))
    assert torch.equal(torch.cat(one), epoch[8:])


def test_a_source_is_held_in_memory_when_it_takes_at_most_a_quarter_of_the_available_memory(tmp_path, monkeypatch):
    path = write_source("npy", tmp_path / "npy")
    need = ROWS * SIDE * SIDE * 4
    monkeypatch.setattr(streams, "available_memory", lambda: 4 * need)
    assert torch.is_tensor(training_splits(DataConfig(data=path)).x_train)
    monkeypatch.setattr(streams, "available_memory", lambda: 4 * need - 1)
    split = training_splits(DataConfig(data=path, val_fraction=0.1))
    assert isinstance(split.x_train, streams.RowSubset) and len(split.x_train) == ROWS - 6 == 54
    assert split.x_val.shape == (6, 1, SIDE, SIDE)
    held = torch.cat([split.x_train[torch.arange(54)], split.x_val])  # every row once, training or validation
    assert sorted(map(bytes, held.numpy().astype(np.uint8))) == sorted(map(bytes, as_model_input(pixels()).numpy().astype(np.uint8)))
    assert torch.is_tensor(training_splits(DataConfig(data=path, stream="never")).x_train)


def test_streamed_data_mistakes_are_one_line_errors(tmp_path):
    npy = write_source("npy", tmp_path / "npy")
    with pytest.raises(ConfigError, match="--column applies"):
        training_splits(DataConfig(data=npy, column="pixels"))
    with pytest.raises(ConfigError, match="--binarize static needs the data in memory"):
        training_splits(DataConfig(data=npy, stream="always", binarize="static"))
    hf = write_source("datasets", tmp_path / "hf")
    with pytest.raises(DataError, match="no column 'nope'.*pass --column, one of label, pixels"):
        streams.open_source(hf, "nope")
    tar = write_source("tar", tmp_path / "tar")
    with pytest.raises(DataError, match="no entry 'png'"):
        streams.read_all(streams.open_source(tar, "png"))
    with pytest.raises(DataError, match="no .tar shards"):
        streams.open_source(str(tmp_path / "none-{000..001}.tar"))
    from vaekit.apps.images import train

    with pytest.raises(ConfigError, match="--condition label needs the data in memory"):
        train(tmp_path / "run", data=npy, stream="always", condition="label", network="mlp", epochs=1)


KILLED = str(Path(__file__).with_name("killed_train.py"))


def test_kill_9_mid_epoch_then_resume_ends_as_the_uninterrupted_run(tmp_path):
    from vaekit.cli import main

    data = write_source("npy", tmp_path / "npy")
    flags = ["train", "--data", data, "--stream", "always", "--network", "mlp", "--hidden", "8", "--latent-dim", "2",
             "--epochs", "3", "--batch-size", "16", "--checkpoint-every", "3", "--workers", "0"]
    assert main([*flags, "--out", str(tmp_path / "whole")]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, KILLED, "7", *flags, "--out", str(tmp_path / "cut")], env=env,
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert main([*flags, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    for name in ("model.safetensors", "metrics.jsonl"):
        whole, cut = (tmp_path / "whole" / name).read_bytes(), (tmp_path / "cut" / name).read_bytes()
        if name == "metrics.jsonl":  # the same rows but for the seconds measured
            import json

            whole, cut = ([{k: v for k, v in json.loads(line).items() if "second" not in k and k != "samples_per_s"}
                           for line in text.splitlines()] for text in (whole, cut))
        assert whole == cut, name


def _opened_shards(monkeypatch) -> list[str]:
    """The .tar shards TarShards opens from now on, in order (a wrapper that counts, not a memory probe)."""
    opened, samples = [], streams.TarShards._samples

    def counted(self, shards, *args):
        opened.extend(shards)
        return samples(self, shards, *args)

    monkeypatch.setattr(streams.TarShards, "_samples", counted)
    return opened


def _rank_batches(source, rank: int, world: int, start: int = 0, workers: int = 0, batch_size: int = 16):
    from vaekit.batches import epoch_batches

    return list(epoch_batches(source, None, batch_size, start, None, workers, 1, rank, world))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_under_ddp_each_rank_reads_only_its_own_tar_shards_and_the_ranks_every_sample_once(tmp_path, monkeypatch,
                                                                                           world):
    source = streams.open_source(write_source("tar", tmp_path / "tar"))
    opened = _opened_shards(monkeypatch)
    ranks, shards = [], []
    for rank in range(world):
        opened.clear()
        ranks.append(_rank_batches(source, rank, world))
        shards.append(sorted(opened))
    assert sorted(sum(shards, [])) == sorted(source.shards)  # each shard opened by one rank, once
    assert [len(batches) for batches in ranks] == [4] * world  # every rank the same ceil(60 / 16) steps
    for step in range(4):
        counts = [batches[step][1] for batches in ranks]
        assert all(batches[step][2] == sum(counts) for batches in ranks)  # the global batch each rank weights by
    rows = torch.cat([batch for batches in ranks for batch, _, _ in batches])
    assert sorted(map(bytes, rows.numpy())) == sorted(map(bytes, as_model_input(pixels()).numpy()))
    if world == 1:
        assert [count for _, count, _ in ranks[0]] == [16, 16, 16, 12]
    elif world == 2:  # 40 and 20 samples, read at the pace of the whole: 16 * 40 / 60 and 16 * 20 / 60 a step
        assert [[count for _, count, _ in batches] for batches in ranks] == [[10, 11, 11, 8], [5, 5, 6, 4]]


def test_a_rank_resumes_its_tar_batches_at_any_step_with_any_workers_and_more_ranks_than_shards_are_refused(tmp_path):
    source = streams.open_source(write_source("tar", tmp_path / "tar"))
    whole = _rank_batches(source, 1, 2)
    resumed = _rank_batches(source, 1, 2, start=2, workers=2)
    assert len(resumed) == 2 and all(torch.equal(a[0], b[0]) and a[1:] == b[1:] for a, b in zip(resumed, whole[2:]))
    with pytest.raises(DataError, match="3 .tar shards cannot give each of 4 processes its own"):
        _rank_batches(source, 0, 4)
    source.counts = source.counts + 1  # headers that count a sample more than the shard holds
    with pytest.raises(DataError, match="ended before the samples their file names count"):
        _rank_batches(source, 0, 1)


def test_a_rank_with_fewer_samples_than_steps_joins_its_empty_steps_with_a_row_it_counts_zero(tmp_path):
    source = streams.open_source(write_tar(tmp_path / "tar", pixels(), (40, 2)))
    for rank in range(2):
        batches = _rank_batches(source, rank, 2, batch_size=4)
        assert len(batches) == 11 and sum(count for _, count, _ in batches) in (40, 2)
        for batch, count, _ in batches:
            assert len(batch) == max(count, 1) and (count or not batch.any())


def test_under_ddp_each_rank_reads_only_its_share_of_a_map_style_source(tmp_path):
    from vaekit.batches import epoch_batches
    from vaekit.distributed import Group

    source = streams.open_source(write_source("npy", tmp_path / "npy"))
    read = []

    class Counted:
        def __len__(self):
            return len(source)

        def __getitem__(self, index):
            read[-1].extend(index.tolist())
            return source[index]

    order = torch.randperm(ROWS, generator=torch.Generator().manual_seed(0))
    for rank in range(2):
        read.append([])
        list(epoch_batches(Counted(), order, 16, 0, Group(rank, 2, torch.device("cpu")).shard, 0, 0, rank, 2))
    assert len(read[0]) == len(read[1]) == ROWS // 2 and sorted(read[0] + read[1]) == list(range(ROWS))


def test_an_unreadable_image_read_by_a_worker_process_is_the_same_one_line_error_as_without_workers(tmp_path,
                                                                                                  capsys):
    from vaekit.cli import main

    folder = Path(write_source("images", tmp_path / "images"))
    (folder / "zz_broken.png").write_bytes(b"not a png")  # sorted last: the first image, read for the shape, is fine
    messages = []
    for workers in ("0", "1"):
        assert main(["train", "--data", str(folder), "--stream", "always", "--network", "mlp", "--hidden", "8",
                     "--latent-dim", "2", "--epochs", "1", "--batch-size", "16", "--workers", workers,
                     "--out", str(tmp_path / f"run{workers}")]) == 2
        messages.append(capsys.readouterr().err)
    assert messages[0] == messages[1]
    assert messages[1].count("\n") == 1 and "cannot read" in messages[1] and "zz_broken.png" in messages[1]
