"""The generated shapes dataset: deterministic, independent factors, images that show their factors."""

import numpy as np
import pytest

from vaekit.data import load_dataset
from vaekit.data.shapes import FACTOR_SIZES, draw_factors, factor_values, make_shapes, render
from vaekit.disentanglement import mutual_information
from vaekit.errors import ConfigError


def test_the_same_examples_every_time():
    x1, f1 = make_shapes(300)
    x2, f2 = make_shapes(300)
    assert x1.shape == (300, 1, 64, 64) and x1.dtype == np.float32 and f1.shape == (300, 5)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(f1, f2)
    assert set(np.unique(x1)) == {0.0, 1.0}


def test_factors_are_uniform_and_independent():
    f = draw_factors(50_000)
    for i, size in enumerate(FACTOR_SIZES):
        counts = np.bincount(f[:, i], minlength=size)
        assert counts.min() > 0.8 * len(f) / size
    # independent pairs: the plug-in MI is only its bias, (cells - 1) / 2n nats; a dependence would add more
    for i in range(5):
        for j in range(i + 1, 5):
            bias = (FACTOR_SIZES[i] - 1) * (FACTOR_SIZES[j] - 1) / (2 * len(f))
            assert mutual_information(f[:, i], f[:, j]) < 2 * bias + 1e-3


def test_images_show_their_factors():
    f = draw_factors(600)
    x = render(f)[:, 0]
    grids = factor_values()
    rows, cols = np.indices((64, 64)) + 0.5
    mass = x.sum((1, 2))
    # the centroid of a shape is its position (the heart's within a pixel or two of its centre)
    cx, cy = (x * cols).sum((1, 2)) / mass, (x * rows).sum((1, 2)) / mass
    assert np.abs(cx - grids[3][f[:, 3]]).max() < 2.0 and np.abs(cy - grids[4][f[:, 4]]).max() < 2.0
    # area grows with the square of the scale: a square of side 2 * 10 * scale pixels
    square = f[:, 0] == 0
    area = 4 * (10 * grids[1][f[square, 1]]) ** 2
    np.testing.assert_allclose(mass[square], area, rtol=0.15)  # pixelated edges


def test_load_dataset_splits_shapes_with_factor_labels():
    data = load_dataset("shapes:200", test_fraction=0.25, seed=3)
    assert data.x_train.shape == (150, 1, 64, 64) and data.x_test.shape == (50, 1, 64, 64)
    assert data.factor_names == ("shape", "scale", "rotation", "x", "y")
    np.testing.assert_array_equal(data.y_test, data.factors_test[:, 0])
    x, f = make_shapes(200)
    match = [np.flatnonzero((f == row).all(1) & (x == image).all((1, 2, 3)))
             for row, image in zip(data.factors_test, data.x_test)]
    assert all(len(m) >= 1 for m in match)


@pytest.mark.parametrize("spec", ["shapes:", "shapes:x", "shapes:1", "shapes:-5"])
def test_a_bad_size_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="shapes:20000"):
        load_dataset(spec)
