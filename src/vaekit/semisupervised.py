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

from .conditioning import Batch
from .errors import DataError
from .vae import VAE, Loss

UNLABELLED = -1


@dataclass(frozen=True)
class LabelledBatch:
    """Rows of the wrapped data source (a tensor or a Batch): first the batch the ELBO is taken over, then
    the labelled rows drawn for the label term; labels (rows,), UNLABELLED for none."""

    x: torch.Tensor | Batch
    labels: torch.Tensor
    n_elbo: int

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device, non_blocking: bool = False) -> LabelledBatch:
        return LabelledBatch(self.x.to(device, non_blocking=non_blocking),
                             self.labels.to(device, non_blocking=non_blocking), self.n_elbo)

    def rows(self, index) -> torch.Tensor | Batch:
        """The rows `index` (a slice or a boolean mask) of x."""
        if isinstance(self.x, Batch):
            pick = (lambda t: None if t is None else t[index])
            return Batch(self.x.x[index], pick(self.x.c), pick(self.x.target))
        return self.x[index]


class LabelledData:
    """A Trainer data source: `data` (anything indexed by an index tensor: a tensor, TokenBatches, PairedData)
    with `labels` (N,) long, UNLABELLED where unknown. Indexing returns a LabelledBatch of those rows (each
    example once an epoch in the ELBO) plus `per_batch` labelled rows drawn with replacement for the label
    term only (the global torch RNG: an exact resume holds)."""

    def __init__(self, data, labels: torch.Tensor, per_batch: int = 32):
        if len(labels) != len(data):
            raise DataError(f"{len(data)} examples but {len(labels)} labels: give one label (or -1) per example")
        self.data, self.labels, self.per_batch = data, labels.long(), per_batch
        self.known = torch.nonzero(self.labels != UNLABELLED).flatten()
        if not len(self.known):
            raise DataError("no example has a label: give at least one labelled example")

    def __len__(self) -> int:
        return len(self.data)

    def to(self, device) -> LabelledData:
        return self  # rows are gathered on the host; the Trainer moves each batch

    @property
    def batch_order(self):
        """The data's own regrouping of the Trainer's order (e.g. sentences by length); an AttributeError,
        so hasattr() is False, when the data has none."""
        return self.data.batch_order

    def __getitem__(self, index: torch.Tensor) -> LabelledBatch:
        extra = self.known[torch.randint(len(self.known), (self.per_batch,))]
        rows = torch.cat([index.cpu(), extra])
        return LabelledBatch(self.data[rows], self.labels[rows], len(index))


class LabelledVAE(nn.Module):
    """A VAE and p(y|z) = softmax(W z + b) over `n_classes`, trained together (see the module's note)."""

    def __init__(self, vae: VAE, n_classes: int, label_weight: float = 50.0):
        super().__init__()
        self.vae, self.label_weight = vae, label_weight
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
        return Loss(out.loss + self.label_weight * label_nll, out.reconstruction, out.kl)

    def elbo(self, x, **kwargs):
        return self.vae.elbo(x, **kwargs)

    def predict_proba(self, x) -> torch.Tensor:
        """p(y | z = E[z|x]), (batch, n_classes)."""
        return F.softmax(self.classifier(self.vae.encode(x).mean), -1)
