"""Evaluation of a trained VAE: -ELBO split into reconstruction and KL (also the Trainer's validation
score), the importance-weighted NLL, bits/dim, active units, and k-NN accuracy of latent means.
Everything in nats per example unless the name says otherwise."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .devices import to_device
from .distributed import Group, is_main_process
from .errors import ConfigError
from .posteriors import as_diagonal_normal
from .progress import progress_bar
from .sample_quality import SampleQuality
from .vae import VAE

# Importance samples per example at most: the bound's gap to -log p(x) shrinks like 1/k, so far below this it moves
# in the last digits (the literature's largest is 5,000), while the work grows with k.
MAX_IMPORTANCE_SAMPLES = 100_000


def check_importance_samples(k: int, flag: str = "--k") -> None:
    """ConfigError unless 1 <= k <= MAX_IMPORTANCE_SAMPLES."""
    if not 1 <= k <= MAX_IMPORTANCE_SAMPLES:
        raise ConfigError(f"{flag} must be in 1..{MAX_IMPORTANCE_SAMPLES:,} importance samples per example, got {k}: "
                          "beyond some thousands the bound no longer moves while the work grows with it")


@dataclass(frozen=True)
class Evaluation:
    neg_elbo: float  # nats per example
    reconstruction: float  # E_q[log p(x|z)], nats per example
    kl: float  # KL(q(z|x) || p(z)), nats per example
    nll: float  # importance-weighted -log p(x) with k samples, nats per example
    k: int
    bits_per_dim: float  # nll in bits per data value (8-bit discretized for continuous likelihoods)
    active_units: int  # latent dims with Cov_x(E_q[z|x]) > 0.01 (Burda et al. 2016, sec. 5.2)
    knn_accuracy: float | None  # 5-NN accuracy of latent means (train -> test), None without labels
    n_examples: int
    sample_quality: SampleQuality | None = None  # Fréchet distance, KID, precision/recall of samples, when measured
    disentanglement: dict | None = None  # disentanglement.Disentanglement's scores, for data with known factors
    classifier_accuracy: float | None = None  # a semi-supervised VAE's q(y|x): share of argmax_y right, with labels

    def to_dict(self) -> dict:
        values = asdict(self)
        if self.sample_quality is None:
            del values["sample_quality"]
        return values


@torch.inference_mode()
def negative_elbo(vae: nn.Module, x, batch_size: int = 1000, group: Group | None = None) -> tuple[float, float, float]:
    """Mean -ELBO, reconstruction and KL (nats per example) over x, one posterior sample each.
    With a multi-process `group`, each rank evaluates its share of x and the sums are all-reduced."""
    device = next(vae.parameters()).device
    totals = torch.zeros(3, device=device)
    share = group.span(len(x)) if group is not None else range(len(x))
    for start in range(share.start, share.stop, batch_size):
        index = torch.arange(start, min(start + batch_size, share.stop),
                             device=x.device if torch.is_tensor(x) else None)  # a GPU tensor's rows by a GPU index
        elbo = vae.elbo(to_device(x[index], device))
        totals += torch.stack([-elbo.total().sum(), elbo.reconstruction.sum(), elbo.kl.sum()])
    if group is not None:
        group.all_reduce(totals)
    return tuple((totals / len(x)).tolist())


@torch.inference_mode()
def latent_means(vae: VAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """E[z|x] for every row of x, (N, latent_dim), on the model's device."""
    device = next(vae.parameters()).device
    return torch.cat([vae.encode(x[i:i + batch_size].to(device)).mean for i in range(0, len(x), batch_size)])


@torch.inference_mode()
def diagonal_posterior(vae: VAE, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(loc, scale) of q(z|x), each (N, latent_dim) on the model's device, when q(z|x) is a diagonal Gaussian (the
    default posterior); None for any other (a flow, a quantized code, two stochastic layers)."""
    device = next(vae.parameters()).device
    locs, scales = [], []
    for i in range(0, len(x), batch_size):
        normal = as_diagonal_normal(vae.encode(x[i:i + batch_size].to(device)))
        if normal is None:
            return None
        locs.append(normal.loc)
        scales.append(normal.scale)
    return torch.cat(locs), torch.cat(scales)


@torch.inference_mode()
def class_probabilities(vae: VAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """q(y|x) of a semi-supervised VAE for every row of x, (N, classes), on the model's device."""
    device = next(vae.parameters()).device
    return torch.cat([vae.classify(x[i:i + batch_size].to(device)).probs for i in range(0, len(x), batch_size)])


def classifier_accuracy(probabilities: torch.Tensor, y) -> float:
    """Share of rows whose most probable class (probabilities (N, classes)) is the label y (N,)."""
    predicted = probabilities.argmax(-1).cpu()
    return int((predicted == torch.as_tensor(np.asarray(y)).long()).sum()) / len(predicted)


def active_units(means: torch.Tensor, threshold: float = 1e-2) -> int:
    """Number of latent dimensions whose posterior mean varies across data by more than `threshold`."""
    return int((means.var(0) > threshold).sum()) if means.shape[1] else 0


