"""The core needs no scikit-learn: what used it has torch code checked against it, and what still needs it
(the digits dataset, the apps' classifiers and metrics) says how to install it."""

import sys

import numpy as np
import pytest
import torch

from vaekit.errors import ConfigError
from vaekit.evaluation import knn_accuracy


@pytest.mark.parametrize("dim, classes", [(2, 3), (8, 10)])
def test_knn_accuracy_is_scikit_learns(dim, classes):
    neighbors = pytest.importorskip("sklearn.neighbors")
    generator = torch.Generator().manual_seed(dim)
    train, test = torch.randn(300, dim, generator=generator), torch.randn(200, dim, generator=generator)
    y_train = torch.randint(classes, (300,), generator=generator).numpy() * 7  # labels need not be 0..C-1
    y_test = torch.randint(classes, (200,), generator=generator).numpy() * 7
    expected = neighbors.KNeighborsClassifier(n_neighbors=5).fit(train.numpy(), y_train).score(test.numpy(), y_test)
    assert knn_accuracy(train, y_train, test, y_test, chunk=64) == pytest.approx(expected, abs=1e-12)


def test_a_vote_tie_goes_to_the_smallest_label():
    train = torch.tensor([[0.0], [1.0], [-1.0], [2.0]])
    assert knn_accuracy(train, np.array([5, 3, 5, 3]), torch.zeros(1, 1), np.array([3]), neighbours=4) == 1.0


def test_without_scikit_learn_digits_says_how_to_install_it(tmp_path, monkeypatch):
    from vaekit.data import load_dataset

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))  # no digits decoded by an earlier test
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ConfigError, match=r"digits .* needs sklearn: pip install scikit-learn"):
        load_dataset("digits")


def test_without_scikit_learn_training_and_the_latent_map_still_work(tmp_path, monkeypatch):
    from vaekit.apps import images

    monkeypatch.setitem(sys.modules, "sklearn", None)
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.random((200, 16)), rng.integers(0, 3, 200)])  # 16 pixels and a label
    np.savetxt(tmp_path / "x.csv", table, delimiter=",", header=",".join([f"p{i}" for i in range(16)] + ["label"]),
               comments="")
    images.train(tmp_path / "r", data=str(tmp_path / "x.csv"), epochs=1, hidden=(8,), latent_dim=3, batch_size=32,
               progress=False)
    result = images.evaluate(tmp_path / "r", k=4, progress=False)
    assert 0 <= result.knn_accuracy <= 1
    _, picture = images.embed(tmp_path / "r")
    assert picture.stat().st_size > 1000
