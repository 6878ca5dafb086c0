"""`vaekit compress` of VQ and FSQ runs (issue 43): their codes ANS-coded under the learned code prior, exactly back,
at the prior's -log2 p(codes); the encoder's probability tables bit-identical to the decoder's; mismatches refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("constriction")

from vaekit.apps import images  # noqa: E402
from vaekit.apps.compression import compress, decompress  # noqa: E402
from vaekit.cli import main  # noqa: E402
from vaekit.compression import codes as code_coder  # noqa: E402
from vaekit.compression import container as fmt  # noqa: E402
from vaekit.errors import CheckpointError, ConfigError, DataError  # noqa: E402


def _run(folder, bottleneck):
    quantizer = {"vq": {"code_dim": 2, "codebook_size": 16}, "fsq": {"fsq_levels": (3, 3)}}[bottleneck]
    return images.train(folder / bottleneck, data="digits", network="mlp", hidden=(16,), latent_dim=8,
                        bottleneck=bottleneck, epochs=1, progress=False, **quantizer)


@pytest.fixture(scope="module", params=["vq", "fsq"])
def run(request, tmp_path_factory):
    """A quantized run of one epoch on digits with a code prior of two epochs, loaded back as the CLI would."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("codes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAEKIT_DATA", str(folder))  # digits is built in
        trained = _run(folder, request.param)
        images.train_prior(trained, epochs=2, width=16, heads=2, progress=False)
    return images.load_run(trained.path, device="cpu")


@pytest.fixture(scope="module")
def x(run):
    """300 digits test images as uint8 levels (n, 1, 8, 8): more than one chunk of the coder."""
    x = images.run_splits(run).x_test.numpy()
    return np.round(np.resize(x, (300, *x.shape[1:])) * 255).astype(np.uint8)


def _codes(run, x):
    with torch.inference_mode():
        return run.vae.encode(torch.from_numpy(x).float() / 255).codes.numpy()


def test_codes_round_trip_exactly_at_the_priors_rate(run, x):
    codes = _codes(run, x)
    assert len(np.unique(codes)) > 1
    words = code_coder.encode_codes(run.vae.prior, codes)
    decoded, clean = code_coder.decode_codes(run.vae.prior, words, len(codes))
    assert clean and np.array_equal(decoded, codes)
    ideal = code_coder.code_bits(run.vae.prior, codes).sum()
    uniform = codes.size * np.log2(run.vae.posterior.codebook_size)
    assert ideal < uniform  # the prior learned something, so the rate below is not the uniform code's
    assert -1 <= 32 * len(words) - ideal <= 64 + 0.05 * len(codes)  # ANS: the flushed state + a bit per 20 images


def test_encoder_and_decoder_compute_bit_identical_probability_tables(run, x, monkeypatch):
    tables = {"encode": [], "decode": []}
    side = "encode"
    probabilities = code_coder._probabilities

    def recorded(*args):
        table = probabilities(*args)
        tables[side].append(table)
        return table

    monkeypatch.setattr(code_coder, "_probabilities", recorded)
    codes = _codes(run, x)
    words = code_coder.encode_codes(run.vae.prior, codes)
    side = "decode"
    code_coder.decode_codes(run.vae.prior, words, len(codes))
    assert len(tables["encode"]) == len(tables["decode"]) == 2 * run.vae.posterior.n_codes  # 2 chunks
    assert all(np.array_equal(a, b) for a, b in zip(tables["encode"], tables["decode"]))


def test_file_round_trip_gives_the_reconstruction_of_the_codes(run, x, tmp_path):
    written = compress(run, x, tmp_path / "x.vae")
    box = fmt.unpack(written.path.read_bytes())
    assert box.kind == fmt.CODES and written.bytes == written.path.stat().st_size
    restored = np.load(decompress(run.path, written.path, tmp_path / "restored.npy"))
    with torch.inference_mode():
        mean = run.vae.decode_mean(run.vae.posterior.lookup(torch.from_numpy(_codes(run, x)))).numpy()
    assert restored.dtype == np.uint8 and restored.shape == x.shape
    assert np.array_equal(restored, np.round(mean * 255).astype(np.uint8))
    floats = np.load(decompress(run, compress(run, x / np.float32(255), tmp_path / "f.vae").path, tmp_path / "f"))
    assert floats.dtype == np.float32 and np.abs(floats - mean).max() < 1e-6


def test_probabilities_other_than_the_encoders_are_caught(run, x, tmp_path, monkeypatch):
    path = compress(run, x[:40], tmp_path / "x.vae").path
    probabilities = code_coder._probabilities

    def perturbed(*args):  # one per cent on the last symbol, tapering to none on the first
        table = probabilities(*args)
        return table * np.linspace(1, 1.01, table.shape[-1])

    monkeypatch.setattr(code_coder, "_probabilities", perturbed)
    with pytest.raises(DataError, match="did not decode"):
        decompress(run, path, tmp_path / "y.npy")


def test_another_code_prior_a_missing_one_and_lossy_flags_are_refused(run, x, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))  # digits is built in
    path = compress(run, x[:20], tmp_path / "x.vae").path
    other = tmp_path / "other"
    shutil.copytree(run.path, other)
    images.train_prior(images.load_run(other), epochs=1, width=16, heads=2, seed=1, progress=False)
    with pytest.raises(CheckpointError, match="another code prior"):
        decompress(other, path, tmp_path / "y.npy")
    with pytest.raises(ConfigError, match="drop --lossy-bits"):
        compress(run, x[:20], tmp_path / "z.vae", lossy_bits=4)
    shutil.rmtree(other / "code_prior")
    np.save(tmp_path / "x.npy", x[:20])
    assert main(["compress", str(other), str(tmp_path / "x.npy"), "-o", str(tmp_path / "z.vae")]) != 0
    err = capsys.readouterr().err.strip()
    assert "vaekit train-prior" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["decompress", str(other), str(path), "-o", str(tmp_path / "z.npy")]) != 0
    assert "vaekit train-prior" in capsys.readouterr().err
