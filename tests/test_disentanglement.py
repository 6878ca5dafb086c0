"""Disentanglement metrics on codes whose answer is known: the true factors (a perfect code), noise, a rotation."""

import numpy as np
import pytest

from vaekit.data.shapes import FACTOR_SIZES, draw_factors
from vaekit.disentanglement import disentanglement, entropy, mig, mutual_information
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


def test_eval_scores_a_shapes_run(tmp_path):
    import json

    from vaekit.apps import images

    run = images.train(tmp_path / "run", data="shapes:300", network="mlp", hidden=(16,), latent_dim=3, epochs=1,
                       progress=False)
    result = images.evaluate(run, k=2, progress=False, disentanglement=True)
    saved = json.loads((tmp_path / "run" / "eval-k2.json").read_text())["disentanglement"]
    assert saved == result.disentanglement and saved["n_examples"] == 60
    assert all(0 <= saved[name] <= 1 for name in ("mig", "sap", "dci_disentanglement", "factorvae"))
    with pytest.raises(DataError, match="known factors"):
        images.evaluate(run, split="val", k=2, progress=False, disentanglement=True)
