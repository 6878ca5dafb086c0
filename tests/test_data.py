"""Contracts of vaekit.data: readers, dataset loading and layout, the lookup order of the
built-in IDX datasets, and verified downloads against a local HTTP server."""

import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.data import (
    SOURCES,
    DatasetSource,
    dataset_names,
    download,
    load_dataset,
    read_arrays,
    read_idx,
    read_image_folder,
    split_validation,
)
from vaekit.data.datasets import IDX_FILES
from vaekit.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")
_IDX_CODES = {np.uint8: 0x08, np.int16: 0x0B, np.float32: 0x0D, np.float64: 0x0E}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch the user's cache or data folders."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEKIT_DATA", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    code = _IDX_CODES[array.dtype.type]
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> bytes:
    """Write `array` as IDX (gzipped if the name ends in .gz); return the uncompressed bytes."""
    content = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return content


def write_idx_set(folder: Path, seed: int = 0, n_train: int = 6, n_test: int = 4):
    """The four MNIST-style files of a tiny 5x5 dataset. Returns (arrays, content sha256s)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 5, 5), dtype=np.uint8), rng.integers(0, 10, n_train).astype(np.uint8),
              rng.integers(0, 256, (n_test, 5, 5), dtype=np.uint8), rng.integers(0, 10, n_test).astype(np.uint8)]
    hashes = {name: hashlib.sha256(write_idx(folder / name, a)).hexdigest() for name, a in zip(IDX_FILES, arrays)}
    return arrays, hashes


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str):
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# --- IDX ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / f"a.idx{suffix}", array)
    out = read_idx(tmp_path / f"a.idx{suffix}")
    assert out.dtype == dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def _truncate(raw: bytes) -> bytes:
    return raw[:-7]


def _flip_middle(raw: bytes) -> bytes:
    middle = len(raw) // 2
    return raw[:middle] + bytes(b ^ 0xFF for b in raw[middle:middle + 8]) + raw[middle + 8:]


@pytest.mark.parametrize("suffix, damage, expected", [
    ("", _truncate, "payload"),
    (".gz", _truncate, "truncated gzip stream"),
    (".gz", _flip_middle, "corrupt gzip stream"),
    ("", lambda raw: b"\x12\x34" + raw[2:], "not an IDX file"),
    ("", lambda raw: raw[:2] + b"\x42" + raw[3:], "type code"),
    ("", lambda raw: raw[:6], "header"),
])
def test_idx_damage_is_a_data_error(tmp_path, suffix, damage, expected):
    path = tmp_path / f"x.idx{suffix}"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError) as error:
        read_idx(path)
    assert_one_line(error, str(path), expected)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent.gz")
    with pytest.raises(DataError, match="no such file"):
        read_arrays(tmp_path / "absent.npy")


# --- arrays: npy, npz, csv -------------------------------------------------------------------

def test_npy_and_npz(tmp_path):
    x, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 0, 1])
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "xy.npz", X=x, labels=y)
    np.savez(tmp_path / "single.npz", whatever=x)
    np.savez(tmp_path / "nox.npz", a=x, b=y)
    assert read_arrays(tmp_path / "a.npy")[1] is None
    got_x, got_y = read_arrays(tmp_path / "xy.npz")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(read_arrays(tmp_path / "single.npz")[0], x)
    with pytest.raises(DataError) as error:
        read_arrays(tmp_path / "nox.npz")
    assert_one_line(error, "a, b", "'x'")


def test_unknown_suffix_is_a_data_error(tmp_path):
    (tmp_path / "a.txt").write_text("1 2 3")
    with pytest.raises(DataError) as error:
        read_arrays(tmp_path / "a.txt")
    assert_one_line(error, ".npz")


def test_csv_with_header_and_label_column(tmp_path):
    (tmp_path / "t.csv").write_text("a,label,b\n1,0,2.5\n3,1,4\n5,1,6\n")
    x, y = read_arrays(tmp_path / "t.csv")
    np.testing.assert_array_equal(x, [[1, 2.5], [3, 4], [5, 6]])
    np.testing.assert_array_equal(y, [0, 1, 1])


def test_csv_without_header(tmp_path):
    (tmp_path / "t.csv").write_text("1,2\n3,4\n")
    x, y = read_arrays(tmp_path / "t.csv")
    assert x.shape == (2, 2) and y is None


@pytest.mark.parametrize("text, expected", [
    ("a,b\n1,2\n3,oops\n", "row 3 column 'b' holds 'oops'"),
    ("1,2\n3,\n", "row 2 column 2 is empty"),
    ("a,b\n1,2\n3\n", "row 3 has 1 cells, expected 2"),
])
def test_bad_csv_names_the_cell(tmp_path, text, expected):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(DataError) as error:
        read_arrays(tmp_path / "t.csv")
    assert_one_line(error, expected)


def test_non_finite_data_is_a_data_error(tmp_path):
    x = np.zeros((5, 3))
    x[1, 1], x[3, 0] = np.nan, np.inf
    np.save(tmp_path / "bad.npy", x)
    with pytest.raises(DataError) as error:
        load_dataset(str(tmp_path / "bad.npy"))
    assert_one_line(error, "2 NaN or infinite")


# --- layout and splits --------------------------------------------------------------------------

@pytest.mark.parametrize("shape, expected", [
    ((10, 784), (784,)),
    ((10, 6, 7), (1, 6, 7)),
    ((10, 6, 7, 3), (3, 6, 7)),
    ((10, 3, 6, 7), (3, 6, 7)),
])
def test_layout_and_uint8_scaling(tmp_path, shape, expected):
    x = np.full(shape, 255, dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    data = load_dataset(str(tmp_path / "x.npy"), test_fraction=0.2)
    assert data.feature_shape == expected and data.x_train.dtype == np.float32
    assert data.image_shape == (expected if len(expected) == 3 else None)
    assert len(data.x_train) == 8 and len(data.x_test) == 2 and data.y_train is None
    assert data.x_train.max() == 1.0


def test_bad_shape_is_a_data_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 5, 6, 7, 8)))
    with pytest.raises(DataError, match="has shape"):
        load_dataset(str(tmp_path / "x.npy"))


def test_float_data_is_kept_and_labels_become_int64(tmp_path):
    x = np.linspace(-3, 3, 40).reshape(10, 4)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 2)
    data = load_dataset(str(tmp_path / "d.npz"), test_fraction=0.3, seed=1)
    assert data.x_train.min() < 0 and data.y_train.dtype == np.int64
    joined = np.concatenate([data.x_train, data.x_test])
    np.testing.assert_allclose(np.sort(joined, axis=0), x.astype(np.float32))


def test_split_validation_is_deterministic_and_ordered():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    a = split_validation(x, y, 0.3, seed=4)
    b = split_validation(x, y, 0.3, seed=4)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    x_train, y_train, x_val, y_val = a
    assert len(x_val) == 3 and np.all(np.diff(y_train) > 0) and np.all(np.diff(y_val) > 0)
    assert sorted(np.concatenate([y_train, y_val])) == list(range(10))
    x_train, y_train, x_val, y_val = split_validation(x, None, 0.0, seed=0)
    assert x_val.shape == (0, 2) and y_train is None and y_val is None
    np.testing.assert_array_equal(x_train, x)
    with pytest.raises(ConfigError):
        split_validation(x, y, 1.0, seed=0)


# --- image folders -----------------------------------------------------------------------------

def write_png(path: Path, size=(6, 5), mode="L", value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size[::-1], value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
    write_png(tmp_path / "imgs/cat/a.png")
    write_png(tmp_path / "imgs/cat/b.png")
    write_png(tmp_path / "imgs/dog/c.jpg", mode="RGB")
    write_png(tmp_path / "imgs/dog/deep/d.png")
    x, labels, names = read_image_folder(tmp_path / "imgs")
    assert x.shape == (4, 6, 5, 1) and x.dtype == np.uint8  # majority mode: L
    assert names == ("cat", "dog") and labels.tolist() == [0, 0, 1, 1]
    assert read_image_folder(tmp_path / "imgs", grayscale=False)[0].shape == (4, 6, 5, 3)
    data = load_dataset(str(tmp_path / "imgs"), test_fraction=0.25)
    assert data.image_shape == (1, 6, 5) and data.class_names == ("cat", "dog")
    assert len(data.x_train) == 3 and data.y_test.dtype == np.int64


def test_flat_image_folder_has_no_labels(tmp_path):
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", mode="RGB")
    write_png(tmp_path / "c.png", mode="RGB")
    x, labels, names = read_image_folder(tmp_path)
    assert x.shape == (3, 6, 5, 3) and labels is None and names is None


def test_mixed_sizes_need_an_image_size(tmp_path):
    write_png(tmp_path / "a.png", size=(6, 5))
    write_png(tmp_path / "b.png", size=(8, 8))
    with pytest.raises(DataError) as error:
        read_image_folder(tmp_path)
    assert_one_line(error, "--image-size HxW", "6x5", "8x8")
    data = load_dataset(str(tmp_path), image_size=(4, 3), test_fraction=0.5)
    assert data.image_shape == (1, 4, 3)
    with pytest.raises(ConfigError):
        read_image_folder(tmp_path, size=(4, 0))


def test_empty_or_broken_image_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no PNG or JPEG"):
        load_dataset(str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        read_image_folder(tmp_path)



def test_one_image_reader_takes_a_folder_a_glob_or_a_file(tmp_path):
    """data.images.read_images (restoration's input) reads through the same reader as training folders."""
    from vaekit.data.images import read_images

    for i, value in enumerate((0, 51, 255)):
        write_png(tmp_path / "scans" / f"s{i}.png", value=value)
    write_png(tmp_path / "scans" / "deeper" / "skipped.png")  # a folder's subfolders are not its pictures
    folder, names = read_images(tmp_path / "scans", channels=1)
    assert folder.shape == (3, 1, 6, 5) and folder.dtype == torch.float32 and names == ["s0", "s1", "s2"]
    assert folder[:, 0, 0, 0].tolist() == pytest.approx([0, 0.2, 1])  # uint8 / 255
    pattern, names = read_images(str(tmp_path / "scans" / "s[12].png"), channels=1)
    assert names == ["s1", "s2"] and torch.equal(pattern, folder[1:])
    single, names = read_images(tmp_path / "scans" / "s1.png", channels=3)
    assert single.shape == (1, 3, 6, 5) and names == ["s1"] and torch.equal(single[0, :1], folder[1])
    folder_array = read_image_folder(tmp_path / "scans")[0]  # the training reader, recursive: deeper/ first
    assert folder_array.shape == (4, 6, 5, 1) and np.array_equal(folder_array[1:, ..., 0] / np.float32(255),
                                                                 folder[:, 0].numpy())


def test_a_glob_skips_hidden_entries_as_a_folder_does_unless_it_names_them(tmp_path):
    """restoration's input (docs/restoration.md): litter such as ._s0.png or .ipynb_checkpoints/ is not an image."""
    from vaekit.data.images import read_images

    for name in ("s0.png", "s1.png", "._s0.png", ".ipynb_checkpoints/s0-checkpoint.png"):
        write_png(tmp_path / "scans" / name)
    expected = ["s0", "s1"]
    for source in (tmp_path / "scans", str(tmp_path / "scans" / "*.png"), str(tmp_path / "scans" / "**" / "*.png")):
        assert read_images(source, channels=1)[1] == expected, source
    assert read_images(str(tmp_path / "scans" / ".*.png"), channels=1)[1] == ["._s0"]  # named: a shell's rule


def test_same_named_images_in_two_folders_keep_distinct_names(tmp_path):
    """Outputs are named after inputs (denoise writes OUT/NAME.png): a glob across folders mirrors them."""
    from vaekit.data.images import output_names, read_images

    write_png(tmp_path / "scans" / "a" / "001.png", value=0)
    write_png(tmp_path / "scans" / "b" / "001.png", value=255)
    x, names = read_images(str(tmp_path / "scans" / "*" / "001.png"), channels=1)
    assert names == ["a/001", "b/001"] and x[:, 0, 0, 0].tolist() == [0, 1]
    assert read_images(str(tmp_path / "*" / "*" / "*.png"), channels=1)[1] == ["scans/a/001", "scans/b/001"]
    assert read_images(tmp_path / "scans" / "a", channels=1)[1] == ["001"]  # one folder: plain stems, as before
    assert output_names([Path("001.png"), Path("001.jpg"), Path("002.png")]) == ["001.png", "001.jpg", "002"]
    with pytest.raises(DataError) as error:  # suffixes kept, still the same name
        output_names([Path("x.png"), Path("x.jpg"), Path("x.png.png")])
    assert_one_line(error, "x.png and x.png.png", "rename one")


def test_the_image_reader_names_what_it_cannot_read(tmp_path):
    from vaekit.data.images import read_images

    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as error:
        read_images(tmp_path / "broken.png", channels=1)
    assert_one_line(error, "broken.png", "re-export it")
    with pytest.raises(DataError) as error:
        read_images(str(tmp_path / "*.jpg"), channels=1)
    assert_one_line(error, "no PNG, JPEG", "match", "*.jpg")
    write_png(tmp_path / "pics" / "a.png", size=(6, 5))
    write_png(tmp_path / "pics" / "b.png", size=(8, 8))
    with pytest.raises(DataError) as error:
        read_images(tmp_path / "pics", channels=1)
    assert_one_line(error, "6x5", "8x8", "give images of one size")


def test_read_data_reads_every_stored_kind(tmp_path):
    """readers.read_data: what load_dataset and compression read from a path."""
    from vaekit.data.readers import read_data

    write_png(tmp_path / "imgs" / "cat" / "a.png")
    write_png(tmp_path / "imgs" / "dog" / "b.png")
    x, y, names = read_data(tmp_path / "imgs")
    assert x.shape == (2, 6, 5, 1) and y.tolist() == [0, 1] and names == ("cat", "dog")
    assert read_data(tmp_path / "imgs", image_size=(3, 2))[0].shape == (2, 3, 2, 1)
    np.save(tmp_path / "x.npy", np.ones((4, 3), np.float32))
    x, y, names = read_data(tmp_path / "x.npy")
    assert x.shape == (4, 3) and y is None and names is None
    arrays, _ = write_idx_set(tmp_path / "idx")
    x, y, names = read_data(tmp_path / "idx" / IDX_FILES[0])
    assert np.array_equal(x, arrays[0]) and y is None and names is None


# --- built-in datasets and lookup ----------------------------------------------------------------

def test_unknown_name_lists_the_builtins():
    with pytest.raises(DataError) as error:
        load_dataset("nope")
    assert_one_line(error, "unknown dataset 'nope'", *dataset_names())


def test_digits():
    data = load_dataset("digits", test_fraction=0.2, seed=0)
    assert data.x_train.shape == (1438, 1, 8, 8) and data.x_test.shape == (359, 1, 8, 8)
    assert 0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert data.y_train.dtype == np.int64 and set(data.y_train.tolist()) == set(range(10))
    with pytest.raises(ConfigError):
        load_dataset("digits", image_size=(4, 4))


def test_idx_folder_as_a_path(tmp_path):
    arrays, _ = write_idx_set(tmp_path / "mine")
    data = load_dataset(str(tmp_path / "mine"))
    assert data.name == "mine" and data.x_train.shape == (6, 1, 5, 5) and data.x_test.shape == (4, 1, 5, 5)
    np.testing.assert_allclose(data.x_train[:, 0] * 255, arrays[0], atol=1e-4)
    np.testing.assert_array_equal(data.y_test, arrays[3])


def test_lookup_prefers_data_dir_then_vaekit_data(tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES, "mnist", DatasetSource(base_urls=("http://127.0.0.1:9/",), files={}))
    env_arrays, _ = write_idx_set(tmp_path / "env" / "mnist", seed=1)
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "env"))
    data = load_dataset("mnist", download=False)
    np.testing.assert_array_equal(data.y_train, env_arrays[1])
    dir_arrays, _ = write_idx_set(tmp_path / "dir" / "mnist", seed=2)
    data = load_dataset("mnist", data_dir=str(tmp_path / "dir"), download=False)
    np.testing.assert_array_equal(data.y_train, dir_arrays[1])


