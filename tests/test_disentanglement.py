"""Disentanglement metrics on codes whose answer is known: the true factors (a perfect code), noise, a rotation;
Chen et al.'s MIG over the whole posterior also against a numerical integral."""

import re

import numpy as np
import pytest

from vaekit.data.shapes import FACTOR_SIZES, draw_factors
from vaekit.disentanglement import (disentanglement, entropy, information_gaps, mig, mig_posterior, mixture_entropy,
                                    mutual_information, posterior_gaps, posterior_information)
from vaekit.errors import DataError

FACTORS = draw_factors(4000, seed=1)


def _perfect() -> np.ndarray:
    return FACTORS.astype(np.float64) / np.array(FACTOR_SIZES)


def _random() -> np.ndarray:
    return np.random.default_rng(2).normal(size=(len(FACTORS), 5))


def _rotated(angle: float = np.pi / 6) -> np.ndarray:
    """The perfect code with the x and y dimensions rotated into each other by `angle`."""
    code = _perfect()
    c, s = np.cos(angle), np.sin(angle)
    code[:, 3], code[:, 4] = c * code[:, 3] - s * code[:, 4], s * code[:, 3] + c * code[:, 4]
    return code


@pytest.fixture(scope="module")
def scores() -> dict:
    return {name: disentanglement(code(), FACTORS) for name, code in
            (("perfect", _perfect), ("rotated", _rotated), ("random", _random))}


def test_plug_in_information_closed_forms():
    v = FACTORS[:, 0]
    assert entropy(v) == pytest.approx(np.log(3), abs=1e-3)
    assert mutual_information(v, v) == pytest.approx(entropy(v))
    assert mutual_information(v, FACTORS[:, 1]) < 0.01


def test_perfect_code_scores_one(scores):
    code = _perfect()
    # bins >= every factor's values; the second-best MI keeps its plug-in bias, ~(40 - 1)^2 / 2N nats
    assert mig(code, FACTORS, bins=40) == pytest.approx(1.0, abs=0.05)
    assert mig(code, FACTORS) > 0.75  # 20 bins cannot hold rotation's 40 values or x's 32
    perfect = scores["perfect"]
    assert perfect.factorvae == 1.0
    assert perfect.dci_disentanglement > 0.95 and perfect.dci_completeness > 0.95 and perfect.dci_informativeness > 0.95
    assert perfect.sap > 0.5


def test_random_code_scores_about_zero(scores):
    random = scores["random"]
    assert random.mig < 0.02 and random.sap < 0.03
    assert random.dci_disentanglement < 0.2 and random.dci_completeness < 0.2
    assert random.factorvae < 0.35  # chance among 5 factors is 0.2


def test_rotated_code_scores_in_between(scores):
    perfect, rotated, random = scores["perfect"], scores["rotated"], scores["random"]
    for name in ("mig", "sap", "dci_disentanglement", "dci_completeness"):
        assert getattr(random, name) < getattr(rotated, name) < getattr(perfect, name), name
    # a 45-degree rotation mixes x and y fully: their gaps close
    assert mig(_rotated(np.pi / 4), FACTORS) < mig(_rotated(np.pi / 12), FACTORS)


def test_codes_and_factors_must_agree():
    with pytest.raises(DataError, match="same N"):
        mig(np.zeros((10, 2)), FACTORS)
    with pytest.raises(DataError, match="at least 2"):
        mig(np.zeros((len(FACTORS), 1)), FACTORS)


# Chen et al.'s estimator costs N^2 x D per entropy: 2,000 rows keep each case near a second
POSTERIOR_FACTORS = FACTORS[:2000]
TINY = 0.01 / 40  # a posterior standard deviation far below the spacing of the code's values


def _perfect_posterior() -> tuple[np.ndarray, np.ndarray]:
    """q(z|x) = N(factor value, TINY^2) on five dimensions, and five collapsed ones, N(noise, 1), whose means alone look
    informative to nothing."""
    rng = np.random.default_rng(3)
    loc = np.concatenate([POSTERIOR_FACTORS / np.array(FACTOR_SIZES), rng.normal(size=(2000, 5))], axis=1)
    scale = np.concatenate([np.full((2000, 5), TINY), np.ones((2000, 5))], axis=1)
    return loc, scale