# Validation rows the per-epoch active-units estimate encodes: one encoder pass, a few ms, while the variance of each
# unit's mean is already stable to well below the 0.01 threshold
COLLAPSE_PROBE_ROWS = 1000


class CollapseWatch:
    """A Trainer probe (`Trainer(probe=...)`): each epoch, the active units of the first COLLAPSE_PROBE_ROWS
    validation rows (`val_active_units` in the epoch's row), and one warning, the first time none is active in the
    second half of the `epochs` with the KL weight at `beta`, naming the flags that help against posterior collapse.
    (Units often wake late: on digits the first one did at epoch 10, so the first half of a run is not judged.)"""

    def __init__(self, x_val, beta: float, epochs: int):
        self.x_val, self.beta, self.epochs = x_val, beta, epochs
        self.warned = False

    @torch.inference_mode()
    def __call__(self, vae: VAE, row: dict) -> dict:
        index = torch.arange(min(len(self.x_val), COLLAPSE_PROBE_ROWS))
        rows = self.x_val[index.to(self.x_val.device) if torch.is_tensor(self.x_val) else index]  # tensor or Batch
        units = active_units(vae.encode(rows).mean)
        judged = row["epoch"] >= max(1, self.epochs // 2) and row["beta"] >= self.beta
        if units == 0 and judged and not self.warned and is_main_process():
            import warnings

            self.warned = True
            warnings.warn(
                f"posterior collapse: after epoch {row['epoch']} none of the {vae.latent_dim} latent units is active "
                f"(KL {row.get('val_kl', row['kl']):.3f} nats), so the decoder ignores the code and every sample looks "
                "alike; train longer (--epochs), warm the KL up (--kl-warmup 10), keep some KL free (--free-bits 0.5), "
                "or use a smaller decoder (--hidden)", stacklevel=2)
        return {"val_active_units": units}


@torch.inference_mode()
def importance_weighted_nll(vae: VAE, x: torch.Tensor, k: int = 1000, batch_size: int | None = None,
                            progress: bool = False) -> torch.Tensor:
    """-log p(x) per example (N,), estimated with k importance samples (an upper bound on the true NLL
    that tightens as k grows). Batches are sized so that a chunk of decoder output stays ~64 MB."""
    device = next(vae.parameters()).device
    values = vae.decoded_elements()
    batch_size = batch_size or max(1, min(len(x), (1 << 24) // (values * min(k, 256))))
    starts = progress_bar(range(0, len(x), batch_size), desc=f"IWAE NLL (k={k})", enabled=progress, unit="batch")
    return torch.cat([-vae.log_likelihood(to_device(x[i:i + batch_size], device), k=k) for i in starts])


def knn_accuracy(train_means: torch.Tensor, y_train, test_means: torch.Tensor, y_test, neighbours: int = 5,
                 chunk: int = 1024) -> float:
    """Share of test points whose `neighbours` nearest training points (Euclidean) vote for their label; a tie
    goes to the smallest label, as in scikit-learn's KNeighborsClassifier."""
    train, test = train_means.float().cpu(), test_means.float().cpu()
    labels, y_train = torch.unique(torch.as_tensor(np.asarray(y_train)), return_inverse=True)
    y_test = torch.as_tensor(np.asarray(y_test))
    correct = 0
    for start in range(0, len(test), chunk):
        nearest = torch.cdist(test[start:start + chunk], train).topk(min(neighbours, len(train)), largest=False).indices
        votes = torch.nn.functional.one_hot(y_train[nearest], len(labels)).sum(1)  # (chunk, classes)
        correct += int((labels[votes.argmax(1)] == y_test[start:start + chunk]).sum())
    return correct / len(test)


def evaluate(vae: VAE, x: torch.Tensor, k: int = 1000, y=None, x_train: torch.Tensor | None = None,
             y_train=None, progress: bool = False, seed: int = 0) -> Evaluation:
    """Evaluate on x (N, *data_shape). Labels y plus (x_train, y_train) enable the k-NN accuracy; labels y the
    accuracy of a semi-supervised VAE's classifier."""
    torch.manual_seed(seed)
    vae.eval()
    device = next(vae.parameters()).device
    x = x.to(device)
    neg_elbo, reconstruction, kl = negative_elbo(vae, x)
    nll = float(importance_weighted_nll(vae, x, k=k, progress=progress).mean())
    means = latent_means(vae, x)
    accuracy = None
    if y is not None and x_train is not None and y_train is not None:
        accuracy = knn_accuracy(latent_means(vae, x_train), y_train, means, y)
    values = math.prod(x.shape[1:])
    bits = (nll / values + vae.likelihood.bits_per_dim_offset()) / math.log(2)
    classified = None
    if y is not None and getattr(vae, "classifier", None) is not None:
        classified = classifier_accuracy(class_probabilities(vae, x), y)
    return Evaluation(neg_elbo, reconstruction, kl, nll, k, bits, active_units(means), accuracy, len(x),
                      classifier_accuracy=classified)