def test_not_found_without_download_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES, "fashion-mnist", DatasetSource(
        base_urls=(), files={}, system_dir=str(tmp_path / "none"), package="dataset-fashion-mnist"))
    with pytest.raises(DataError) as error:
        load_dataset("fashion-mnist", download=False)
    assert_one_line(error, "apt-get install dataset-fashion-mnist", "--data-dir")


def test_decoded_cache_follows_the_source(tmp_path):
    write_idx_set(tmp_path / "mine", seed=0)
    first = load_dataset(str(tmp_path / "mine"))
    assert len(list((tmp_path / "cache" / "mine").glob("decoded-*.npz"))) == 1
    arrays, _ = write_idx_set(tmp_path / "mine", seed=3, n_train=7)
    os.utime(tmp_path / "mine" / IDX_FILES[0], ns=(1, 1))
    second = load_dataset(str(tmp_path / "mine"))
    assert len(first.x_train) == 6 and len(second.x_train) == 7
    np.testing.assert_array_equal(second.y_train, arrays[1])
    assert len(list((tmp_path / "cache" / "mine").glob("decoded-*.npz"))) == 1


def test_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "a-file"))
    write_idx_set(tmp_path / "mine")
    assert load_dataset(str(tmp_path / "mine")).x_train.shape == (6, 1, 5, 5)


