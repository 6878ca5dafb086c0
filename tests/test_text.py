"""Sentence VAE (issue 10): vocabulary, the sequence likelihood's maths, decoding, the KL schedule,
every `vaekit text` subcommand on a tiny corpus, and typed errors."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.apps import text as app
from vaekit.cli import text as text_cli
from vaekit.cli import main
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.likelihoods.sequence import CategoricalSequence
from vaekit.text.generate import generate
from vaekit.text.config import TextConfig
from vaekit.text.model import build_text_vae, cyclical_beta, evaluate_text, load_text_model
from vaekit.text.networks import SentenceDecoder
from vaekit.data.text import BOS, EOS, PAD, UNK, TokenBatches, Vocabulary, read_labelled, read_sentences

torch.set_num_threads(1)
TINY = ["--embed-dim", "16", "--hidden", "24", "--latent-dim", "4", "--batch-size", "16", "--device", "cpu"]


def corpus(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    good, bad = ["great", "good", "lovely"], ["bad", "awful", "boring"]
    things = ["film", "movie", "plot", "cast"]
    rows = []
    for i in range(n):
        words = good if i % 2 else bad
        rows.append(f"the {rng.choice(things)} was {rng.choice(words)} and {rng.choice(words)}")
    return rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    (folder / "corpus.txt").write_text("\n".join(corpus()) + "\n")
    out = folder / "model"
    assert main(["text", "fit", str(folder / "corpus.txt"), "-o", str(out), "--epochs", "2", "--kl-schedule",
                 "cyclical", "--kl-cycles", "2", "--bow-weight", "0.5", *TINY]) == 0
    return out


# -- vocabulary ------------------------------------------------------------------------------------
def test_vocabulary_cap_unk_and_round_trip():
    vocab = Vocabulary.build(["a a a b b c", "a b d"], max_size=6)
    assert vocab.tokens[:4] == ("<pad>", "<unk>", "<bos>", "<eos>") and vocab.tokens[4:] == ("a", "b")
    ids, cut = vocab.encode(["a c b", "a b a b a"], max_len=4)
    assert ids.tolist() == [[4, UNK, 5, EOS], [4, 5, 4, EOS]] and cut == 1
    assert vocab.decode(ids[0]) == "a <unk> b"
    assert Vocabulary.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab


def test_char_level_and_token_batches_trim():
    vocab = Vocabulary.build(["ab ba"], level="char")
    ids, _ = vocab.encode(["ab", "ba ab"], max_len=10)
    assert vocab.decode(ids[1]) == "ba ab"
    batches = TokenBatches(ids)
    assert batches[torch.tensor([0])].shape == (1, 3)  # 'a', 'b', <eos>
    assert batches[torch.tensor([0, 1])].shape == (2, 6)


def test_batches_by_length_regroup_the_shuffled_order():
    lengths = torch.randint(1, 30, (1003,), generator=torch.Generator().manual_seed(0))
    ids = (torch.arange(40) < lengths[:, None]).long() * 5
    data, order = TokenBatches(ids, by_length=True), torch.randperm(1003, generator=torch.Generator().manual_seed(1))
    grouped = data.batch_order(order, 10, torch.Generator().manual_seed(2))
    assert sorted(grouped.tolist()) == list(range(1003))  # a permutation: every sentence once per epoch
    assert all((lengths[b].diff() >= 0).all() for b in grouped[:1000].view(-1, 10))  # each batch cut from a sorted run
    spread = lambda o: float(sum(lengths[b].max() - lengths[b].min() for b in o[:1000].view(-1, 10)))  # noqa: E731
    assert spread(grouped) < 0.2 * spread(order)
    assert TokenBatches(ids).batch_order(order, 10, torch.Generator()) is order  # off by default


def test_readers(tmp_path):
    (tmp_path / "c.csv").write_text("id,text\n1,hello there\n2,general kenobi\n")
    assert read_sentences(tmp_path / "c.csv", "text") == ["hello there", "general kenobi"]
    with pytest.raises(ConfigError, match="--column"):
        read_sentences(tmp_path / "c.csv")
    (tmp_path / "l.tsv").write_text("nice\t1\nugly\t0\n")
    assert read_labelled(tmp_path / "l.tsv") == (["nice", "ugly"], ["1", "0"])
    (tmp_path / "bad.txt").write_text("no label here\n")
    with pytest.raises(DataError, match="tab"):
        read_labelled(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="not found"):
        read_sentences(tmp_path / "missing.txt")


# -- the sequence likelihood -----------------------------------------------------------------------
def _tiny_vae(word_dropout: float = 0.0, vocab: int = 9, bow_weight: float = 0.0, dropout: float = 0.0,
              cell: str = "gru", tie_embeddings: bool = False, layers: int = 1):
    torch.manual_seed(0)
    return build_text_vae(TextConfig(embed_dim=8, hidden=12, latent_dim=3, max_len=6, word_dropout=word_dropout,
                                     bow_weight=bow_weight, dropout=dropout, cell=cell,
                                     tie_embeddings=tie_embeddings, layers=layers), vocab).eval()


def _reference_log_prob(network, row: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The chain rule by hand: one recurrent step per token, summing log-softmax of each next token."""
    state, token, total = network.initial_state(z[None], 1), torch.tensor([BOS]), torch.tensor(0.0)
    for target in row[row != PAD]:
        out, state = network.recur(network._inputs(token[None], z[None]), state)
        total = total + torch.log_softmax(network.out(network.project(out[0, 0])), -1)[target]
        token = target[None]
    return total


