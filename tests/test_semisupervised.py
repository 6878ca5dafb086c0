"""Semi-supervised VAE: labelled batches, the objective's closed form, and a few labels learnt with the ELBO."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from vaekit.config import ModelConfig, TrainConfig
from vaekit.errors import DataError
from vaekit.semisupervised import UNLABELLED, LabelledBatch, LabelledData, LabelledVAE
from vaekit.data.text import EOS, PAD, TokenBatches
from vaekit.training import Trainer
from vaekit.vae import build_vae


def test_batches_are_the_rows_plus_labelled_draws():
    x = torch.arange(20.0).view(10, 2)
    labels = torch.full((10,), UNLABELLED)
    labels[[2, 7]] = torch.tensor([0, 1])
    data = LabelledData(x, labels, per_batch=5)
    batch = data[torch.tensor([0, 1, 3])]
    assert isinstance(batch, LabelledBatch) and len(batch) == 8 and batch.n_elbo == 3
    torch.testing.assert_close(batch.x[:3], x[[0, 1, 3]])
    assert (batch.labels[:3] == UNLABELLED).all()
    extra = batch.x[3:, 0].long() // 2  # the drawn rows' indices
    assert set(extra.tolist()) <= {2, 7} and (batch.labels[3:] == labels[extra]).all()
    torch.testing.assert_close(batch.rows(batch.labels != UNLABELLED), batch.x[3:])
    with pytest.raises(DataError, match="no example has a label"):
        LabelledData(x, torch.full((10,), UNLABELLED))
    with pytest.raises(DataError, match="10 examples but 3 labels"):
        LabelledData(x, labels[:3])


def test_the_data_regroups_batches_through_its_labels():
    labels = torch.tensor([0, UNLABELLED, 1, UNLABELLED])
    assert not hasattr(LabelledData(torch.zeros(4, 2), labels), "batch_order")
    ids = torch.tensor([[5, EOS, PAD, PAD], [5, 6, 7, EOS], [5, 6, EOS, PAD], [5, 6, 7, EOS]])
    order, generator = torch.tensor([3, 0, 1, 2]), torch.Generator().manual_seed(0)
    grouped = LabelledData(TokenBatches(ids, by_length=True), labels).batch_order(order, 2, generator)
    batches = {frozenset(grouped[:2].tolist()), frozenset(grouped[2:].tolist())}
    assert batches == {frozenset({0, 2}), frozenset({1, 3})}  # the short sentences together, the long ones too


def test_loss_is_the_vae_loss_plus_the_weighted_label_term():
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=3))
    model = LabelledVAE(vae, n_classes=3, label_weight=7.0)
    x = torch.rand(5, 6)
    batch = LabelledBatch(x, torch.tensor([UNLABELLED, 2, UNLABELLED, 0, 1]), n_elbo=3)
    torch.manual_seed(1)
    out = model.loss(batch, beta=0.5, free_bits=0.1)
    torch.manual_seed(1)
    expected = vae.loss(x[:3], beta=0.5, free_bits=0.1)  # the drawn labelled rows are not in the ELBO
    z = vae.encode(x[[1, 3, 4]]).rsample()  # the label term's draw comes after the ELBO's; all labelled rows
    label_nll = F.cross_entropy(model.classifier(z), torch.tensor([2, 0, 1]))
    torch.testing.assert_close(out.loss, expected.loss + 7.0 * label_nll)
    torch.testing.assert_close(out.kl, expected.kl)
    torch.manual_seed(2)
    plain = model.loss(x)  # a batch without labels (validation) is the VAE's own loss
    torch.manual_seed(2)
    torch.testing.assert_close(plain.loss, vae.loss(x).loss)
    assert model.predict_proba(x).shape == (5, 3)
    torch.testing.assert_close(model.predict_proba(x).sum(1), torch.ones(5))


def test_ten_labels_per_digit_teach_the_classifier():
    """sklearn's 8x8 digits (real, offline): 100 of 1,797 images labelled, the rest unlabelled."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    labels = torch.full_like(y, UNLABELLED)
    known = torch.cat([torch.nonzero(y == k).flatten()[:10] for k in range(10)])
    labels[known] = y[known]
    torch.manual_seed(0)
    model = LabelledVAE(build_vae(ModelConfig(data_shape=(64,), hidden=(128,), latent_dim=8)), 10, label_weight=20.0)
    Trainer(model, TrainConfig(epochs=15, batch_size=64, lr=3e-3, progress=False, device="cpu")).fit(
        LabelledData(x, labels, per_batch=32))
    model.eval()
    unseen = labels == UNLABELLED
    with torch.inference_mode():
        accuracy = (model.predict_proba(x[unseen]).argmax(1) == y[unseen]).float().mean().item()
    assert accuracy > 0.6  # chance is 0.1; this run: 0.75


def test_resume_draws_the_same_labelled_rows(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(60, 6)
    labels = torch.full((60,), UNLABELLED)
    labels[:6] = torch.tensor([0, 1, 2] * 2)

    def trainer(run, epochs):
        torch.manual_seed(0)
        model = LabelledVAE(build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=2)), 3, label_weight=5.0)
        return Trainer(model, TrainConfig(epochs=epochs, batch_size=16, progress=False, device="cpu"), run_dir=run)

    straight = trainer(tmp_path / "a", 4)
    straight.fit(LabelledData(x, labels, per_batch=4))
    trainer(tmp_path / "b", 2).fit(LabelledData(x, labels, per_batch=4))
    resumed = trainer(tmp_path / "b", 4)
    resumed.resume()
    resumed.fit(LabelledData(x, labels, per_batch=4))
    for key in ("loss", "reconstruction", "kl"):
        assert [row[key] for row in resumed.history] == [row[key] for row in straight.history]
    for name, value in straight.vae.state_dict().items():
        torch.testing.assert_close(resumed.vae.state_dict()[name], value, rtol=0, atol=0)