def test_information_gaps_divide_the_top_two_by_the_factors_entropy():
    factors = np.array([[0, 0, 5], [1, 0, 5], [2, 1, 5], [3, 1, 5]])  # H = log 4, log 2, 0
    information = np.array([[1.0, 0.1, 0.0], [0.5, 0.6, 0.0], [0.2, 0.3, 0.0]])  # (D, K)
    gaps = information_gaps(information, factors)
    assert gaps[:2] == pytest.approx([0.5 / np.log(4), 0.3 / np.log(2)]) and np.isnan(gaps[2])


def test_mixture_entropy_of_one_gaussian_is_its_closed_form():
    rng = np.random.default_rng(0)
    loc, scale = np.array([[1.0, -2.0]]), np.array([[0.5, 3.0]])
    z = loc + scale * rng.standard_normal((20_000, 2))
    assert mixture_entropy(z, loc, scale) == pytest.approx(0.5 * np.log(2 * np.pi * np.e * scale[0] ** 2), abs=0.01)


@pytest.mark.parametrize("max_draws, tolerance", [(10_000, 0.01), (1500, 0.03)])
def test_posterior_information_matches_a_numerical_integral(max_draws, tolerance):
    """v uniform on K values, q(z|x) = N(v, s^2): I(z; v) = h(z) - h(z|v), h(z) the entropy of the equal mixture of
    the K Gaussians by quadrature, h(z|v) = log(2 pi e s^2) / 2."""
    k, s = 4, 0.6
    v = np.repeat(np.arange(k), 500)[:, None]  # exactly uniform, as the integral assumes
    grid = np.linspace(-6 * s, k - 1 + 6 * s, 200_001)
    density = np.exp(-0.5 * ((grid[:, None] - np.arange(k)) / s) ** 2).mean(1) / (s * np.sqrt(2 * np.pi))
    h = -np.sum(density * np.log(density)) * (grid[1] - grid[0])
    expected = h - 0.5 * np.log(2 * np.pi * np.e * s ** 2)
    assert 0.5 < expected < np.log(k) - 0.3  # moderate s: neither separated nor merged
    estimated = posterior_information(v.astype(float), np.full((len(v), 1), s), v, samples=4, seed=0,
                                      max_draws=max_draws)  # 8,000 draws in all, 2,000 given each value
    assert estimated.shape == (1, 1)
    assert estimated[0, 0] == pytest.approx(expected, abs=tolerance)


def test_each_entropy_reads_at_most_max_draws(monkeypatch):
    import vaekit.disentanglement as module

    read = []
    entropy_of = module.mixture_entropy
    monkeypatch.setattr(module, "mixture_entropy", lambda z, loc, scale: read.append(len(z)) or entropy_of(z, loc, scale))
    v = np.repeat([0, 1], [150, 30])[:, None]
    posterior_information(np.zeros((180, 2)), np.ones((180, 2)), v, samples=2, max_draws=100)
    assert read == [100, 100, 60]  # all rows and value 0 capped; value 1's 30 rows x 2 samples all read


def test_mig_posterior_of_a_perfect_code_is_one_for_every_factor():
    loc, scale = _perfect_posterior()
    information = posterior_information(loc, scale, POSTERIOR_FACTORS)
    # a separated code's value is its factor's: I(z_j; v_k) is the plug-in I(v_j; v_k) of the rows, H(v_k) for j = k
    # and, for independent factors, their rows' own chance MI (~(40 - 1)(32 - 1) / 2N nats for rotation and x)
    plug_in = np.array([[mutual_information(a, b) for b in POSTERIOR_FACTORS.T] for a in POSTERIOR_FACTORS.T])
    assert information[:5] == pytest.approx(plug_in, abs=0.01)
    assert np.abs(information[5:]).max() < 0.02
    gaps = information_gaps(information, POSTERIOR_FACTORS)
    assert gaps == pytest.approx(np.ones(5), abs=0.11)
    assert gaps[2] > 0.9  # rotation's 40 values: the binned MIG's 20 bins stop below 0.8
    assert posterior_gaps(loc, scale, POSTERIOR_FACTORS) == pytest.approx(gaps)
    binned = information_gaps(np.array([[mutual_information(z, v) for v in POSTERIOR_FACTORS.T]
                                    for z in np.clip((loc * 20).astype(int), 0, 19).T]), POSTERIOR_FACTORS)
    assert binned[2] < 0.8