@pytest.mark.parametrize("cell,tie_embeddings,layers", [("gru", False, 1), ("lstm", False, 1), ("gru", True, 1),
                                                        ("gru", False, 2), ("lstm", True, 3)])
def test_log_prob_is_the_chain_rule_with_padding_masked(cell, tie_embeddings, layers):
    vae = _tiny_vae(cell=cell, tie_embeddings=tie_embeddings, layers=layers)
    network = vae.likelihood.network
    x = torch.tensor([[5, 6, 7, EOS, PAD], [8, EOS, PAD, PAD, PAD]])
    z = torch.randn(2, 3)
    with torch.no_grad():
        got = vae.likelihood.distribution(z).log_prob(x)
        ref = torch.stack([_reference_log_prob(network, row, zi) for row, zi in zip(x, z)])
        padded = torch.cat([x, torch.zeros(2, 3, dtype=torch.long)], 1)
        more_padding = vae.likelihood.distribution(z).log_prob(padded)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(more_padding, got)
    assert (got < 0).all()
    state = network.initial_state(z, 2)  # z sets every layer's h; an LSTM's cells start at zero
    assert state.shape == ((2 if cell == "lstm" else 1) * layers, 2, 12)
    assert (state[:layers] != 0).all() and (state[layers:] == 0).all()


def test_log_prob_broadcasts_over_importance_samples_and_vae_losses():
    vae = _tiny_vae()
    x = torch.tensor([[5, 6, EOS, PAD], [7, 8, 6, EOS]])
    z = torch.randn(4, 2, 3)  # (k, batch, latent)
    with torch.no_grad():
        lp = vae.decode(z).log_prob(x)
        assert lp.shape == (4, 2)
        torch.testing.assert_close(lp[2], vae.decode(z[2]).log_prob(x))
        assert vae.log_likelihood(x, k=7, chunk_size=3).shape == (2,)
    loss = vae.loss(x, beta=0.5, free_bits=0.1)
    loss.loss.backward()
    assert torch.isfinite(loss.loss) and vae.encoder.out.weight.grad is not None
    assert torch.isfinite(vae.loss(x, iw_samples=3).loss)
    with pytest.raises(DataError, match="vocabulary"):
        vae.likelihood.check_data(torch.tensor([[3, 99]]))
    with pytest.raises(DataError, match="integers"):
        vae.likelihood.check_data(torch.tensor([[0.5]]))


def test_the_sentence_loss_trains_under_bf16_autocast_and_sums_in_fp32():
    vae = _tiny_vae().train()
    x = torch.tensor([[5, 6, EOS, PAD], [7, 8, 6, EOS]])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what --precision bf16 runs
        loss = vae.loss(x)
    loss.loss.backward()
    assert loss.loss.dtype == loss.reconstruction.dtype == torch.float32 and torch.isfinite(loss.loss)
    assert vae.encoder.out.weight.grad is not None


