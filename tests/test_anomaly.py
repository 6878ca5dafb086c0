"""VAEAnomalyDetector: estimator contract, closed forms, save/load, the CLI verbs, and a real table."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.apps.anomaly import Standardizer, VAEAnomalyDetector
from vaekit.apps.anomaly_files import anomaly_metrics, is_anomaly, read_chunks
from vaekit.cli import main
from vaekit.errors import ConfigError, DataError

torch.set_num_threads(1)
FAST = {"latent_dim": 2, "hidden": (16,), "steps": 300, "batch_size": 64}


def _normal(n: int, seed: int = 0) -> np.ndarray:
    """Rows on a noisy 2-D plane in 4-D: features 2 and 3 are functions of 0 and 1."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 2))
    return np.column_stack([a, a[:, 0] + a[:, 1], a[:, 0] - a[:, 1]]) + 0.05 * rng.normal(size=(n, 4))


@pytest.fixture(scope="module")
def fitted():
    return VAEAnomalyDetector(**FAST).fit(_normal(400))


def _test_set(seed: int = 1):
    x = _normal(200, seed)
    x[:20, 2] += 6.0  # break the relation of feature 2 only
    return x, (np.arange(200) < 20).astype(int)


@pytest.mark.parametrize("score", ["elbo", "iwae", "reconstruction"])
def test_scores_rank_anomalies_higher(fitted, score):
    x, y = _test_set()
    scores = fitted.decision_function(x, score)
    assert scores.shape == (200,) and scores.dtype == np.float64
    assert anomaly_metrics(y, scores, fitted.threshold_).roc_auc > 0.9


def test_threshold_is_the_contamination_quantile(fitted):
    assert fitted.decision_scores_.shape == (400,)
    assert fitted.threshold_ == pytest.approx(np.quantile(fitted.decision_scores_, 0.9))
    assert fitted.predict(_normal(400)).mean() == pytest.approx(0.1, abs=0.01)
    x, _ = _test_set()
    assert fitted.predict(x)[:20].mean() >= 0.75
    t = fitted.set_threshold(_normal(300, seed=5), quantile=0.99)
    assert fitted.threshold_ == t and fitted.predict(_normal(300, seed=5)).mean() == pytest.approx(0.01, abs=0.004)
    fitted.set_threshold()  # back to the contamination quantile of the training scores


def test_explain_points_at_the_broken_feature(fitted):
    x, _ = _test_set()
    for score in ("elbo", "reconstruction"):
        contributions = fitted.explain(x[:20], score)
        assert contributions.shape == (20, 4)
        assert (contributions.argmax(1) == 2).mean() > 0.8, score
    # closed form: per-feature squared errors sum to the reconstruction score
    np.testing.assert_allclose(fitted.explain(x, "reconstruction").sum(1), fitted.decision_function(x, "reconstruction"),
                               rtol=1e-5)


def test_elbo_score_is_negative_elbo(fitted):
    """With n_samples draws the score is -(E_q log p(x|z) - KL): explain (the reconstruction part)
    plus the analytic KL, drawn with the same seed."""
    x, _ = _test_set()
    xt = torch.from_numpy(fitted.scaler_.transform(x.astype(np.float32)))
    with torch.no_grad():
        kl = torch.distributions.kl_divergence(fitted.vae_.encode(xt).base_dist, fitted.vae_.prior().base_dist).sum(-1)
    np.testing.assert_allclose(fitted.decision_function(x, "elbo"), fitted.explain(x, "elbo").sum(1) + kl.numpy(),
                               rtol=1e-4, atol=1e-4)


