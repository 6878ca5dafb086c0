"""vaekit.tabular: the mixed likelihood (closed forms), the transformer (round trips, bad input),
TabularVAE (fit, sample, conditional sampling, encode/decode, save/load), the quality report,
and every `vaekit tabular` subcommand on tiny data."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")

from vaekit.cli import main  # noqa: E402
from vaekit.errors import ConfigError, DataError  # noqa: E402
from vaekit.likelihoods.mixed import MixedLikelihood  # noqa: E402
from vaekit.tabular import TableTransformer, TabularVAE, quality_report  # noqa: E402

torch.set_num_threads(1)
BLOCKS = [("gaussian", 1), ("categorical", 3), ("bernoulli", 1), ("gaussian", 1), ("categorical", 2)]


def mixed_table(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1])
    size = np.where(colour == "red", rng.normal(10, 1, n), rng.normal(-5, 2, n))
    count = rng.integers(0, 20, n)
    income = np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(3, 1, n))
    return pd.DataFrame({"size": size, "colour": colour, "count": count.astype("int32"), "flag": rng.random(n) < 0.3,
                         "income": income, "shop": pd.Categorical(rng.choice(["a", "b"], n)),
                         "when": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")})


# -- the mixed likelihood ------------------------------------------------------------------------
def _manual_log_prob(lik, params, x):
    """The same log-density written term by term with torch.distributions."""
    total, start = torch.zeros(len(x)), 0
    gauss = 0
    for kind, width in BLOCKS:
        p, v = params[:, start:start + width], x[:, start:start + width]
        if kind == "gaussian":
            total += torch.distributions.Normal(p[:, 0], lik.scale()[gauss]).log_prob(v[:, 0])
            gauss += 1
        elif kind == "bernoulli":
            total += torch.distributions.Bernoulli(logits=p[:, 0]).log_prob(v[:, 0])
        else:
            total += torch.distributions.Categorical(logits=p).log_prob(v.argmax(1))
        start += width
    return total


def _one_hot_rows(n, generator):
    x = torch.randn(n, 8, generator=generator)
    x[:, 1:4] = torch.eye(3)[torch.randint(0, 3, (n,), generator=generator)]
    x[:, 4] = torch.randint(0, 2, (n,), generator=generator).float()
    x[:, 6:8] = torch.eye(2)[torch.randint(0, 2, (n,), generator=generator)]
    return x


def test_mixed_log_prob_matches_its_terms_and_normalizes():
    g = torch.Generator().manual_seed(0)
    lik = MixedLikelihood(BLOCKS)
    with torch.no_grad():
        lik.log_scale.copy_(torch.tensor([0.3, -0.5]))
    params, x = torch.randn(5, 8, generator=g), _one_hot_rows(5, g)
    px = lik.distribution(params)
    assert px.batch_shape == (5,) and px.event_shape == (8,)
    torch.testing.assert_close(px.log_prob(x), _manual_log_prob(lik, params, x))
    # Discrete part sums to one over all 3 * 2 * 2 configurations (Gaussians fixed at their loc).
    rows = []
    for c in range(3):
        for b in range(2):
            for d in range(2):
                row = params[0].clone()
                row[1:4], row[4], row[6:8] = torch.eye(3)[c], float(b), torch.eye(2)[d]
                rows.append(row)
    gauss_peak = -sum(math.log(s) + 0.5 * math.log(2 * math.pi) for s in lik.scale().tolist())
    total = torch.logsumexp(lik.distribution(params[:1]).log_prob(torch.stack(rows)) - gauss_peak, 0)
    assert abs(total.item()) < 1e-5


def test_mixed_log_prob_and_gradient_stay_exact_for_far_apart_logits():
    # Each categorical block is shifted by its own max: logits 1000 nats apart across blocks must
    # neither overflow nor underflow, and the gradient must match the term-by-term reference.
    g = torch.Generator().manual_seed(3)
    lik = MixedLikelihood(BLOCKS)
    x = _one_hot_rows(6, g)
    params = torch.randn(6, 8, generator=g) * 30 + torch.tensor([0., 1e3, 1e3, 1e3, 0., 0., -1e3, -1e3])
    ours, ref = params.clone().requires_grad_(), params.clone().requires_grad_()
    got, want = lik.log_prob(ours, x), _manual_log_prob(lik, ref, x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, atol=1e-4, rtol=0)  # float32 rounding of 1e3-sized logits


def test_mixed_sample_and_mean_have_the_row_layout():
    g = torch.Generator().manual_seed(1)
    lik = MixedLikelihood(BLOCKS)
    params = torch.randn(4, 8, generator=g)
    px = lik.distribution(params)
    draws = px.sample((2000,), generator=g)  # (2000, 4, 8)
    assert draws.shape == (2000, 4, 8)
    assert torch.all(draws[..., 1:4].sum(-1) == 1) and torch.all(draws[..., 6:8].sum(-1) == 1)
    torch.testing.assert_close(draws.mean(0)[:, 1:4], torch.softmax(params[:, 1:4], -1), atol=0.04, rtol=0)
    torch.testing.assert_close(px.mean[:, 4], torch.sigmoid(params[:, 4]))
    lik.check_data(draws[0])
    with pytest.raises(DataError):
        lik.check_data(torch.zeros(3, 8))  # not one-hot
    with pytest.raises(ConfigError):
        MixedLikelihood([("poisson", 1)])


def test_mixed_log_prob_broadcasts_over_samples_like_the_core_vae():
    g = torch.Generator().manual_seed(2)
    lik = MixedLikelihood(BLOCKS)
    params, x = torch.randn(3, 5, 8, generator=g), _one_hot_rows(5, g)  # (K, batch, D) against (batch, D)
    out = lik.distribution(params).log_prob(x)
    assert out.shape == (3, 5)
    torch.testing.assert_close(out[1], lik.distribution(params[1]).log_prob(x))


# -- the transformer -----------------------------------------------------------------------------
@pytest.mark.parametrize("normalization", ["standard", "modes"])
def test_transformer_round_trip_and_json(normalization):
    df = mixed_table()
    t = TableTransformer.fit(df, normalization=normalization)
    kinds = {c.name: c.kind for c in t.columns}
    assert kinds == {"size": "continuous", "colour": "categorical", "count": "integer", "flag": "boolean",
                     "income": "continuous", "shop": "categorical", "when": "datetime"}
    rows = t.transform(df)
    assert rows.shape == (len(df), t.width) and rows.dtype == np.float32
    back = TableTransformer.from_dict(json.loads(json.dumps(t.to_dict()))).inverse_transform(rows)
    assert list(back.dtypes.astype(str)) == list(df.dtypes.astype(str))
    for name in ("colour", "count", "flag", "shop", "when"):
        assert (back[name] == df[name]).all(), name
    np.testing.assert_allclose(back["size"], df["size"], rtol=1e-4, atol=1e-4)
    assert back["income"].isna().sum() == df["income"].isna().sum()
    if normalization == "modes":
        assert len(next(c for c in t.columns if c.name == "size").modes) >= 2  # the bimodal column


def test_transformer_bad_input_gets_clear_errors_or_documented_handling():
    df = mixed_table(50)
    with pytest.raises(DataError, match="empty"):
        TableTransformer.fit(df.iloc[:0])
    junk = df.assign(size=df["size"].astype(object))
    junk.loc[3, "size"] = "twelve"
    with pytest.raises(DataError, match="not numbers.*twelve"):
        TableTransformer.fit(junk)
    t = TableTransformer.fit(df.assign(empty=np.nan, same=7))
    assert {c.name: c.kind for c in t.columns}["empty"] == "constant" and len(t.notes) == 2
    back = t.inverse_transform(t.transform(df.assign(empty=np.nan, same=7)))
    assert back["empty"].isna().all() and (back["same"] == 7).all()
    with pytest.raises(DataError, match="unseen.*'purple'"):
        t.transform(df.assign(empty=np.nan, same=7, colour="purple"))
    with pytest.raises(DataError, match="distinct values"):
        TableTransformer.fit(df.assign(id=[f"id{i}" for i in range(len(df))]), max_categories=20)
    with pytest.raises(DataError, match="nothing to model"):
        TableTransformer.fit(pd.DataFrame({"a": [1, 1, 1]}))
    with pytest.raises(ConfigError, match="no column named"):
        TableTransformer.fit(df, categorical=["nope"])
    assert {c.name: c.kind for c in TableTransformer.fit(df, categorical=["count"]).columns}["count"] == "categorical"


def test_dp_mixture_is_sklearns_bayesian_gaussian_mixture():
    from sklearn.mixture import BayesianGaussianMixture

    from vaekit.data.table_modes import fit_dp_mixture

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-5, 1, 300), rng.normal(10, 2, 200), rng.normal(30, 0.5, 100)])
    gm = BayesianGaussianMixture(n_components=6, weight_concentration_prior_type="dirichlet_process",
                                 weight_concentration_prior=0.001, max_iter=100, random_state=3,
                                 covariance_type="diag").fit(values[:, None])
    weights, means, variances = fit_dp_mixture(values, 6, concentration=0.001, max_iter=100, seed=3)
    np.testing.assert_allclose(weights, gm.weights_, atol=1e-9)
    np.testing.assert_allclose(means, gm.means_[:, 0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(variances, gm.covariances_[:, 0], rtol=1e-9)
    assert sorted(np.round(means[weights > 0.05])) == [-5, 10, 30]  # the three modes, found


@pytest.mark.parametrize("seed", [0, 1])
def test_modes_reduce_to_one_gaussian_on_a_unimodal_column(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"gauss": rng.normal(3, 2, 3000), "bimodal": np.concatenate([rng.normal(-5, 1, 1500),
                                                                                    rng.normal(10, 1, 1500)])})
    modes, standard = (TableTransformer.fit(df, normalization=n, seed=seed) for n in ("modes", "standard"))
    gauss, bimodal = modes.columns
    assert gauss.modes == [] and gauss.blocks() == [("gaussian", 1)]  # unconverged, the mixture split it up to 10x
    assert len(bimodal.modes) >= 2 and bimodal.blocks()[1][0] == "categorical"
    np.testing.assert_array_equal(modes.transform(df)[:, 0], standard.transform(df)[:, 0])


def test_integer_with_few_levels_is_categorical_unless_told_otherwise():
    df = mixed_table(200).assign(stars=lambda d: np.random.default_rng(1).integers(1, 6, len(d)))
    t = TableTransformer.fit(df, max_integer_levels=10)
    kinds = {c.name: c.kind for c in t.columns}
    assert kinds["stars"] == "categorical" and kinds["count"] == "integer"  # 5 levels; 20 levels
    assert any("'stars' is an integer with 5 distinct values" in note for note in t.notes)
    back = t.inverse_transform(t.transform(df))
    assert back["stars"].dtype == df["stars"].dtype and (back["stars"] == df["stars"]).all()
    assert {c.name: c.kind for c in TableTransformer.fit(df, max_integer_levels=0).columns}["stars"] == "integer"
    kept = TableTransformer.fit(df, continuous=["stars"], max_integer_levels=10)
    assert {c.name: c.kind for c in kept.columns}["stars"] == "continuous"
    with pytest.raises(ConfigError, match="max-integer-levels"):
        TabularVAE(max_integer_levels=-1)


# -- TabularVAE ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    df = mixed_table(400)
    return df, TabularVAE(epochs=60, batch_size=50, latent_dim=4, hidden=(32,), seed=0).fit(df)


def test_fit_learns_and_sample_keeps_columns_dtypes_and_categories(fitted, tmp_path):
    df, model = fitted
    assert model.transformer.normalization == "modes"  # the default, TVAE's preprocessing
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    synthetic = model.sample(500, seed=1)
    assert list(synthetic.columns) == list(df.columns)
    assert list(synthetic.dtypes.astype(str)) == list(df.dtypes.astype(str))
    assert set(synthetic["colour"]) <= set(df["colour"])
    assert synthetic["size"].between(df["size"].min(), df["size"].max()).all()  # range clipping
    assert abs((synthetic["colour"] == "red").mean() - 0.6) < 0.15
    loaded = TabularVAE.load(model.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(loaded.sample(20, seed=3), model.sample(20, seed=3))


def test_conditional_sampling_and_its_errors(fitted):
    df, model = fitted
    blue = model.sample(100, conditions={"colour": "blue"}, seed=0)
    assert len(blue) == 100 and (blue["colour"] == "blue").all()
    red = model.sample(100, conditions={"colour": "red"}, seed=0)
    assert blue["size"].median() < red["size"].median() - 2  # in the data, red rows are large (10 vs -5)
    assert model.sample(30, conditions={"flag": "true"})["flag"].all()
    with pytest.raises(DataError, match="not a category"):
        model.sample(5, conditions={"colour": "purple"})
    with pytest.raises(ConfigError, match="cannot condition"):
        model.sample(5, conditions={"size": 1})


def test_encode_decode_compresses_records(fitted):
    df, model = fitted
    z = model.encode(df)
    assert z.shape == (len(df), 4)
    decoded = model.decode(z)
    assert (decoded["colour"] == df["colour"]).mean() > 0.75  # the majority class alone gives 0.6
    with pytest.raises(DataError, match="shape"):
        model.decode(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="unknown option"):
        TabularVAE(epoch=3)
    with pytest.raises(ConfigError, match="modes or standard"):
        TabularVAE(normalization="quantile")


# -- the quality report --------------------------------------------------------------------------
def test_quality_report_scores_copies_perfectly_and_flags_them(tmp_path):
    df = mixed_table(400)
    train, holdout = df.iloc[:300], df.iloc[300:]
    copy = quality_report(train, train, holdout, target="colour", out_dir=tmp_path)
    assert copy.column_shapes == pytest.approx(1.0) and copy.column_pair_trends == pytest.approx(1.0)
    assert copy.privacy["dcr_synthetic"] == 0 and copy.privacy["exact_copies"] == 1.0
    assert copy.ml_efficacy["synthetic"] == pytest.approx(copy.ml_efficacy["real"])
    rng = np.random.default_rng(0)
    shuffled = train.apply(lambda c: c.to_numpy()[rng.permutation(len(c))])  # marginals kept, pairs broken
    broken = quality_report(train, shuffled, holdout, target="colour")
    assert broken.column_shapes == pytest.approx(1.0) and broken.column_pair_trends < 0.95
    assert broken.ml_efficacy["synthetic"] < copy.ml_efficacy["synthetic"]
    assert {p.name for p in tmp_path.iterdir()} == {"quality.json", "marginals.png", "correlations.png"}
    with pytest.raises(DataError, match="lacks column"):
        quality_report(train, train.drop(columns="size"))


# -- the CLI -------------------------------------------------------------------------------------
def test_every_tabular_subcommand_runs(tmp_path, capsys):
    df = mixed_table(200).drop(columns="when")
    df.to_csv(tmp_path / "t.csv", index=False)
    m, s = str(tmp_path / "m"), str(tmp_path / "s.csv")
    assert main(["tabular", "fit", str(tmp_path / "t.csv"), "-o", m, "--epochs", "2", "--latent-dim", "3",
                 "--hidden", "16", "--categorical", "count", "--precision", "bf16"]) == 0
    assert {p.name for p in Path(m).iterdir()} == {"config.json", "transformer.json", "model.safetensors"}
    assert json.loads((Path(m) / "config.json").read_text())["train"]["precision"] == "bf16"
    assert json.loads((Path(m) / "transformer.json").read_text())["normalization"] == "modes"
    assert main(["tabular", "sample", m, "-n", "50", "-o", s, "--condition", "colour=green"]) == 0
    assert (pd.read_csv(s)["colour"] == "green").all()
    assert main(["tabular", "encode", m, str(tmp_path / "t.csv"), "-o", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (200, 3)
    assert main(["tabular", "decode", m, str(tmp_path / "z.npy"), "-o", str(tmp_path / "d.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "d.csv")) == 200
    assert main(["tabular", "evaluate", str(tmp_path / "t.csv"), s, "-o", str(tmp_path / "q")]) == 0
    assert "column shapes" in capsys.readouterr().out
    assert main(["tabular", "sample", m, "-n", "5", "-o", s, "--condition", "colour"]) == 2
    assert main(["tabular", "fit", str(tmp_path / "missing.csv"), "-o", m]) == 2
    assert "not found" in capsys.readouterr().err


# -- real data -----------------------------------------------------------------------------------
def test_adult_detected_kinds_and_short_fit():
    root = os.environ.get("VAEKIT_DATA")
    if not root or not (Path(root) / "uci-adult" / "adult.data").exists():
        pytest.skip("VAEKIT_DATA/uci-adult not available")
    cols = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
            "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income"]
    adult = pd.read_csv(Path(root) / "uci-adult" / "adult.data", header=None, names=cols, skipinitialspace=True,
                        na_values="?", nrows=3000)
    model = TabularVAE(epochs=3, seed=0).fit(adult)
    kinds = {c.name: (c.kind, c.has_missing) for c in model.transformer.columns}
    assert kinds["age"] == ("integer", False) and kinds["workclass"] == ("categorical", True)
    rich = model.sample(50, conditions={"income": ">50K"})
    assert (rich["income"] == ">50K").all()


def test_na_values_given_to_fit_are_saved_and_reused_by_encode_decode_sample_and_evaluate(tmp_path, capsys):
    df = mixed_table(120).drop(columns="when")
    df["colour"] = df["colour"].where(np.arange(120) % 10 != 0, None)  # a missing category in every tenth row
    df.to_csv(tmp_path / "t.csv", index=False, na_rep="?")  # UCI's way of writing a missing cell
    m = str(tmp_path / "m")
    assert main(["tabular", "fit", str(tmp_path / "t.csv"), "-o", m, "--epochs", "1", "--latent-dim", "2",
                 "--hidden", "8", "--na-values", "?"]) == 0
    assert json.loads((Path(m) / "config.json").read_text())["na_values"] == ["?"]
    assert main(["tabular", "encode", m, str(tmp_path / "t.csv"), "-o", str(tmp_path / "z.npy")]) == 0  # no flag
    assert main(["tabular", "decode", m, str(tmp_path / "z.npy"), "-o", str(tmp_path / "d.csv")]) == 0
    assert main(["tabular", "sample", m, "-n", "300", "-o", str(tmp_path / "s.csv")]) == 0
    written = (tmp_path / "s.csv").read_text() + (tmp_path / "d.csv").read_text()
    assert ",?," in written or ",?\n" in written  # missing cells written as they were read
    assert main(["tabular", "evaluate", str(tmp_path / "t.csv"), str(tmp_path / "s.csv"), "--model", m,
                 "-o", str(tmp_path / "q")]) == 0
    capsys.readouterr()
    assert main(["tabular", "encode", m, str(tmp_path / "t.csv"), "-o", str(tmp_path / "z.npy")]) == 0
    (Path(m) / "config.json").write_text(json.dumps({k: v for k, v in json.loads(
        (Path(m) / "config.json").read_text()).items() if k != "na_values"}))  # as a folder of vaekit 0.1.0
    assert main(["tabular", "encode", m, str(tmp_path / "t.csv"), "-o", str(tmp_path / "z.npy")]) == 2
    assert main(["tabular", "encode", m, str(tmp_path / "t.csv"), "-o", str(tmp_path / "z.npy"),
                 "--na-values", "?"]) == 0


def test_held_out_target_labels_the_real_table_lacks_are_warned_of_and_counted():
    df = mixed_table(400).drop(columns="when")
    train, holdout = df.iloc[:300], df.iloc[300:].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "unmatched_holdout_labels" not in quality_report(train, train, holdout, target="colour").ml_efficacy
    holdout["colour"] = holdout["colour"] + "."  # as UCI's adult.test writes '<=50K.'
    with pytest.warns(UserWarning, match=r"100 of 100 held-out rows have a 'colour' label .*'red\.' \(\d+ rows\)"):
        quality = quality_report(train, train, holdout, target="colour")
    assert sum(quality.ml_efficacy["unmatched_holdout_labels"].values()) == 100
    assert quality.ml_efficacy["real"] == 0.0
