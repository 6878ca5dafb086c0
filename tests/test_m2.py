"""Semi-supervised M2 (Kingma et al. 2014): its bounds against sums written out by hand, the labels a run keeps,
and a run's classifier through train, classify, eval, load and resume."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vaekit.conditioning import UNLABELLED, LabelledBatch, balanced_labels
from vaekit.config import DataConfig, ModelConfig, TrainConfig, check_semi_supervised
from vaekit.errors import ConfigError, DataError
from vaekit.vae import build_vae

CLASSES = 3


def _m2(label_weight: float = 2.0):
    torch.manual_seed(0)
    return build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=2, condition="label", n_classes=CLASSES,
                                 semi_supervised=True, label_weight=label_weight))


def _per_class(vae, x):
    """ELBO(x|y) of every class, (K, batch), drawn as the marginal bound draws them (class-major rows)."""
    y = torch.arange(CLASSES).repeat_interleave(len(x))
    elbo = vae.elbo(x.repeat(CLASSES, 1), c=y)
    return elbo.reconstruction.view(CLASSES, -1), elbo.kl.view(CLASSES, -1)


def test_the_unlabelled_bound_is_the_sum_over_classes():
    vae, x = _m2(), torch.rand(5, 6)
    qy = F.softmax(vae.classifier(x), -1)  # (batch, K)
    torch.manual_seed(1)
    reconstruction, kl = _per_class(vae, x)
    by_hand = sum(qy[:, y] * -(reconstruction[y] - kl[y]) for y in range(CLASSES))
    by_hand = by_hand + (qy * qy.log()).sum(1) + math.log(CLASSES)  # - H(q(y|x)) - log p(y), p(y) = 1/K
    torch.manual_seed(1)
    torch.testing.assert_close(-vae.elbo(x).total(), by_hand)
    torch.manual_seed(1)
    unlabelled = LabelledBatch(x, torch.full((5,), UNLABELLED), 5)
    torch.testing.assert_close(vae.loss(unlabelled).loss, by_hand.mean())


def test_a_certain_classifier_leaves_its_class_elbo_and_log_k():
    vae, x = _m2(), torch.rand(4, 6)
    with torch.no_grad():
        vae.classifier.layers[-1].weight.zero_()
        vae.classifier.layers[-1].bias.copy_(torch.tensor([0.0, 80.0, 0.0]))  # q(y = 1 | x) = 1
    torch.manual_seed(2)
    marginal = vae.elbo(x)
    torch.manual_seed(2)
    reconstruction, kl = _per_class(vae, x)
    torch.testing.assert_close(marginal.reconstruction, reconstruction[1])
    torch.testing.assert_close(marginal.kl, kl[1] + math.log(CLASSES))


class _Concatenated(nn.Module):
    """A linear map of an input and its one-hot label side by side."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0]).double()
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, inputs: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([inputs, f.to(inputs.dtype)], -1))