def test_same_random_state_same_detector():
    x = _normal(200)
    a = VAEAnomalyDetector(**FAST, random_state=3).fit(x).decision_function(x[:50])
    b = VAEAnomalyDetector(**FAST, random_state=3).fit(x).decision_function(x[:50])
    c = VAEAnomalyDetector(**FAST, random_state=4).fit(x).decision_function(x[:50])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "det")
    config = json.loads((tmp_path / "det" / "config.json").read_text())
    assert config["kind"] == "anomaly" and len(config["scaler"]["mean"]) == 4
    assert not list((tmp_path / "det").glob("*.pkl"))
    loaded = VAEAnomalyDetector.load(tmp_path / "det")
    x, _ = _test_set()
    np.testing.assert_array_equal(loaded.decision_function(x), fitted.decision_function(x))
    np.testing.assert_array_equal(loaded.decision_scores_, fitted.decision_scores_)
    assert loaded.threshold_ == fitted.threshold_ and loaded.get_params() == fitted.get_params()


def test_a_detector_saved_in_an_older_format_is_a_clear_error(fitted, tmp_path):
    from vaekit.errors import CheckpointError

    fitted.save(tmp_path / "det")
    config_path = tmp_path / "det" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "format_version": 1}))
    with pytest.raises(CheckpointError, match="refit it"):
        VAEAnomalyDetector.load(tmp_path / "det")


def test_standardizer_closed_form():
    x = np.array([[1.0, 5.0], [3.0, 5.0]], np.float32)
    s = Standardizer.fit(x)
    np.testing.assert_allclose(s.mean, [2, 5]) and np.testing.assert_allclose(s.scale, [1, 1])
    np.testing.assert_allclose(s.transform(x), [[-1, 0], [1, 0]])
    back = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(back.transform(x), s.transform(x))


def test_images_use_bernoulli_and_a_conv_net():
    rng = np.random.default_rng(0)
    images = np.zeros((64, 8, 8), np.float32)
    images[:, 2:6, 2:6] = rng.uniform(0.6, 1.0, (64, 4, 4))  # a bright square
    detector = VAEAnomalyDetector(latent_dim=2, hidden=(16,), steps=150, score="reconstruction").fit(images)
    assert detector.likelihood_ == "bernoulli" and detector.data_shape_ == (1, 8, 8)
    odd = np.zeros((8, 8, 8), np.float32)
    odd[:, 0:2, :] = 1.0  # a bar at the top instead
    scores = detector.decision_function(np.concatenate([images[:8], odd]))
    assert scores[8:].min() > scores[:8].max()
    assert detector.explain(odd).shape == (8, 1, 8, 8)


