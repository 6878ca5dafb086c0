"""A few labels shaping the latent space: the semi-supervised VAE of Kingma et al. (2014), in its simplest form.

The generative model gains a label read out of z: p(x, y | z) = p(x|z) p(y|z), p(y|z) a softmax regression
on z. Every example contributes its ELBO; an example with a label also contributes E_q[log p(y|z)], weighted
by `label_weight` (the alpha of Kingma et al.'s eq. 9, which keeps a handful of labels from being drowned by
thousands of unlabelled examples). Unlike their M2, y is generated from z rather than fed to the decoder, so
the classifier reads the same latent space that `embed` returns, and a label changes where an example lands.
Prediction: argmax_y p(y | z = E[z|x]).

`LabelledVAE` wraps a VAE by composition and offers the Trainer the VAE's `loss`/`elbo` signature;
`LabelledData` is the data source whose batches carry labels (-1: none), each batch topped up, for the label
term only, with a few labelled rows drawn with replacement, so that 100 labels among 10,000 examples are
seen at every step while the ELBO still weighs every example once an epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .conditioning import UNLABELLED, LabelledBatch, LabelledData  # noqa: F401  (re-exported: the text app's data)
from .vae import VAE, Loss


class LabelledVAE(nn.Module):
    """A VAE and p(y|z) = softmax(W z + b) over `n_classes`, trained together (see the module's note)."""

    def __init__(self, vae: VAE, n_classes: int, label_weight: float = 50.0):
        super().__init__()
        self.vae, self.label_weight = vae, label_weight
        self.latent_dim = vae.latent_dim
        self.classifier = nn.Linear(vae.latent_dim, n_classes)

    def loss(self, x, beta: float = 1.0, free_bits: float = 0.0, iw_samples: int = 1, **terms) -> Loss:
        """The VAE's loss over the batch's first n_elbo rows, plus label_weight * the mean of -E_q[log p(y|z)]
        (one draw of z) over its labelled rows; a batch without labels is the VAE's loss alone. `terms` go to
        the VAE's loss (tc_weight, dataset_size)."""
        if not isinstance(x, LabelledBatch):
            return self.vae.loss(x, beta=beta, free_bits=free_bits, iw_samples=iw_samples, **terms)
        out = self.vae.loss(x.rows(slice(0, x.n_elbo)), beta=beta, free_bits=free_bits, iw_samples=iw_samples,
                            **terms)
        known = x.labels != UNLABELLED
        z = self.vae.encode(x.rows(known)).rsample()  # (labelled, latent)
        label_nll = F.cross_entropy(self.classifier(z), x.labels[known])
        return Loss(out.loss + self.label_weight * label_nll, out.reconstruction, out.kl, out.z)

    def elbo(self, x, **kwargs):
        return self.vae.elbo(x, **kwargs)

    def predict_proba(self, x) -> torch.Tensor:
        """p(y | z = E[z|x]), (batch, n_classes)."""
        return F.softmax(self.classifier(self.vae.encode(x).mean), -1)