@pytest.mark.skipif(not all((FASHION / f).is_file() for f in IDX_FILES), reason="dataset-fashion-mnist not installed")
def test_system_fashion_mnist_loads_fast_the_second_time(tmp_path):
    first = load_dataset("fashion-mnist", download=False)
    assert len(list((tmp_path / "cache" / "fashion-mnist").glob("decoded-*.npz"))) == 1
    assert first.x_train.shape == (60000, 1, 28, 28) and first.x_test.shape == (10000, 1, 28, 28)
    assert first.y_train.shape == (60000,) and len(first.class_names) == 10
    del first
    start = time.perf_counter()
    second = load_dataset("fashion-mnist", download=False)
    assert time.perf_counter() - start < 1.0
    assert second.x_train.dtype == np.float32 and 0.2 < second.x_train[:1000].mean() < 0.4


# --- downloads ------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/short"):  # promises more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def www(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def serve_mnist(monkeypatch, base_url: str, hashes: dict[str, str]):
    monkeypatch.setitem(SOURCES, "mnist", DatasetSource(base_urls=(base_url,), files=hashes))


def test_download_into_the_cache(tmp_path, www, monkeypatch):
    root, url = www
    arrays, hashes = write_idx_set(root)
    serve_mnist(monkeypatch, url, hashes)
    data = load_dataset("mnist")
    np.testing.assert_array_equal(data.y_train, arrays[1])
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").glob("*.gz")) == sorted(IDX_FILES)
    for f in IDX_FILES:
        (root / f).unlink()
    assert load_dataset("mnist", download=False).x_test.shape == (4, 1, 5, 5)