@pytest.mark.parametrize("dropouts", [{"word_dropout": 0.9}, {"dropout": 0.5}])
def test_word_dropout_and_dropout_only_in_training(dropouts):
    vae = _tiny_vae(**dropouts)
    x, z = torch.tensor([[5, 6, 7, 8, EOS]] * 8), torch.zeros(8, 3)
    network = vae.likelihood.network
    with torch.no_grad():
        evaluated = network.log_prob(x, z)
        torch.testing.assert_close(evaluated, network.log_prob(x, z))  # deterministic in eval mode
        network.train()
        dropped = network.log_prob(x, z)
    assert torch.allclose(evaluated, evaluated[0].expand(8))  # identical rows score the same ...
    assert not torch.allclose(dropped, dropped[0].expand(8))  # ... unless inputs or states were dropped


def test_latent_dim_0_fits_a_plain_language_model_scored_exactly(tmp_path):
    """The baseline: the same decoder without z, trained and scored by the same code. Without a latent,
    the importance-weighted bound, the ELBO and the chain rule are all the exact log p(x)."""
    model = app.fit(corpus(60), tmp_path / "lm", log=lambda line: None, epochs=1, embed_dim=8, hidden=12,
                    latent_dim=0, progress=False, device="cpu")
    assert model.vae.likelihood.network.init is None and not list(model.vae.encoder.parameters())
    x = model.encode_text(corpus(10, seed=1))
    result = evaluate_text(model.vae, x, k=3)
    with torch.no_grad():
        exact = -model.vae.likelihood.network.log_prob(x.ids[:, :int(x.lengths.max())]).mean()
    assert result.kl == 0 and result.active_units == 0
    assert result.nll == pytest.approx(float(exact), rel=1e-5) and result.neg_elbo == pytest.approx(result.nll)
    assert load_text_model(tmp_path / "lm").config.latent_dim == 0 and len(app.sample(tmp_path / "lm", n=2)) == 2
    for bad, flag in ((dict(latent_dim=-1), "latent-dim"), (dict(cell="rnn"), "cell"), (dict(dropout=1.0), "dropout"),
                      (dict(layers=0), "layers")):
        with pytest.raises(ConfigError, match=flag):
            TextConfig(**bad).validate()


def test_bag_of_words_loss():
    """Zhao et al. (2017): a proper log-probability of the words given z, added with its weight in
    training only; weight 0 is the old objective exactly; its gradient reaches z (and the encoder)."""
    x = torch.tensor([[5, 6, 5, EOS, PAD], [8, EOS, PAD, PAD, PAD]])
    plain, bow = _tiny_vae(), _tiny_vae(bow_weight=2.0)
    network, z = bow.likelihood.network, torch.randn(2, 3)
    with torch.no_grad():
        assert _tiny_vae(bow_weight=0.0).likelihood.network.bow is None
        log_p = torch.log_softmax(network.bow(z), -1)  # (batch, vocab)
        torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(2))  # one categorical per sentence
        expected = torch.stack([2 * log_p[0, 5] + log_p[0, 6], log_p[1, 8]])  # <eos> and <pad> not words
        torch.testing.assert_close(network.bag_of_words_log_prob(x, z), expected)
        # = the multinomial over word counts less its log multinomial coefficient (word order ignored)
        counts = torch.zeros(9).index_add_(0, torch.tensor([5, 6, 5]), torch.ones(3))
        multinomial = torch.distributions.Multinomial(3, logits=network.bow(z[0])).log_prob(counts)
        torch.testing.assert_close(expected[0], multinomial - math.log(math.factorial(3) / math.factorial(2)))
        # eval mode scores the sentence alone (reported NLL/PPL stay honest); training adds the weighted term
        sentence = network.log_prob(x, z)
        torch.testing.assert_close(sentence, plain.likelihood.network.log_prob(x, z))
        network.train()
        torch.testing.assert_close(network.log_prob(x, z), sentence + 2.0 * expected)
    # weight 0 is the old loss exactly: the shared parameters are the same, and so is the training loss
    shared = {k: v for k, v in bow.state_dict().items() if ".bow." not in k}
    assert shared.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in shared.items())
    network.bow_weight = 0.0
    losses = []
    for vae in (plain, bow):
        torch.manual_seed(3)
        losses.append(vae.train().loss(x, beta=0.5, free_bits=0.1).loss)
    torch.testing.assert_close(losses[0], losses[1])
    network.bow_weight = 2.0
    # the gradient of the term reaches z and, through it, the encoder
    z = torch.randn(2, 3, requires_grad=True)
    network.bag_of_words_log_prob(x, z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    bow.train().loss(x).loss.backward()
    assert network.bow[0].weight.grad.abs().sum() > 0 and bow.encoder.out.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="bow-weight"):
        TextConfig(bow_weight=-1.0).validate()


