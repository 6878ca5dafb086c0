"""The discretized logistic likelihood: a normalized pmf over 256 levels, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit

from vaekit.errors import ConfigError, DataError
from vaekit.likelihoods import LIKELIHOODS, build_likelihood
from vaekit.likelihoods.discretized import DiscretizedLogistic, DiscretizedLogisticDistribution

# Locations inside, at the edges of and outside [0, 1]; scales from far below a bin (1/255) to huge.
LOC = [-0.5, 0.0, 0.3, 0.999, 1.7, 0.5, 0.25]
SCALE = [0.1, 1e-3, 0.02, 1e-4, 3.0, 50.0, 1 / 255]


def brute_force_pmf(loc: float, scale: float) -> np.ndarray:
    """P(level k) = F((k + 1/2)/255) - F((k - 1/2)/255), F the logistic CDF, edge bins to +-inf."""
    edges = np.concatenate([[-np.inf], (np.arange(255) + 0.5) / 255, [np.inf]])
    return np.diff(expit((edges - loc) / scale))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pmf_sums_to_one_and_matches_brute_force(dtype):
    px = DiscretizedLogisticDistribution(torch.tensor([LOC], dtype=dtype), torch.tensor([SCALE], dtype=dtype), 1)
    pmf = px.probs()  # (1, 7, 256)
    assert pmf.shape == (1, len(LOC), 256) and (pmf >= 0).all()
    assert torch.allclose(pmf.sum(-1), torch.ones(1, len(LOC), dtype=dtype), atol=1e-5, rtol=0)
    expected = np.stack([brute_force_pmf(m, s) for m, s in zip(LOC, SCALE)])
    assert np.allclose(pmf[0].double().numpy(), expected, atol=1e-12 if dtype == torch.float64 else 2e-6)


def test_log_prob_is_the_brute_force_log_pmf_in_nats_per_example():
    generator = torch.Generator().manual_seed(0)
    loc = torch.rand(3, 2, 4, 4, generator=generator, dtype=torch.float64)  # (batch, C, H, W)
    scale = torch.rand(3, 2, 4, 4, generator=generator, dtype=torch.float64) * 0.2 + 0.05  # no underflow in brute force
    k = torch.randint(0, 256, (3, 2, 4, 4), generator=generator)
    log_prob = DiscretizedLogisticDistribution(loc, scale, 3).log_prob(k / 255.0)
    expected = [sum(np.log(brute_force_pmf(m, s)[j]) for m, s, j in zip(loc[b].flatten().tolist(),
                                                                        scale[b].flatten().tolist(),
                                                                        k[b].flatten().tolist())) for b in range(3)]
    assert log_prob.shape == (3,) and np.allclose(log_prob.numpy(), expected, rtol=1e-10)


def test_far_tails_stay_finite_and_exact():
    # loc 0, scale 0.01, level 200: log P = log sigma(a) + log sigma(-b) + log(1 - e^(b - a)) ~ -b + log(1 - e^-(a - b))
    px = DiscretizedLogisticDistribution(torch.tensor([0.0]), torch.tensor([0.01]), 1)
    b, width = 199.5 / 255 / 0.01, 1 / 255 / 0.01
    assert float(px.log_prob(torch.tensor([200 / 255]))) == pytest.approx(-b + np.log(-np.expm1(-width)), rel=1e-6)
    assert torch.isfinite(px.log_prob(torch.tensor([1.0])))  # 1 - F at 99.8 scales


def test_mean_and_samples_follow_the_pmf():
    loc, scale = torch.tensor([0.3, 0.98]), torch.tensor([0.05, 0.02])
    px = DiscretizedLogisticDistribution(loc, scale, 1)
    pmf = px.probs().double()  # (2, 256)
    assert torch.allclose(px.mean.double(), (pmf * torch.arange(256) / 255).sum(-1), atol=1e-5)
    torch.manual_seed(0)
    draws = torch.round(px.sample((20000,)) * 255).long()  # (20000, 2) levels
    for i in range(2):
        frequencies = torch.bincount(draws[:, i], minlength=256).double() / 20000
        assert (frequencies - pmf[i]).abs().max() < 0.01


@pytest.mark.parametrize("scale,params_per_value", [("learned", 1), ("decoder", 2), ("0.05", 1)])
def test_registered_likelihood_builds_from_its_name(scale, params_per_value):
    likelihood = build_likelihood("discretized_logistic", (1, 3, 3), scale)
    assert LIKELIHOODS["discretized_logistic"] is DiscretizedLogistic
    assert likelihood.params_per_value == params_per_value and likelihood.bits_per_dim_offset() == 0.0
    params = torch.randn(5, params_per_value, 3, 3)
    px = likelihood.distribution(params)
    assert px.log_prob(torch.rand(5, 1, 3, 3)).shape == (5,)
    assert likelihood.mean(params).shape == (5, 1, 3, 3)
    assert len(list(likelihood.parameters())) == (scale == "learned")


def test_bad_scale_and_data_are_typed_errors():
    with pytest.raises(ConfigError, match="scale"):
        build_likelihood("discretized_logistic", (4,), "wide")
    with pytest.raises(DataError, match="divide uint8 images by 255"):
        build_likelihood("discretized_logistic", (3,)).check_data(torch.tensor([[0.0, 255.0, 3.0]]))