def test_download_of_a_truncated_file_fails_cleanly(tmp_path, www, monkeypatch):
    root, url = www
    _, hashes = write_idx_set(root)
    target = root / IDX_FILES[0]
    target.write_bytes(target.read_bytes()[:-20])
    serve_mnist(monkeypatch, url, hashes)
    with pytest.raises(DataError) as error:
        load_dataset("mnist")
    assert_one_line(error, url + IDX_FILES[0], "truncated gzip stream")
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_download_with_a_wrong_checksum_leaves_nothing(tmp_path, www, monkeypatch):
    root, url = www
    _, hashes = write_idx_set(root)
    serve_mnist(monkeypatch, url, {**hashes, IDX_FILES[0]: "0" * 64})
    with pytest.raises(DataError) as error:
        load_dataset("mnist")
    assert_one_line(error, "sha256 does not match")
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_download_file_checksum(tmp_path, www):
    root, url = www
    (root / "blob").write_bytes(b"hello")
    good = hashlib.sha256(b"hello").hexdigest()
    assert download(url + "blob", tmp_path / "out" / "blob", sha256=good, progress=False).read_bytes() == b"hello"
    with pytest.raises(DataError):
        download(url + "blob", tmp_path / "bad" / "blob", sha256="1" * 64, progress=False)
    assert list((tmp_path / "bad").iterdir()) == []