def test_the_nll_without_a_label_is_the_exact_mixture_over_classes_for_exact_posteriors():
    """p(z) = N(0, I), p(x|y, z) = N(W z + b + B[:, y], s^2 I), W's columns orthogonal: q(z|x, y) set to the exact
    posterior makes every importance weight p(x|y), so log p(x) = logsumexp_y log p(x|y) - log K at any k."""
    from torch.distributions import MultivariateNormal

    from vaekit.conditioning import LabelCondition
    from vaekit.likelihoods import Gaussian
    from vaekit.networks import MLP
    from vaekit.priors import StandardNormal
    from vaekit.vae import VAE

    d, latent, sigma = 6, 2, 0.5
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(d, latent, dtype=torch.float64))
    weight, bias = q * torch.tensor([2.0, 0.7], dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    shifts = 3 * torch.randn(d, CLASSES, dtype=torch.float64)  # B: each class's own mean
    post_var = 1.0 / (1.0 + (weight ** 2).sum(0) / sigma ** 2)  # (latent,)
    gain = post_var[:, None] * weight.T / sigma ** 2  # (latent, d)
    encoder = _Concatenated(torch.cat([torch.cat([gain, -gain @ shifts], 1), torch.zeros(latent, d + CLASSES,
                                                                                          dtype=torch.float64)]),
                            torch.cat([-gain @ bias, post_var.log()]))
    decoder = _Concatenated(torch.cat([weight, shifts], 1), bias)
    vae = VAE(encoder, decoder, Gaussian((d,), scale=sigma), StandardNormal(latent), LabelCondition(CLASSES),
              classifier=MLP((d,), (8,), (CLASSES,))).double()
    covariance = weight @ weight.T + sigma ** 2 * torch.eye(d, dtype=torch.float64)
    per_class = [MultivariateNormal(bias + shifts[:, y], covariance) for y in range(CLASSES)]
    x = torch.cat([p.sample((4,)) for p in per_class])
    exact = torch.logsumexp(torch.stack([p.log_prob(x) for p in per_class]), 0) - math.log(CLASSES)
    torch.testing.assert_close(vae.log_likelihood(x, k=7, chunk_size=3), exact)
    torch.testing.assert_close(vae.log_likelihood(x, k=2), exact)


def test_labelled_rows_score_their_class_elbo_and_the_weighted_label_nll():
    vae, x = _m2(label_weight=3.0), torch.rand(4, 6)
    labels = torch.tensor([2, 0, 1, 1])
    torch.manual_seed(3)
    elbo = vae.elbo(x, c=labels)
    label_nll = F.cross_entropy(vae.classifier(x), labels, reduction="none")
    by_hand = -(elbo.reconstruction - 0.5 * (elbo.kl + math.log(CLASSES))) + 3.0 * label_nll
    torch.manual_seed(3)
    loss = vae.loss(LabelledBatch(x, labels, 4), beta=0.5)
    torch.testing.assert_close(loss.loss, by_hand.mean())
    torch.testing.assert_close(loss.kl, (elbo.kl + math.log(CLASSES)).mean())


def test_the_objective_refuses_terms_it_does_not_take():
    vae, x = _m2(), torch.rand(4, 6)
    with pytest.raises(ConfigError, match="semi-supervised"):
        vae.loss(LabelledBatch(x, torch.zeros(4, dtype=torch.long), 4), iw_samples=2)
    with pytest.raises(ConfigError, match="UNLABELLED"):
        vae.loss(x)


def test_labels_kept_are_balanced_and_drawn_with_the_seed():
    y = torch.arange(3).repeat(40)  # 120 rows, 40 per class
    kept = balanced_labels(y, 10, seed=7)
    known = kept != UNLABELLED
    assert known.sum() == 10 and (kept[known] == y[known]).all()
    assert torch.bincount(kept[known], minlength=3).tolist() == [4, 3, 3]
    assert torch.equal(kept, balanced_labels(y, 10, seed=7))
    assert not torch.equal(kept, balanced_labels(y, 10, seed=8))
    with pytest.raises(ConfigError, match="one per class"):
        balanced_labels(y, 2, seed=0)
    with pytest.raises(DataError, match="class 2"):
        balanced_labels(torch.tensor([0] * 10 + [1] * 10 + [2]), 9, seed=0)


def test_a_run_classifies_evaluates_reloads_and_resumes(tmp_path, monkeypatch):
    from vaekit.apps import images

    monkeypatch.chdir(tmp_path)
    options = dict(data="digits", network="mlp", hidden=(32,), latent_dim=4, batch_size=128, progress=False,
                   semi_supervised=True, labelled=50)
    run = images.train(tmp_path / "run", epochs=1, **options)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["semi_supervised"] and saved["model"]["condition"] == "label"
    assert saved["model"]["n_classes"] == 10 and saved["data"]["labelled"] == 50

    result = images.classify(run)
    rows = list(csv.DictReader(result.path.open()))
    assert len(rows) == result.n_examples and set(rows[0]) == {"row", "predicted", "probability", "label"}
    assert result.accuracy == sum(row["predicted"] == row["label"] for row in rows) / len(rows)
    again = images.classify(tmp_path / "run", out=tmp_path / "again.csv")  # from the saved folder
    assert again.accuracy == result.accuracy and again.path.read_text() == result.path.read_text()
    evaluation = images.evaluate(run, k=2, limit=40, progress=False)
    assert evaluation.classifier_accuracy == sum(r["predicted"] == r["label"] for r in rows[:40]) / 40

    resumed = images.train(tmp_path / "run", resume=True, epochs=2)
    assert [row["epoch"] for row in resumed.history] == [1, 2]

    plain = images.train(tmp_path / "plain", epochs=1, data="digits", network="mlp", hidden=(8,), latent_dim=2,
                         progress=False)
    with pytest.raises(ConfigError, match="--semi-supervised"):
        images.classify(plain)
    with pytest.raises(ConfigError, match="add --semi-supervised"):
        images.train(tmp_path / "bad", epochs=1, data="digits", labelled=20)


@pytest.mark.parametrize("option", [{"iw_samples": 2}, {"free_bits": 0.5}, {"tc_weight": 1.0}, {"prior_warmup": 1.0}])
def test_options_m2_would_ignore_are_refused_before_training(option):
    with pytest.raises(ConfigError, match="--semi-supervised trains M2's bound.*drop them"):
        check_semi_supervised(ModelConfig(semi_supervised=True), TrainConfig(**option), DataConfig())
