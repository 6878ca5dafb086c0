"""The offline sample-quality metrics: Fréchet distance against closed forms and torchmetrics, KID against
torchmetrics' MMD and at zero for identical sets, precision/recall at their ends, the cached classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vaekit.sample_quality import (FeatureClassifier, classifier_for, frechet_distance, kernel_distance,
                                   precision_recall)


def _gaussian(n: int, loc, scale, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(loc), generator=generator, dtype=torch.float64) * torch.tensor(scale) + torch.tensor(loc)


def test_frechet_distance_of_two_gaussians_meets_the_closed_form():
    """Diagonal Gaussians: ||m1 - m2||^2 + sum (s1 - s2)^2, the sample's estimate within its noise."""
    loc_a, scale_a, loc_b, scale_b = [0.0, 1.0, -1.0], [1.0, 2.0, 0.5], [0.5, 1.0, 0.0], [2.0, 1.0, 0.5]
    exact = sum((p - q) ** 2 for p, q in zip(loc_a, loc_b)) + sum((p - q) ** 2 for p, q in zip(scale_a, scale_b))
    measured = frechet_distance(_gaussian(200_000, loc_a, scale_a, 0), _gaussian(200_000, loc_b, scale_b, 1))
    assert measured == pytest.approx(exact, rel=0.02)
    a = _gaussian(500, loc_a, scale_a, 2)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(a, a + torch.tensor([3.0, 0, 4.0], dtype=torch.float64)) == pytest.approx(25, rel=1e-8)


def test_frechet_distance_equals_the_sqrtm_formula_and_torchmetrics_on_the_same_features():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    torchmetrics_fid = pytest.importorskip("torchmetrics.image.fid")
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=generator, dtype=torch.float64) @ torch.randn(6, 6, generator=generator,
                                                                                    dtype=torch.float64)
    b = torch.randn(300, 6, generator=generator, dtype=torch.float64) * 2 + 0.5
    mean_a, mean_b, cov_a, cov_b = a.mean(0).numpy(), b.mean(0).numpy(), np.cov(a.T.numpy()), np.cov(b.T.numpy())
    root = scipy_linalg.sqrtm(cov_a @ cov_b).real
    by_sqrtm = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))
    assert frechet_distance(a, b) == pytest.approx(by_sqrtm, rel=1e-8)

    class Features(nn.Module):  # torchmetrics' FID over features given as they are
        num_features = 6

        def forward(self, x):
            return x

    metric = torchmetrics_fid.FrechetInceptionDistance(feature=Features())
    metric.update(a, real=True)
    metric.update(b, real=False)
    assert frechet_distance(a, b) == pytest.approx(float(metric.compute()), rel=1e-6)


def test_kid_is_torchmetrics_unbiased_mmd_and_near_zero_for_identical_sets():
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    a, b = _gaussian(300, [0.0] * 4, [1.0] * 4, 0), _gaussian(300, [0.3] * 4, [1.5] * 4, 1)
    one_subset = kernel_distance(a, b, subsets=1, subset_size=300)  # every row: the permutation changes nothing
    assert one_subset == pytest.approx(float(kid_module.poly_mmd(a, b)), rel=1e-9)
    same = kernel_distance(a, a.clone(), subsets=20, subset_size=100)
    assert abs(same) < 0.05 * one_subset
    assert kernel_distance(a, _gaussian(300, [0.0] * 4, [1.0] * 4, 5), subsets=20, subset_size=100) < 0.1 * one_subset


def test_precision_and_recall_are_one_for_identical_sets_and_zero_for_disjoint_ones():
    a = _gaussian(200, [0.0, 0.0], [1.0, 1.0], 0)
    assert precision_recall(a, a.clone()) == (1.0, 1.0)
    assert precision_recall(a, a + 100) == (0.0, 0.0)
    # samples covering half of the real set: all precise, recall about a half
    half = a[a[:, 0] > 0]
    precision, recall = precision_recall(a, half)
    assert precision == 1.0 and 0.3 < recall < 0.7


def test_the_classifier_is_fitted_once_per_dataset_and_reused(tmp_path):
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = (torch.rand(200, 1, 8, 8, generator=generator) * 0.3 + y[:, None, None, None] * 0.6).numpy()
    first, key = classifier_for("toy", x, y.numpy(), tmp_path)
    assert sorted(p.name for p in (tmp_path / key).iterdir()) == ["config.json", "model.safetensors"]
    again, same_key = classifier_for("toy", x, y.numpy(), tmp_path)
    assert same_key == key
    assert torch.equal(first.features(torch.as_tensor(x)), again.features(torch.as_tensor(x)))
    assert first.features(torch.as_tensor(x)).shape == (200, 128)
    assert first.accuracy(torch.as_tensor(x), y) > 0.9
    _, other = classifier_for("toy", x[:100], y[:100].numpy(), tmp_path)
    assert other != key


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (10,)])
def test_the_classifier_takes_images_and_flat_data(shape):
    model = FeatureClassifier(shape, 3)
    assert model(torch.zeros(2, *shape)).shape == (2, 3) and model.features(torch.zeros(2, *shape)).shape == (2, 128)
    assert math.isfinite(float(model(torch.rand(2, *shape)).sum()))


def test_inception_fid_without_torch_fidelity_names_the_package(tmp_path):
    from vaekit.errors import ConfigError
    from vaekit.sample_quality import inception_fid

    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install torch-fidelity"):
            inception_fid(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), tmp_path / "weights.pth")
    else:
        with pytest.raises(ConfigError, match="not found"):
            inception_fid(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), tmp_path / "weights.pth")
