"""Recommendation: the multinomial likelihood, the interactions reader and split, the paper's
metrics, EASE's closed form, the beta schedule, and real tiny runs of every CLI verb."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import sparse

from vaekit import cli
from vaekit import recommend as rec
from vaekit.config import TrainConfig, route
from vaekit.data.interactions import SparseRows, read_interactions, strong_split
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.likelihoods.multinomial import Multinomial
from vaekit.training import Trainer

torch.set_num_threads(1)
SMALL = dict(hidden=(16,), latent_dim=4, batch_size=32, seed=0)


def recommend_config(**options) -> rec.RecommendConfig:
    """A RecommendConfig with options routed to it and to the TrainConfig it holds (epochs, batch_size, seed)."""
    return route(options, rec.RecommendConfig())[0]


def clustered_log(path: Path, n_users: int = 120, n_items: int = 40, seed: int = 0, sep: str = ",") -> Path:
    """Two taste groups: each user has 6-10 items from one half of the catalogue."""
    rng = np.random.default_rng(seed)
    lines = [f"user_id{sep}item_id{sep}rating"]
    for u in range(n_users):
        half = (u % 2) * (n_items // 2)
        for i in rng.choice(n_items // 2, rng.integers(6, 11), replace=False):
            lines.append(f"u{u}{sep}i{half + i}{sep}{rng.choice([2, 4, 5])}")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the likelihood ---------------------------------------------------------------------------------
def test_multinomial_log_prob_matches_torch_and_the_paper():
    logits = torch.randn(3, 7)
    x = torch.tensor([[0, 2, 0, 1, 0, 0, 3], [1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    full = Multinomial((7,)).distribution(logits).log_prob(x)
    expected = torch.stack([torch.distributions.Multinomial(int(n), logits=row).log_prob(v)
                            for n, row, v in zip(x.sum(1), logits, x)])
    torch.testing.assert_close(full, expected)
    paper = Multinomial((7,), coefficient=False).distribution(logits).log_prob(x)
    torch.testing.assert_close(paper, (x * torch.log_softmax(logits, -1)).sum(-1))
    assert Multinomial((7,)).mean(logits).sum(-1).allclose(torch.ones(3))
    with pytest.raises(DataError):
        Multinomial((7,)).check_data(-x)


def test_mult_vae_and_dae_compose_the_core_vae():
    x = (torch.rand(5, 30) < 0.2).float()
    vae = rec.build_model(30, recommend_config(model="vae", **SMALL)).vae
    assert vae.elbo(x).reconstruction.shape == (5,) and vae.loss(x, beta=0.2).loss.isfinite()
    dae = rec.build_model(30, recommend_config(model="dae", **SMALL)).vae
    with torch.no_grad():
        qz = dae.encode(x)
    assert float(qz.stddev.max()) < 1e-6 and float(qz.mean.abs().max()) <= 1  # tanh code, no noise
    out = dae.loss(x, beta=0.0)
    torch.testing.assert_close(out.loss, -out.reconstruction)
    scorer = rec.build_model(30, recommend_config(model="vae", **SMALL)).eval()
    torch.testing.assert_close(scorer(x), scorer(x))  # no input dropout, no sampling at test time
    assert not torch.equal(scorer.train()(x), scorer(x))  # dropout on the input while training


def test_kl_schedule_reproduces_the_papers_anneal_to_cap():
    steps_per_epoch, anneal = 7, 200
    config = recommend_config(beta_cap=0.2, anneal_steps=anneal, epochs=10)
    beta, warmup = rec.kl_schedule(config, steps_per_epoch)
    trainer = Trainer(torch.nn.Linear(1, 1), TrainConfig(beta=beta, kl_warmup=warmup, progress=False))
    for step in (0, 10, 39, 40, 41, 69):
        assert trainer.kl_weight(step, steps_per_epoch) == pytest.approx(min(0.2, (step + 1) / anneal))
    assert rec.kl_schedule(rec.RecommendConfig(model="dae"), 7) == (0.0, 0.0)
    assert rec.kl_schedule(recommend_config(epochs=50, beta_cap=0.2), 7) == (0.2, 40.0)
    assert rec.kl_schedule(recommend_config(model="recvae", gamma=0.01), 7) == (0.01, 0.0)  # per interaction


def test_recvae_composes_the_core_vae_with_the_composite_prior():
    from vaekit.priors import CompositePrior

    x = (torch.rand(5, 30) < 0.2).float()
    scorer = rec.build_model(30, recommend_config(model="recvae", recvae_layers=3, **SMALL))
    vae = scorer.vae
    assert isinstance(vae.prior, CompositePrior) and isinstance(vae.decoder, torch.nn.Linear)
    assert len(vae.encoder.layers) == 3 and vae.encoder(x).shape == (5, 8)
    assert vae.loss(x, beta=0.005 * x.sum(-1)).loss.isfinite()
    torch.testing.assert_close(scorer.eval()(x), vae.decoder(vae.encode(x).mean))
    with pytest.raises(ConfigError):
        recommend_config(model="recvae", hidden=(16, 8)).validate()


# -- reading and splitting ----------------------------------------------------------------------------
def test_reader_guesses_columns_thresholds_and_weights(tmp_path):
    tsv = tmp_path / "user_artists.dat"
    tsv.write_text("userID\tartistID\tweight\r\n2\t51\t100\r\n2\t52\t3\r\n3\t51\t7\r\n3\t51\t1\r\n")
    data = read_interactions(tsv, weighting="count", min_user_count=1)
    assert data.users.tolist() == ["2", "3"] and data.items.tolist() == ["51", "52"]
    assert data.matrix.toarray().tolist() == [[100, 3], [8, 0]]  # duplicates summed
    logged = read_interactions(tsv, weighting="log", min_user_count=1, min_item_count=2)
    assert logged.items.tolist() == ["51"] and np.allclose(logged.matrix.data, np.log1p([100, 8]))
    ml1m = tmp_path / "ratings.dat"
    ml1m.write_text("1::10::5::978300760\n1::11::3::978300761\n2::10::4::978300762\n")
    implicit = read_interactions(ml1m, min_rating=4, min_user_count=1)
    assert implicit.matrix.toarray().tolist() == [[1], [1]] and implicit.items.tolist() == ["10"]


@pytest.mark.parametrize("kwargs, error", [
    (dict(weighting="tfidf"), ConfigError),
    (dict(rating_col="none", weighting="count"), ConfigError),
    (dict(user_col="customer"), DataError),
    (dict(min_user_count=50), DataError),
])
def test_reader_rejects_bad_options(tmp_path, kwargs, error):
    with pytest.raises(error):
        read_interactions(clustered_log(tmp_path / "log.csv", n_users=10), **kwargs)


def test_reader_rejects_unreadable_files(tmp_path):
    with pytest.raises(DataError):
        read_interactions(tmp_path / "missing.csv")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("user,item\n1,2\n1,2,3\n")
    with pytest.raises(DataError):
        read_interactions(ragged)


def test_strong_split_holds_out_users_and_a_fifth_of_their_items(tmp_path):
    data = read_interactions(clustered_log(tmp_path / "log.csv", n_users=200))
    kept, split = strong_split(data, heldout_fraction=0.1, heldout_prop=0.2, seed=3)
    assert np.bincount(split.role).tolist() == [160, 20, 20]
    train = split.rows(kept.matrix, 0)
    assert (np.asarray(train.sum(0)).ravel() > 0).all()  # every kept item is seen in training
    counts = np.diff(kept.matrix.indptr)
    held = np.add.reduceat(split.heldout.astype(int), kept.matrix.indptr[:-1])
    assert (held[split.role == 0] == 0).all()
    assert (held[split.role > 0] == (0.2 * counts[split.role > 0]).astype(int)).all()
    foldin, heldout = split.rows(kept.matrix, 2, "foldin"), split.rows(kept.matrix, 2, "heldout")
    assert foldin.multiply(heldout).nnz == 0 and (foldin + heldout).nnz == split.rows(kept.matrix, 2).nnz
    rows = SparseRows(train)
    assert len(rows) == 160 and torch.equal(rows[torch.tensor([3, 0])], torch.from_numpy(train[[3, 0]].toarray()))


# -- metrics and baselines ------------------------------------------------------------------------------
class Fixed(torch.nn.Module):
    def __init__(self, scores):
        super().__init__()
        self.register_buffer("scores", torch.as_tensor(scores, dtype=torch.float32))

    def forward(self, x):
        return self.scores[: len(x)]


def test_ranking_metrics_follow_the_papers_definitions():
    n_items = 120
    scores = -torch.arange(n_items, dtype=torch.float32).repeat(2, 1)  # item i has rank i + 1
    foldin = sparse.csr_matrix(([1.0], ([0], [0])), shape=(2, n_items))  # user 0 saw item 0: never ranked
    truth = np.zeros((2, n_items))
    truth[0, [1, 30]] = 1  # user 0: ranks 1 and 30 after removing item 0
    truth[1, list(range(25))] = 1  # user 1: the first 25 items
    m = rec.ranking_metrics(Fixed(scores), foldin, sparse.csr_matrix(truth))
    assert m.recall_20.tolist() == pytest.approx([0.5, 20 / 20])  # denominator min(20, |I_u|)
    assert m.recall_50.tolist() == pytest.approx([1.0, 1.0])
    dcg = 1 / math.log2(2) + 1 / math.log2(31)
    assert m.ndcg_100[0].item() == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    assert m.ndcg_100[1].item() == pytest.approx(1.0)
    assert m.top_20[0].tolist() == list(range(1, 21)) and m.top_20[1].tolist() == list(range(20))


def test_catalogue_reach_counts_coverage_and_the_long_tail():
    popularity = np.array([50, 30, 10, 5, 5])  # the short head: items 0 and 1 hold 80% of the interactions
    reach = rec.catalogue_reach(torch.tensor([[0, 2], [1, 3]]), popularity)
    assert reach == {"coverage@20": 4 / 5, "long_tail@20": 2 / 4}
    assert rec.catalogue_reach(torch.tensor([[1, 0]]), popularity)["long_tail@20"] == 0.0


def test_ease_is_the_closed_form_solution():
    x = (torch.rand(50, 12, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    b = rec.ease_weights(x.T @ x, 5.0)
    assert torch.all(b.diagonal() == 0)
    # Stationarity of ||X - XB||^2 + lam ||B||^2 s.t. diag(B) = 0: off-diagonal gradient vanishes.
    grad = -2 * x.T @ (x - x @ b) + 2 * 5.0 * b
    off = grad - torch.diag(grad.diagonal())
    assert off.abs().max() < 1e-8


# -- real tiny runs, API and CLI ----------------------------------------------------------------------
def test_fit_evaluate_top_and_reload(tmp_path):
    log = clustered_log(tmp_path / "log.csv", n_users=240)
    model = rec.fit(log, tmp_path / "vae", model="vae", epochs=25, lr=3e-3, early_stopping=0, **SMALL)
    assert len(model.history) == 25 and "val_ndcg@100" in model.history[-1]
    results = rec.evaluate(tmp_path / "vae", baselines=True)
    assert set(results) == {"vae", "popularity", "ease"}
    assert results["vae"]["ndcg@100"] > results["popularity"]["ndcg@100"] + 0.05  # learned the two tastes
    assert results["ease"]["ndcg@100"] > results["popularity"]["ndcg@100"] + 0.05
    loaded = rec.load(tmp_path / "vae")
    x = torch.from_numpy(model.part("test", "foldin").toarray())
    torch.testing.assert_close(loaded.scorer(x), model.scorer.eval()(x))
    picks = rec.top(loaded, items=["i0", "i1", "unknown"], k=5)
    assert len(picks) == 5 and all(int(item[1:]) < 20 and item not in ("i0", "i1") for item, _ in picks)
    with pytest.raises(DataError):
        rec.top(loaded, user="nobody")
    with pytest.raises(ConfigError):
        rec.top(loaded)
    with pytest.raises(ConfigError):
        rec.fit(log, tmp_path / "vae")  # never overwrites a model
    with pytest.raises(CheckpointError):
        rec.load(tmp_path)


def test_recvae_fits_learns_and_reloads(tmp_path):
    log = clustered_log(tmp_path / "log.csv", n_users=240)
    model = rec.fit(log, tmp_path / "recvae", model="recvae", epochs=6, lr=3e-3, recvae_layers=2, **SMALL)
    assert len(model.history) == 6
    vae = model.scorer.vae  # the kept epoch's prior holds that epoch's encoder
    for kept, encoder in zip(vae.prior.previous[0].state_dict().values(), vae.encoder.state_dict().values()):
        torch.testing.assert_close(kept, encoder)
    results = rec.evaluate(tmp_path / "recvae", baselines=True)
    assert results["recvae"]["ndcg@100"] > results["popularity"]["ndcg@100"] + 0.05
    assert 0 < results["recvae"]["coverage@20"] <= 1 and 0 <= results["recvae"]["long_tail@20"] <= 1
    x = torch.from_numpy(model.part("test", "foldin").toarray())
    torch.testing.assert_close(rec.load(tmp_path / "recvae").scorer(x), model.scorer.eval()(x))


def test_recvae_prior_weights_are_an_option_whose_default_is_the_papers():
    import inspect

    from vaekit.priors import CompositePrior

    paper = inspect.signature(CompositePrior).parameters["weights"].default
    assert rec.RecommendConfig().prior_weights == paper == (3 / 20, 3 / 4, 1 / 10)
    prior = rec.build_model(30, recommend_config(model="recvae", prior_weights=[0.5, 0.4, 0.1], **SMALL)).vae.prior
    torch.testing.assert_close(prior.weights, torch.tensor([0.5, 0.4, 0.1]))


@pytest.mark.parametrize("weights", [(0.5, 0.6, 0.1), (-0.1, 1.0, 0.1), (0.5, 0.5), (0.3, 0.3, 0.3, 0.1)])
def test_recvae_prior_weights_not_summing_to_1_or_negative_are_refused_in_one_line(weights):
    with pytest.raises(ConfigError, match="--prior-weights must be 3 numbers >= 0 that sum to 1") as refused:
        recommend_config(model="recvae", prior_weights=weights)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("passes", [(3, 1), (1, 2)])
def test_recvae_pass_counts_set_each_parts_optimizer_steps(tmp_path, monkeypatch, passes):
    import vaekit.training

    made, make = [], vaekit.training.make_optimizer

    def recorded(*args, **kwargs):
        made.append(make(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(vaekit.training, "make_optimizer", recorded)
    log = clustered_log(tmp_path / "log.csv")  # 96 training users: 3 steps of 32 per pass
    model = rec.fit(log, model="recvae", epochs=2, early_stopping=0, recvae_layers=1, encoder_passes=passes[0],
                    decoder_passes=passes[1], **SMALL)
    (optimizer,) = made
    vae = model.scorer.vae
    for part, count in zip((vae.encoder, vae.decoder), passes):
        assert {int(optimizer.state[p]["step"]) for p in part.parameters()} == {2 * count * 3}


def test_early_stopping_watches_validation_ndcg_and_keeps_the_best_epoch(tmp_path):
    log = clustered_log(tmp_path / "log.csv", n_users=240)
    model = rec.fit(log, model="vae", epochs=40, lr=3e-2, early_stopping=3, **SMALL)
    scores = [row["val_ndcg@100"] for row in model.history]
    best = int(np.argmax(scores))
    assert len(scores) == best + 1 + 3 < 40  # stopped three epochs after the best
    kept = rec.ranking_metrics(model.scorer, model.part("val", "foldin"), model.part("val", "heldout"))
    assert float(kept.ndcg_100.mean()) == pytest.approx(scores[best])


def test_under_ema_the_weights_average_is_what_validation_scores_and_fit_keeps(tmp_path):
    log = clustered_log(tmp_path / "log.csv", n_users=240)
    model = rec.fit(log, model="recvae", epochs=4, lr=3e-2, ema=0.9, early_stopping=0, recvae_layers=1, **SMALL)
    scores = [row["val_ndcg@100"] for row in model.history]
    kept = rec.ranking_metrics(model.scorer, model.part("val", "foldin"), model.part("val", "heldout"))
    assert float(kept.ndcg_100.mean()) == pytest.approx(max(scores))
    plain = rec.fit(log, model="recvae", epochs=4, lr=3e-2, early_stopping=0, recvae_layers=1, **SMALL)
    assert [row["val_ndcg@100"] for row in plain.history] != scores  # the average, not the last step, was scored


def test_cli_fit_evaluate_top(tmp_path, capsys):
    log = clustered_log(tmp_path / "log.tsv", n_users=80, sep="\t")
    out = tmp_path / "dae"
    assert cli.main(["recommend", "fit", str(log), "-o", str(out), "--model", "dae", "--epochs", "2",
                     "--hidden", "16", "--latent-dim", "4", "--min-rating", "4", "--precision", "bf16"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["model"] == "dae" and saved["data"]["min_rating"] == 4
    assert saved["model"]["precision"] == "bf16"
    capsys.readouterr()
    assert cli.main(["recommend", "evaluate", str(out)]) == 0
    assert "coverage@20" in capsys.readouterr().out
    assert "dae" in json.loads((out / "eval.json").read_text())
    user = json.loads((out / "ids.json").read_text())["users"][0]
    capsys.readouterr()
    assert cli.main(["recommend", "top", str(out), "--user", user, "-k", "3", "--no-exclude-seen"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 3  # the header and three items
    assert cli.main(["recommend", "top", str(out), "--user", "nobody"]) == 2
    assert cli.main(["recommend", "fit", str(log), "-o", str(tmp_path / "x"), "--model", "gpt"]) == 2
    capsys.readouterr()
    assert cli.main(["recommend", "fit", str(log), "-o", str(tmp_path / "x"), "--precision", "fp16"]) == 2
    assert "--precision must be one of fp32, bf16" in capsys.readouterr().err
    assert cli.main(["recommend", "evaluate", str(tmp_path / "nothing")]) == 2


DATA = os.environ.get("VAEKIT_DATA")


@pytest.mark.skipif(not DATA or not Path(DATA, "lastfm-hetrec2011").is_dir(), reason="needs $VAEKIT_DATA")
def test_real_files_read_as_they_are():
    lastfm = read_interactions(Path(DATA, "lastfm-hetrec2011", "user_artists.dat"), min_user_count=1)
    assert lastfm.matrix.shape == (1892, 17632) and lastfm.matrix.nnz == 92834
    movielens = read_interactions(Path(DATA, "movielens-latest-small", "ratings.csv"), min_user_count=1)
    assert movielens.matrix.shape == (610, 9724) and movielens.matrix.nnz == 100836


def test_dataframe_and_parquet_read_like_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"userId": [1, 1, 2, 2, 3], "movieId": [10, 11, 10, 12, 11],
                          "rating": [5.0, 3.0, 4.0, 4.5, 5.0]})
    csv = tmp_path / "ratings.csv"
    frame.to_csv(csv, index=False)
    expected = read_interactions(csv, min_rating=4, min_user_count=1)
    from_frame = read_interactions(frame, min_rating=4, min_user_count=1)
    assert from_frame.users.tolist() == expected.users.tolist() == ["1", "2", "3"]
    assert (from_frame.matrix != expected.matrix).nnz == 0
    pytest.importorskip("pyarrow")
    frame.to_parquet(tmp_path / "ratings.parquet")
    from_parquet = read_interactions(tmp_path / "ratings.parquet", min_rating=4, min_user_count=1)
    assert from_parquet.items.tolist() == expected.items.tolist()
    assert (from_parquet.matrix != expected.matrix).nnz == 0


def test_top_prints_a_header_and_titles_from_an_items_file_given_or_found_beside_the_ratings(tmp_path, capsys):
    log = clustered_log(tmp_path / "log.csv", n_users=60)
    out = tmp_path / "pop"
    assert cli.main(["recommend", "fit", str(log), "-o", str(out), "--model", "popularity"]) == 0
    capsys.readouterr()
    assert cli.main(["recommend", "top", str(out), "--items", "i0", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "item", "score"] and len(lines) == 3
    items = json.loads((out / "ids.json").read_text())["items"]
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n" + "".join(
        f'{item},"Film {item}, The (1995)",Drama\n' for item in items))  # MovieLens' layout, found beside the log
    assert cli.main(["recommend", "top", str(out), "--items", "i0", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "item", "score", "title"]
    assert all(line.endswith(f"Film {line.split()[1]}, The (1995)") for line in lines[1:])
    (tmp_path / "artists.dat").write_text("id\tname\turl\n" + "".join(f"{item}\tBand {item}\thttp://x\n"
                                                                       for item in items))  # Last.fm's layout
    assert cli.main(["recommend", "top", str(out), "--items", "i0", "-k", "2", "--titles",
                     str(tmp_path / "artists.dat")]) == 0
    assert all(line.endswith(f"Band {line.split()[1]}") for line in capsys.readouterr().out.splitlines()[1:])