def test_mig_posterior_of_random_codes_is_about_zero():
    rng = np.random.default_rng(4)
    assert mig_posterior(rng.normal(size=(2000, 5)), rng.uniform(0.3, 1.0, size=(2000, 5)), POSTERIOR_FACTORS) < 0.02


def test_mig_posterior_of_a_rotated_code_is_in_between():
    loc, scale = _perfect_posterior()
    perfect = mig_posterior(loc, scale, POSTERIOR_FACTORS)
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    loc[:, 3], loc[:, 4] = c * loc[:, 3] - s * loc[:, 4], s * loc[:, 3] + c * loc[:, 4]
    # each rotated dimension tells both x and y: their gaps close, the other three factors keep theirs
    assert 0.5 < mig_posterior(loc, scale, POSTERIOR_FACTORS) < perfect - 0.3


def test_mig_posterior_needs_a_positive_scale_of_the_code_shape():
    loc, scale = _perfect_posterior()
    with pytest.raises(DataError, match="shape of its means"):
        mig_posterior(loc, scale[:, :3], POSTERIOR_FACTORS)
    with pytest.raises(DataError, match="positive"):
        mig_posterior(loc, -scale, POSTERIOR_FACTORS)


def test_eval_scores_a_shapes_run(tmp_path):
    import json

    from vaekit.apps import images

    run = images.train(tmp_path / "run", data="shapes:300", network="mlp", hidden=(16,), latent_dim=3, epochs=1,
                       progress=False)
    result = images.evaluate(run, k=2, progress=False, disentanglement=True)
    saved = json.loads((tmp_path / "run" / "eval-k2.json").read_text())["disentanglement"]
    assert saved == result.disentanglement and saved["n_examples"] == 60
    assert all(0 <= saved[name] <= 1 for name in ("mig", "mig_posterior", "sap", "dci_disentanglement", "factorvae"))
    assert len(saved["mig_posterior_by_factor"]) == 5
    assert np.nanmean(np.array(saved["mig_posterior_by_factor"], float)) == pytest.approx(saved["mig_posterior"])
    with pytest.raises(DataError, match="known factors"):
        images.evaluate(run, split="val", k=2, progress=False, disentanglement=True)


def test_eval_cli_prints_each_score_once_as_a_table_row(tmp_path, capsys):
    from vaekit.apps import images
    from vaekit.cli import main

    images.train(tmp_path / "run", data="shapes:300", network="mlp", hidden=(16,), latent_dim=3, epochs=1,
                 progress=False)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--k", "2", "--disentanglement"]) == 0
    rows = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    assert all(len(row) == 2 and not row[1].startswith(("{", "[")) for row in rows), rows  # no raw dict or list
    keys = [key for key, _ in rows]
    assert len(keys) == len(set(keys)) and {"neg_elbo", "mig", "mig_posterior", "sap", "factorvae"} <= set(keys)
    by_factor = dict(rows)["mig_posterior_by_factor"].split()
    assert len(by_factor) == 5 and all(re.fullmatch(r"\d\.\d{4}|-", cell) for cell in by_factor)


def test_mig_posterior_needs_a_diagonal_gaussian_posterior():
    import torch

    from vaekit.config import ModelConfig
    from vaekit.evaluation import diagonal_posterior
    from vaekit.vae import build_vae

    x = torch.rand(5, 1, 8, 8)
    gaussian = build_vae(ModelConfig(network="mlp", data_shape=(1, 8, 8), hidden=(8,), latent_dim=4))
    loc, scale = diagonal_posterior(gaussian, x, batch_size=2)
    assert loc.shape == scale.shape == (5, 4) and (scale > 0).all()
    assert torch.allclose(loc, gaussian.encode(x).mean)
    for options in ({"bottleneck": "fsq", "fsq_levels": (5, 5)}, {"posterior": "iaf"}):
        vae = build_vae(ModelConfig(network="mlp", data_shape=(1, 8, 8), hidden=(8,), latent_dim=4, **options))
        assert diagonal_posterior(vae, x) is None, options
