import os

import pytest
import torch

# Two threads a test, or the cores shared among pytest-xdist's workers (more threads than cores slow every one).
workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's dataset cache out of the user's home."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "vaekit-cache"))


@pytest.fixture
def onednn_paths(monkeypatch):
    """accelerate() puts vaekit's fast layers in on this CPU whatever its instruction set (oneDNN runs on any
    x86 CPU); their ops registered."""
    from vaekit.accel import onednn

    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        pytest.skip("this torch has no oneDNN ops: vaekit uses torch's kernels")
    onednn.register_ops()
    monkeypatch.setattr(onednn, "available", lambda: True)