def test_deviance_is_negative_elbo_minus_the_pixel_entropy():
    """Closed form: deviance = -ELBO - sum_j [entr(x_j) + entr(1 - x_j)] (same posterior draws); it is
    the default score for images ('auto'), and only defined for the Bernoulli likelihood."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 1.0, (64, 1, 6, 6)).astype(np.float32)
    images[:, :, :, :3] = 0.0  # exactly 0: entr(0) = 0, no nan
    detector = VAEAnomalyDetector(latent_dim=2, hidden=(16,), network="mlp", steps=30).fit(images)
    assert detector.score == "auto" and detector.score_ == "deviance"
    entropy = (images * -np.log(np.where(images > 0, images, 1)) + (1 - images) * -np.log(1 - images)).sum((1, 2, 3))
    deviance, elbo = detector.decision_function(images), detector.decision_function(images, "elbo")
    np.testing.assert_allclose(deviance, elbo - entropy, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(detector.decision_scores_, deviance)
    per_pixel = detector.explain(images)  # the score without the (per-row) KL
    assert per_pixel.shape == images.shape and (deviance - per_pixel.reshape(64, -1).sum(1) > 0).all()
    assert VAEAnomalyDetector(**FAST).fit(_normal(50)).score_ == "elbo"  # tables keep -ELBO
    with pytest.raises(ConfigError, match="Bernoulli"):
        VAEAnomalyDetector(**FAST, score="deviance").fit(_normal(50))


def test_user_mistakes_are_typed_errors(fitted):
    with pytest.raises(ConfigError, match="not fitted"):
        VAEAnomalyDetector().decision_function(np.zeros((2, 4)))
    with pytest.raises(ConfigError, match="unknown score"):
        VAEAnomalyDetector(score="mahalanobis").fit(_normal(10))
    with pytest.raises(ConfigError, match="unknown scaler"):
        VAEAnomalyDetector(scaler="minmax").fit(_normal(10))
    with pytest.raises(ConfigError, match="val_fraction"):
        VAEAnomalyDetector(val_fraction=1.0).fit(_normal(10))
    with pytest.raises(ConfigError, match="contamination"):
        VAEAnomalyDetector(contamination=0.7).fit(_normal(10))
    with pytest.raises(DataError, match="same columns"):
        fitted.decision_function(np.zeros((3, 5)))
    with pytest.raises(DataError, match="NaN"):
        fitted.decision_function(np.full((3, 4), np.nan))
    with pytest.raises(DataError, match="2-D"):
        fitted.decision_function(np.zeros(4))
    with pytest.raises(DataError, match="only one class"):
        anomaly_metrics(np.zeros(5, int), np.arange(5.0), 1.0)


def _write_csv(path: Path, x: np.ndarray, y=None, opener=open) -> Path:
    header = [f"f{j}" for j in range(x.shape[1])] + (["label"] if y is not None else [])
    with opener(path, "wt") as f:
        f.write(",".join(header) + "\n")
        for i, row in enumerate(x):
            f.write(",".join(f"{v:.6f}" for v in row) + (f",{y[i]}" if y is not None else "") + "\n")
    return path


def test_cli_fit_score_evaluate(tmp_path, capsys):
    train = _write_csv(tmp_path / "train.csv", np.vstack([_normal(300), _test_set()[0][:20]]), ["0"] * 300 + ["1"] * 20)
    x, y = _test_set(seed=2)
    test = _write_csv(tmp_path / "test.csv.gz", x, y, opener=gzip.open)
    det = tmp_path / "det"
    assert main(["anomaly", "fit", str(train), "-o", str(det), "--label-column", "label", "--epochs", "40",
                 "--latent-dim", "2", "--hidden", "16", "--scaler", "standard", "--val-fraction", "0"]) == 0
    detector = VAEAnomalyDetector.load(det)
    assert (detector.get_params()["scaler"], detector.get_params()["val_fraction"]) == ("standard", 0)
    assert detector.decision_scores_.shape == (300,)  # only the rows labelled normal
    assert detector.feature_names_ == ["f0", "f1", "f2", "f3"]
    out = tmp_path / "scores.csv"
    for score in ("reconstruction", "elbo"):
        assert main(["anomaly", "score", str(det), str(test), "-o", str(out), "--label-column", "label",
                     "--chunk-rows", "37", "--score", score]) == 0
        table = np.loadtxt(out, delimiter=",", skiprows=1)
        assert table.shape == (200, 3) and list(table[:3, 0]) == [0, 1, 2]
        whole = detector.decision_function(x.round(6), score)
        if score == "reconstruction":  # deterministic: chunking changes nothing
            np.testing.assert_allclose(table[:, 1], whole, rtol=1e-5)
        else:  # Monte Carlo: the same up to sampling noise
            assert np.corrcoef(table[:, 1], whole)[0, 1] > 0.95
        np.testing.assert_array_equal(table[:, 2], table[:, 1] > detector.threshold_)
    assert main(["anomaly", "evaluate", str(det), str(test), "--label-column", "label", "-o", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.9 and metrics["n"] == 200 and metrics["anomalies"] == 20
    assert "ROC-AUC" in capsys.readouterr().out
    for png in ("roc.png", "scores.png"):
        assert (tmp_path / "ev" / png).stat().st_size > 5000


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    assert main(["anomaly", "fit", str(bad), "-o", str(tmp_path / "d")]) == 2
    assert "column 'b' holds 'oops'" in capsys.readouterr().err
    good = _write_csv(tmp_path / "good.csv", _normal(20))
    assert main(["anomaly", "fit", str(good), "-o", str(tmp_path / "d"), "--label-column", "y"]) == 2
    assert "no label column 'y'" in capsys.readouterr().err
    assert main(["anomaly", "score", str(tmp_path / "missing"), str(good), "-o", str(tmp_path / "s.csv")]) == 2
    assert not (tmp_path / "s.csv").exists()


def test_streaming_reads_in_chunks_and_string_labels(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _normal(25), ["normal."] * 20 + ["smurf."] * 5)
    chunks = [c for _, c in read_chunks(path, chunk_rows=10, label_column="label")]
    assert [len(c.x) for c in chunks] == [10, 10, 5]
    labels = np.concatenate([c.labels for c in chunks])
    np.testing.assert_array_equal(is_anomaly(labels, "normal."), [0] * 20 + [1] * 5)
    np.testing.assert_array_equal(is_anomaly(np.array(["0", "1.0", "0.0", "2"]), "0"), [0, 1, 0, 1])


@pytest.mark.skipif(not os.environ.get("VAEKIT_DATA"), reason="set VAEKIT_DATA to run on real data")
def test_real_table_cardio(tmp_path):
    path = Path(os.environ["VAEKIT_DATA"]) / "adbench-classical" / "6_cardio.npz"
    if not path.exists():
        pytest.skip(f"{path} missing")
    data = np.load(path)
    x, y = data["X"], data["y"].astype(int)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1100], order[1100:]
    detector = VAEAnomalyDetector(steps=1000).fit(x[train][y[train] == 0])
    assert anomaly_metrics(y[test], detector.decision_function(x[test]), detector.threshold_).roc_auc > 0.85


def test_robust_standardizer_closed_form():
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [100.0, 1.0]], np.float32)
    s = Standardizer.fit(x, robust=True)
    np.testing.assert_allclose(s.mean, [2.0, 1.0])  # medians
    np.testing.assert_allclose(s.scale, [2.0 / 1.349, 1.0], rtol=1e-6)  # IQR / 1.349; 1 for a constant column


def test_early_stopping_keeps_the_best_validation_epoch():
    detector = VAEAnomalyDetector(**{**FAST, "steps": 2000}, val_fraction=0.2, patience=3).fit(_normal(300))
    val = [row["val_neg_elbo"] for row in detector.history_]
    assert detector.best_epoch_ == int(np.argmin(val)) + 1
    assert len(val) - detector.best_epoch_ <= 3  # stopped after `patience` epochs without a better one
    assert detector.decision_scores_.shape == (300,)  # scores (and threshold) on every training row


def _mixed(n: int, seed: int = 0):
    """A categorical column that decides the sign of a numeric one; anomalies break that rule."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    kind = rng.choice(["up", "down"], n)
    value = np.where(kind == "up", 3.0, -3.0) + rng.normal(size=n)
    return pd.DataFrame({"kind": kind, "value": value, "noise": rng.normal(size=n)})


def test_mixed_type_table_through_the_tabular_transformer(tmp_path):
    pytest.importorskip("pandas")
    detector = VAEAnomalyDetector(latent_dim=2, hidden=(32,), steps=600, batch_size=64, lr=3e-3).fit(_mixed(400))
    assert detector.likelihood_ == "mixed" and detector.data_shape_ == (4,)  # 2 one-hot + 2 numbers
    test = _mixed(200, seed=1)
    test.loc[:19, "kind"] = test.loc[:19, "kind"].map({"up": "down", "down": "up"})  # rule broken
    test.loc[20, "kind"] = "sideways"  # a category never seen at fit time: probability 0
    y = (np.arange(200) < 21).astype(int)
    scores = detector.decision_function(test)
    assert scores[20] == np.finfo(np.float64).max
    assert anomaly_metrics(y, scores, detector.threshold_).roc_auc > 0.9
    loaded = VAEAnomalyDetector.load(detector.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.decision_function(test, "reconstruction"),
                                  detector.decision_function(test, "reconstruction"))
    with pytest.raises(DataError, match="DataFrame"):
        detector.decision_function(test[["value", "noise"]].to_numpy())
    with pytest.raises(ConfigError, match="mixed-type"):
        detector.explain(test)
