import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's dataset cache out of the user's home."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "vaekit-cache"))