@pytest.mark.parametrize("name, expected", [("missing.gz", "HTTP 404"), ("short", "10 of 1000 bytes")])
def test_download_errors_name_the_url(tmp_path, www, name, expected):
    _, url = www
    with pytest.raises(DataError) as error:
        download(url + name, tmp_path / "d" / name, progress=False)
    assert_one_line(error, url + name, expected, "--data-dir")
    assert list((tmp_path / "d").iterdir()) == []


def test_server_404_through_load_dataset(www, monkeypatch):
    _, url = www
    serve_mnist(monkeypatch, url, dict.fromkeys(IDX_FILES, "0" * 64))
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("mnist")


def test_digits_are_read_once_then_loaded_from_the_cache_without_importing_scikit_learn(tmp_path, monkeypatch):
    from vaekit.data import datasets

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    first = load_dataset("digits")
    assert [p.name for p in (tmp_path / "digits").iterdir()][0].startswith("decoded-")

    def imported_again(*args):
        raise RuntimeError("scikit-learn imported again")

    monkeypatch.setattr(datasets, "optional_import", imported_again)
    again = load_dataset("digits")
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_test, again.y_test)
    assert first.x_train.shape[1:] == (1, 8, 8) and first.x_train.dtype == np.float32 and first.x_train.max() == 1
    monkeypatch.setattr(datasets, "_installed", lambda name: ("0.0-another", "/elsewhere"))
    with pytest.raises(RuntimeError, match="scikit-learn imported again"):  # another scikit-learn: read anew
        load_dataset("digits")
