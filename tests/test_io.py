"""Files vaekit writes: atomic, and readable by others as the user's umask allows."""

import os
import stat

import pytest

from vaekit.apps import images
from vaekit.io import atomic_write


@pytest.fixture
def umask():
    def set_umask(mask):
        previous.append(os.umask(mask))
    previous = []
    yield set_umask
    if previous:
        os.umask(previous[0])


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_an_atomic_write_gets_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write(tmp_path / "a.txt", "x")
    assert _mode(tmp_path / "a.txt") == mode
    assert os.umask(mask) == mask, "the umask is left as it was"


def test_every_file_of_a_run_is_readable_by_others_under_umask_022(tmp_path, umask):
    umask(0o022)
    images.train(tmp_path / "r", epochs=1, data="digits", hidden=(16,), latent_dim=2, batch_size=64, progress=False)
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert len(files) >= 4
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}
    assert not [p for p in (tmp_path / "r").rglob(".*.tmp")], "no temporaries left behind"
