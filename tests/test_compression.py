"""vaekit.apps.compression and its parts in vaekit.compression: bits-back round trips and rate, the file format's checks, lossy codes, the CLI."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

pytest.importorskip("constriction")

from vaekit.apps import images as image_runs  # noqa: E402
from vaekit.cli import main  # noqa: E402
from vaekit.apps.compression import BitsBackCoder, CoderConfig, compress, decompress  # noqa: E402
from vaekit.compression import container as fmt  # noqa: E402
from vaekit.data.splits import load_splits  # noqa: E402
from vaekit.compression.lossy import (entropy_decode, entropy_encode, index_probabilities, pack_indices,  # noqa: E402
                                      psnr, ssim, unpack_indices)
from vaekit.config import ModelConfig, to_dict  # noqa: E402
from vaekit.errors import CheckpointError, ConfigError, DataError, VaekitError  # noqa: E402
from vaekit.vae import build_vae  # noqa: E402


def _train(path, seed=0):
    return image_runs.train(path, data="digits", binarize="static", network="mlp", hidden=(32,), latent_dim=4,
                      epochs=3, seed=seed, progress=False, device="cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    return _train(tmp_path_factory.mktemp("compression") / "run")


@pytest.fixture(scope="module")
def binary(run):
    """Binarized digits test images, uint8 0/1 (n, 1, 8, 8)."""
    return load_splits(run.data, run.train.seed).x_test.numpy().astype(np.uint8)


def test_bits_back_round_trip_is_exact_and_costs_about_the_elbo(run, binary):
    coder = BitsBackCoder(run.vae)
    words = coder.encode(binary)
    decoded, clean = coder.decode(words, len(binary), binary.shape[1:])
    assert clean and np.array_equal(decoded, binary)
    assert np.array_equal(words, coder.encode(binary))  # deterministic
    torch.manual_seed(0)
    with torch.inference_mode():
        x = torch.from_numpy(binary).float()
        neg_elbo = float(-run.vae.elbo(x, n_samples=200).total().mean())
    rate = 32 * (len(words) - len(coder.initial_words())) / len(binary)  # bits per image beyond the seed words
    assert rate == pytest.approx(neg_elbo / math.log(2), rel=0.05)


def test_file_round_trip_keeps_dtype_shape_and_values(run, binary, tmp_path):
    images = binary[:, 0] * np.uint8(255)  # (n, 8, 8) uint8 0/255
    written = compress(run, images, tmp_path / "x.vae")
    assert written.bytes == (tmp_path / "x.vae").stat().st_size and written.bits_per_dim < 1
    restored = np.load(decompress(run.path, written.path, tmp_path / "restored"))
    assert restored.dtype == images.dtype and np.array_equal(restored, images)


def test_header_holds_magic_version_model_and_shapes(run, binary, tmp_path):
    data = compress(run, binary[:10].astype(np.float32), tmp_path / "x.vae").path.read_bytes()
    assert data[:8] == fmt.MAGIC and struct.unpack_from("<H", data, 8)[0] == fmt.VERSION
    box = fmt.unpack(data)
    assert box.kind == fmt.LOSSLESS and box.meta["shape"] == [10, 1, 8, 8] and box.meta["dtype"] == "<f4"
    assert box.model_hash == fmt.model_hash(run.vae, to_dict(run.model))


def test_other_model_and_corruption_are_refused(run, binary, tmp_path):
    path = compress(run, binary[:20], tmp_path / "x.vae").path
    other = _train(tmp_path / "other", seed=1)
    with pytest.raises(CheckpointError, match="another model"):
        decompress(other, path, tmp_path / "y.npy")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    (tmp_path / "bad.vae").write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted"):
        decompress(run, tmp_path / "bad.vae", tmp_path / "y.npy")
    (tmp_path / "junk.vae").write_bytes(b"not a vae file at all" * 10)
    with pytest.raises(DataError, match="bad magic"):
        decompress(run, tmp_path / "junk.vae", tmp_path / "y.npy")


def test_a_forged_checksum_still_fails_the_data_hash(run, binary, tmp_path):
    box = fmt.unpack(compress(run, binary[:20], tmp_path / "x.vae").path.read_bytes())
    words = bytearray(box.payload)
    words[0] ^= 0xFF  # flips bits deep in the ANS stack; the checksum is recomputed to match
    forged = fmt.pack(fmt.Container(box.kind, box.model_hash, box.data_hash, box.meta, bytes(words)))
    (tmp_path / "forged.vae").write_bytes(forged)
    with pytest.raises(DataError, match="did not decode cleanly|does not match its hash"):
        decompress(run, tmp_path / "forged.vae", tmp_path / "y.npy")


def test_bad_inputs_are_typed_errors(run, binary, tmp_path):
    with pytest.raises(DataError, match="values other than 0 and 1"):
        compress(run, binary * 0.5 + 0.25, tmp_path / "x.vae")
    with pytest.raises(DataError, match="shape"):
        compress(run, np.zeros((3, 7, 7), np.uint8), tmp_path / "x.vae")
    gaussian = build_vae(ModelConfig(likelihood="gaussian", network="mlp", hidden=(8,), latent_dim=2,
                                     data_shape=(1, 8, 8)))
    with pytest.raises(ConfigError, match="discrete likelihood"):
        BitsBackCoder(gaussian)
    with pytest.raises(ConfigError, match="step_log2"):
        BitsBackCoder(run.vae, CoderConfig(step_log2=0))
    with pytest.raises(ConfigError, match="lossy-bits"):
        compress(run, binary, tmp_path / "x.vae", lossy_bits=0)


CRAFTED = [  # (lossy?, header changes, field the error names): each allocated gigabytes or crashed before
    (False, dict(n=10 ** 9), "shape"), (False, dict(n=10 ** 9, shape=[10 ** 9, 1, 8, 8]), "memory"),
    (False, dict(shape=[10 ** 6, 10 ** 6]), "shape"), (False, dict(levels=0), "levels"),
    (False, dict(dtype="|O"), "dtype"), (False, dict(coder={"step_log2": 10 ** 6}), "coder"),
    (False, dict(coder={"bogus": 1}), "coder"), (False, dict(n="many"), "n"), (False, dict(top=0), "top"),
    (False, dict(transposed="yes"), "transposed"), (True, dict(n=10 ** 9, shape=[10 ** 9, 1, 8, 8]), "n"),
    (True, dict(bits=0), "bits"),
    (True, dict(mask=[1] * 10 ** 5), "mask"), (True, dict(shape=[20, 10 ** 6]), "shape"),
    (True, dict(scale="big"), "scale"), (True, dict(entropy_coded=1), "entropy_coded"),
]


@pytest.mark.parametrize("lossy, changes, field", CRAFTED)
def test_crafted_headers_with_valid_checksums_are_refused_before_allocating(run, binary, tmp_path, lossy, changes,
                                                                            field):
    box = fmt.unpack(compress(run, binary[:20], tmp_path / "x.vae", lossy_bits=4 if lossy else None).path.read_bytes())
    crafted = fmt.pack(fmt.Container(box.kind, box.model_hash, box.data_hash, {**box.meta, **changes}, box.payload))
    (tmp_path / "crafted.vae").write_bytes(crafted)
    with pytest.raises(VaekitError, match=f"\\({field} = |{field}"):
        decompress(run, tmp_path / "crafted.vae", tmp_path / "y.npy")
    assert not (tmp_path / "y.npy").exists()


def test_lossy_codes_approach_the_unquantized_reconstruction(run, binary, tmp_path):
    images = binary[:, 0] * np.uint8(255)
    with torch.inference_mode():
        target = run.vae.reconstruct(torch.from_numpy(binary).float())[:, 0].numpy()  # E[x|z = E[z|x]]
    errors = []
    for bits in (1, 10):
        written = compress(run, images, tmp_path / f"l{bits}.vae", lossy_bits=bits)
        back = np.load(decompress(run, written.path, tmp_path / f"l{bits}.npy"))
        assert back.shape == images.shape and back.dtype == np.uint8
        errors.append(float(np.abs(back / 255 - target).max()))
    assert errors[1] < min(errors[0], 3 / 255)


def test_entropy_coded_lossy_indices_decode_the_same_in_fewer_bytes(run, binary, tmp_path):
    images = binary[:, 0] * np.uint8(255)
    np.save(tmp_path / "x.npy", images)
    fixed = compress(run, images, tmp_path / "fixed.vae", lossy_bits=8)
    assert main(["compress", str(run.path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "coded.vae"),
                 "--lossy-bits", "8", "--entropy-code"]) == 0
    assert (tmp_path / "coded.vae").stat().st_size < fixed.bytes
    a = np.load(decompress(run, fixed.path, tmp_path / "a.npy"))
    b = np.load(decompress(run, tmp_path / "coded.vae", tmp_path / "b.npy"))
    assert np.array_equal(a, b)
    with pytest.raises(ConfigError, match="--lossy-bits"):
        compress(run, images, tmp_path / "x.vae", entropy_code=True)


def test_index_packing_and_quality_metrics_closed_forms():
    indices = np.random.default_rng(0).integers(0, 2 ** 5, (7, 3))
    assert np.array_equal(unpack_indices(pack_indices(indices, 5), (7, 3), 5), indices)
    assert len(pack_indices(indices, 5)) == math.ceil(7 * 3 * 5 / 8)
    uniform = index_probabilities(np.array([[0.0, 1.0], [1.0, 1.0]], np.float32), 5)  # N(0, 1) fills the buckets evenly
    assert uniform.shape == (2, 32) and np.allclose(uniform[0], 1 / 32) and np.allclose(uniform.sum(1), 1)
    narrow = index_probabilities(np.array([[0.0], [0.2]], np.float32), 5)
    assert np.array_equal(entropy_decode(entropy_encode(indices, narrow.repeat(3, 0)), 7, narrow.repeat(3, 0)),
                          indices)
    x = np.random.default_rng(1).random((2, 12, 12))
    assert psnr(np.zeros((1, 4, 4)), np.full((1, 4, 4), 0.1))[0] == pytest.approx(20.0)
    assert np.allclose(ssim(x, x), 1.0) and (ssim(x, 1 - x) < 0.5).all()


def test_cli_compress_and_decompress(run, binary, tmp_path, capsys):
    dims = binary.shape[1:]
    idx = tmp_path / "images.idx"  # an IDX file like MNIST's: magic, 3 dims, uint8 payload
    idx.write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", len(binary), *dims[1:]) + (binary * 255).tobytes())
    assert main(["compress", str(run.path), str(idx), "-o", str(tmp_path / "x.vae")]) == 0
    assert "bits/dim" in capsys.readouterr().out
    assert main(["decompress", str(run.path), str(tmp_path / "x.vae"), "-o", str(tmp_path / "out.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "out.npy"), binary[:, 0] * 255)
    assert main(["decompress", str(run.path), str(idx), "-o", str(tmp_path / "no.npy")]) == 2
    assert "not a vaekit compressed file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bytes_run(tmp_path_factory):
    """A discretized-logistic run trained with `vaekit train` on 8-bit digits, and those images (n, 1, 8, 8) uint8."""
    from sklearn.datasets import load_digits

    images = np.rint(load_digits().images * 255 / 16).astype(np.uint8)[:, None]
    folder = tmp_path_factory.mktemp("bytes")
    np.save(folder / "digits8.npy", images)
    assert main(["train", "--data", str(folder / "digits8.npy"), "--likelihood", "discretized_logistic",
                 "--gaussian-scale", "decoder", "--network", "mlp", "--hidden", "32", "--latent-dim", "4",
                 "--epochs", "10", "--out", str(folder / "run")]) == 0
    return image_runs.load_run(folder / "run", device="cpu"), images[:300]


def test_8bit_bits_back_round_trip_is_exact_and_costs_about_the_elbo(bytes_run):
    run, images = bytes_run
    coder = BitsBackCoder(run.vae)
    assert coder.levels == 256
    words = coder.encode(images)
    decoded, clean = coder.decode(words, len(images), images.shape[1:])
    assert clean and np.array_equal(decoded, images)
    torch.manual_seed(0)
    with torch.inference_mode():
        neg_elbo = float(-run.vae.elbo(torch.from_numpy(images).float() / 255, n_samples=200).total().mean())
    rate = 32 * (len(words) - len(coder.initial_words())) / len(images)
    assert rate == pytest.approx(neg_elbo / math.log(2), rel=0.05)


def test_8bit_files_round_trip_uint8_and_float_levels(bytes_run, tmp_path, capsys):
    run, images = bytes_run
    np.save(tmp_path / "x.npy", images[:50, 0])  # (n, 8, 8) uint8
    assert main(["compress", str(run.path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.vae")]) == 0
    assert "bits/dim" in capsys.readouterr().out
    assert main(["decompress", str(run.path), str(tmp_path / "x.vae"), "-o", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), images[:50, 0])
    floats = images[:20].astype(np.float32) / np.float32(255)  # the levels k/255 as vaekit loads them
    back = np.load(decompress(run, compress(run, floats, tmp_path / "f.vae").path, tmp_path / "f.npy"))
    assert back.dtype == np.float32 and np.array_equal(back, floats)
    with pytest.raises(DataError, match="not 8-bit levels"):
        compress(run, floats + np.float32(0.001), tmp_path / "bad.vae")