# -- decoding and schedules ------------------------------------------------------------------------
@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 1), ("lstm", 2)])
def test_generation_methods(cell, layers):
    vae = _tiny_vae(cell=cell, layers=layers)
    network, z = vae.likelihood.network, torch.randn(3, 3)
    greedy = generate(network, z, 6, "greedy")
    assert greedy.shape == (3, 6) and ((greedy == EOS).sum(1) == 1).all()  # every sentence ends once
    after_end = torch.cumsum(greedy == EOS, 1) - (greedy == EOS).long() > 0
    assert (greedy[after_end] == PAD).all() and not (greedy == BOS).any()
    assert not (greedy[~after_end] == PAD).any()
    torch.testing.assert_close(generate(network, z, 6, "beam", beam_size=1), greedy)
    cold = generate(network, z, 6, "sample", temperature=1e-4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cold, greedy)
    beam = generate(network, z, 6, "beam", beam_size=4)
    assert beam.shape == (3, 6) and ((beam == EOS).sum(1) == 1).all()
    lm = SentenceDecoder(9, 8, 12, 0).eval()
    assert generate(lm, None, 5, "sample", batch=2).shape == (2, 5)
    with pytest.raises(ConfigError, match="method"):
        generate(network, z, 6, "nucleus")


def test_cyclical_schedule_closed_form():
    schedule = cyclical_beta(1.0, total_steps=40, cycles=4, ramp=0.5)  # period 10, ramp over 5 steps
    assert [schedule(s, 10) for s in (0, 4, 5, 9, 10, 14)] == [0.2, 1.0, 1.0, 1.0, 0.2, 1.0]


def test_fit_writes_diagnostics_and_uses_the_schedule(model_dir):
    rows = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    diagnostics = json.loads((model_dir / "diagnostics.json").read_text())
    assert len(rows) == len(diagnostics) == 2
    # 2 epochs x 8 steps, 2 cycles of 8 steps ramping over 4: the last step of each epoch has beta 1
    assert [row["beta"] for row in rows] == [1.0, 1.0]
    assert {"kl", "active_units", "neg_elbo"} <= set(diagnostics[0])
    assert (model_dir / "vocab.json").exists() and json.loads((model_dir / "config.json").read_text())["kind"] == "text"


# -- CLI: every subcommand once --------------------------------------------------------------------
def test_cli_every_subcommand(model_dir, tmp_path, capsys):
    assert main(["text", "sample", str(model_dir), "-n", "3", "--temperature", "0.8", "-o", str(tmp_path / "s.txt")]) == 0
    assert len((tmp_path / "s.txt").read_text().splitlines()) == 3
    assert main(["text", "sample", str(model_dir), "-n", "2", "--method", "beam"]) == 0
    assert main(["text", "reconstruct", str(model_dir), "the film was good and great", "--method", "beam"]) == 0
    assert "->" in capsys.readouterr().out
    assert main(["text", "interpolate", str(model_dir), "the film was good and lovely", "the plot was bad and awful",
                 "--steps", "4", "-o", str(tmp_path / "i.txt")]) == 0
    assert len((tmp_path / "i.txt").read_text().splitlines()) == 4
    (tmp_path / "few.txt").write_text("the cast was good\nthe plot was awful\n")
    assert main(["text", "embed", str(model_dir), str(tmp_path / "few.txt"), "-o", str(tmp_path / "z.csv")]) == 0
    assert (tmp_path / "z.csv").read_text().splitlines()[0] == "z0,z1,z2,z3"
    assert main(["text", "embed", str(model_dir), str(tmp_path / "few.txt")]) == 0
    assert np.load(model_dir / "embeddings.npy").shape == (2, 4)
    labelled = "\n".join(f"{s}\t{'pos' if i % 2 else 'neg'}" for i, s in enumerate(corpus(40, seed=3)))
    (tmp_path / "labelled.tsv").write_text(labelled + "\n")
    assert main(["text", "classify", str(model_dir), str(tmp_path / "labelled.tsv"), "--predict",
                 str(tmp_path / "few.txt"), "-o", str(tmp_path / "p.csv")]) == 0
    assert "5-fold accuracy on 40" in capsys.readouterr().out
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 3
    (tmp_path / "unlabelled.txt").write_text("\n".join(corpus(30, seed=4)) + "\n")
    assert main(["text", "classify", str(model_dir), str(tmp_path / "labelled.tsv"), "--unlabelled",
                 str(tmp_path / "unlabelled.txt"), "--self-training", "0.7", "--predict", str(tmp_path / "few.txt"),
                 "-o", str(tmp_path / "p2.csv")]) == 0
    assert "(self-training on 30 unlabelled)" in capsys.readouterr().out
    assert {row.split(",")[-1] for row in (tmp_path / "p2.csv").read_text().splitlines()[1:]} <= {"pos", "neg"}
    (tmp_path / "test.txt").write_text("\n".join(corpus(20, seed=5)) + "\n")
    assert main(["text", "eval", str(model_dir), str(tmp_path / "test.txt"), "--k", "5"]) == 0
    result = json.loads((model_dir / "eval.json").read_text())
    assert result["n_sentences"] == 20 and result["n_tokens"] == 20 * 7  # six words and <eos>
    assert result["perplexity"] == pytest.approx(math.exp(result["nll"] * 20 / 140), rel=1e-6)
    assert result["nll"] <= result["neg_elbo"] + 1.0  # the IWAE bound is at least as tight, up to noise
    assert set(text_cli.EXAMPLES) == {"fit", "sample", "reconstruct", "interpolate", "embed", "classify", "predict", "eval"}


def test_a_resumed_fit_repeats_the_uninterrupted_one(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text("\n".join(corpus(60, seed=9)) + "\n")
    options = [str(tmp_path / "corpus.txt"), "--word-dropout", "0.3", "--dropout", "0.2", *TINY]
    assert main(["text", "fit", *options, "-o", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main(["text", "fit", *options, "-o", str(tmp_path / "straight"), "--epochs", "3"]) == 0
    assert main(["text", "fit", *options, "-o", str(tmp_path / "stopped"), "--epochs", "1"]) == 0
    assert main(["text", "fit", *options, "-o", str(tmp_path / "stopped"), "--epochs", "3"]) == 2
    assert "already holds a model: pass --resume" in capsys.readouterr().err
    assert main(["text", "fit", *options, "-o", str(tmp_path / "stopped"), "--epochs", "3", "--latent-dim", "5",
                 "--resume"]) == 2
    assert "only checkpoint_every, device, early_stopping, epochs, profile, progress, time_limit, workers may change (got latent_dim)" \
        in capsys.readouterr().err
    assert main(["text", "fit", *options, "-o", str(tmp_path / "stopped"), "--epochs", "3", "--resume"]) == 0
    straight, resumed = load_text_model(tmp_path / "straight"), load_text_model(tmp_path / "stopped")
    for (name, a), b in zip(straight.vae.state_dict().items(), resumed.vae.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    diagnostics = json.loads((tmp_path / "stopped" / "diagnostics.json").read_text())
    assert [row["epoch"] for row in diagnostics] == [1, 2, 3] and resumed.train.epochs == 3
    (tmp_path / "few.tsv").write_text("the film was good\tpos\nthe plot was bad\tneg\n")
    assert main(["text", "fit", *options, "-o", str(tmp_path / "stopped"), "--epochs", "4", "--resume",
                 "--labelled", str(tmp_path / "few.tsv")]) == 2
    assert "fitted with labels none, but this resume has ['neg', 'pos']" in capsys.readouterr().err


def test_fit_with_a_few_labels_then_predict(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text("\n".join(corpus(200, seed=6)) + "\n")
    labelled = corpus(20, seed=7)
    (tmp_path / "few.tsv").write_text("".join(f"{s}\t{'pos' if i % 2 else 'neg'}\n" for i, s in enumerate(labelled)))
    out = tmp_path / "model"
    assert main(["text", "fit", str(tmp_path / "corpus.txt"), "-o", str(out), "--labelled", str(tmp_path / "few.tsv"),
                 "--epochs", "8", "--seed", "1", *TINY]) == 0
    model = load_text_model(out)
    assert model.classes == ("neg", "pos") and model.labelled.classifier.out_features == 2
    test = corpus(40, seed=8)  # odd rows praise, even rows pan
    (tmp_path / "new.txt").write_text("\n".join(test) + "\n")
    capsys.readouterr()
    assert main(["text", "predict", str(out), str(tmp_path / "new.txt")]) == 0
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "sentence,label,p_neg,p_pos" and len(rows) == 41
    predicted = app.predict(out, test)
    assert predicted.labels == tuple(row.split(",")[1] for row in rows[1:])
    np.testing.assert_allclose(predicted.probabilities.sum(1), 1.0, rtol=1e-5)
    accuracy = np.mean([y == ("pos" if i % 2 else "neg") for i, y in enumerate(predicted.labels)])
    assert accuracy >= 0.8  # the sentiment words decide; 20 labels suffice here (seeds 1-6: 0.9-1.0)


def test_predict_needs_a_model_fitted_with_labels(model_dir, tmp_path, capsys):
    (tmp_path / "new.txt").write_text("the film was good\n")
    assert main(["text", "predict", str(model_dir), str(tmp_path / "new.txt")]) == 2
    assert "fitted without labels" in capsys.readouterr().err
    with pytest.raises(DataError, match="at least two distinct labels"):
        app.fit(corpus(20), tmp_path / "m", labelled=(corpus(4), ["a"] * 4), epochs=1)
    with pytest.raises(DataError, match="one label per sentence"):
        app.classify(model_dir, (corpus(6), ["a", "b"] * 2))


def test_self_training_uses_the_unlabelled_rows():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 3)
    unlabelled = np.concatenate([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    features = np.where(labels[:, None] == 1, 3.0, -3.0) + rng.normal(0, 1, (6, 2))
    classifier = app.fit_latent_classifier(features, labels, unlabelled, self_training=0.9)
    scaler, self_training = classifier.steps[0][1], classifier.steps[1][1]
    np.testing.assert_allclose(scaler.mean_, np.concatenate([features, unlabelled]).mean(0))  # all 206 rows
    pseudo = self_training.transduction_[6:]
    assert (pseudo != -1).sum() > 150  # confident unlabelled rows joined the training set ...
    assert (pseudo[pseudo != -1] == (unlabelled[pseudo != -1, 0] > 0)).mean() > 0.95  # ... with the right side
    assert not hasattr(app.fit_latent_classifier(features, labels)[-1], "transduction_")  # no pool: plain LR


def test_model_round_trip(model_dir):
    model = load_text_model(model_dir)
    assert isinstance(model.vae.likelihood, CategoricalSequence) and model.vocabulary.level == "word"
    assert model.config.bow_weight == 0.5 and model.vae.likelihood.network.bow is not None
    sentence = ["the film was good and great"]
    assert app.reconstruct(model, sentence) == app.reconstruct(model_dir, sentence)


def test_an_lstm_model_fits_saves_and_decodes_by_beam(tmp_path, capsys):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("\n".join(corpus(60)) + "\n")
    assert main(["text", "fit", str(corpus_file), "-o", str(tmp_path / "m"), "--epochs", "1", "--cell", "lstm",
                 "--dropout", "0.2", "--layers", "2", *TINY]) == 0
    model = load_text_model(tmp_path / "m")
    assert isinstance(model.vae.likelihood.network.rnn, torch.nn.LSTM) and isinstance(model.vae.encoder.rnn, torch.nn.LSTM)
    assert model.vae.likelihood.network.rnn.num_layers == 2 and model.config.layers == 2
    assert len(app.reconstruct(model, corpus(3), method="beam")) == 3
    assert main(["text", "sample", str(tmp_path / "m"), "-n", "2", "--method", "beam"]) == 0


def test_tied_embeddings_stay_one_matrix_through_training_and_saving(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("\n".join(corpus(60)) + "\n")
    assert main(["text", "fit", str(corpus_file), "-o", str(tmp_path / "m"), "--epochs", "2", "--tie-embeddings",
                 *TINY]) == 0
    model = load_text_model(tmp_path / "m")
    network = model.vae.likelihood.network
    assert network.out.weight is network.embed.weight and network.project.out_features == 16  # hidden 24 -> 16
    assert network.embed.weight[UNK].abs().max() > 0.1  # trained away from its uniform(-0.1, 0.1) start
    untied = build_text_vae(TextConfig(embed_dim=16, hidden=24, latent_dim=4), len(model.vocabulary))
    shared = len(model.vocabulary) * 24 - (24 * 16 + 16)  # the (vocab, hidden) output matrix goes, a projection comes
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in model.vae.parameters()) == shared
    sentence = ["the film was good and great"]
    assert app.reconstruct(model, sentence) == app.reconstruct(tmp_path / "m", sentence)


def test_a_smaller_encoder_fits_saves_and_loads(tmp_path):
    app.fit(corpus(60), tmp_path / "m", log=lambda line: None, epochs=1, embed_dim=8, hidden=12, encoder_hidden=5,
            latent_dim=3, progress=False, device="cpu")
    model = load_text_model(tmp_path / "m")
    assert model.vae.encoder.rnn.hidden_size == 5 and model.vae.likelihood.network.rnn.hidden_size == 12
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    del meta["text"]["encoder_hidden"]  # models saved before the option: the encoder is --hidden wide
    assert build_text_vae(TextConfig(**meta["text"]), 50).encoder.rnn.hidden_size == 12


def test_models_saved_before_bow_weight_still_load(tmp_path):
    app.fit(corpus(60), tmp_path / "m", log=lambda line: None, epochs=1, embed_dim=8, hidden=12, latent_dim=3,
            progress=False, device="cpu")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    del meta["text"]["bow_weight"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    model = load_text_model(tmp_path / "m")
    assert model.config.bow_weight == 0.0 and model.vae.likelihood.network.bow is None


def test_typed_errors(model_dir, tmp_path, capsys):
    assert main(["text", "fit", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "m")]) == 2
    assert main(["text", "fit", str(model_dir / "vocab.json"), "-o", str(tmp_path / "m"), "--kl-schedule", "exp"]) == 2
    assert "--kl-schedule" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--self-training"):
        app.classify(model_dir, (corpus(8), ["a", "b"] * 4), unlabelled=corpus(4), self_training=1.0)
    with pytest.raises(ConfigError, match="--steps"):
        app.interpolate(model_dir, "a", "b", steps=1)
    with pytest.raises(ConfigError, match="unknown option"):
        app.fit(corpus(10), tmp_path / "m", latent=3)
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "config.json").write_text('{"model": {}}')
    with pytest.raises(CheckpointError, match="not a text VAE"):
        load_text_model(tmp_path / "image")


# -- real data -------------------------------------------------------------------------------------
def test_real_sentences_fit_and_embed(tmp_path):
    root = os.environ.get("VAEKIT_DATA")
    folder = Path(root or "") / "sentence-polarity"
    if not root or not folder.is_dir():
        pytest.skip("set VAEKIT_DATA to the shared data folder")
    sentences = (folder / "rt-polarity.pos").read_text(encoding="utf-8").splitlines()[:150]
    model = app.fit(sentences, tmp_path / "m", log=lambda line: None, epochs=1, embed_dim=16, hidden=24,
                    latent_dim=4, max_vocab=500, progress=False, device="cpu")
    assert len(model.vocabulary) == 500
    assert app.embed(model, sentences[:7]).shape == (7, 4)
    assert all(isinstance(s, str) for s in app.sample(model, 3))
