"""Conditions and paired data: the one mechanism behind conditional and denoising VAEs.

A condition module maps a raw condition c to features the networks take as an optional second
argument: class labels (batch,) int -> one-hot vectors (batch, K); a low-resolution image
(batch, C, h, w) -> itself, as planes; a corrupted copy of the image (batch, C, H, W) -> itself
(conditional denoising, p(x_clean | z, x_noisy)). Conv networks concatenate features as extra channels
(vectors as constant planes, planes resized), MLPs concatenate them flattened (networks.py).

A `Batch(x, c, target)` carries the encoder input, the condition and the values the likelihood
scores from a data source to `VAE.loss`/`VAE.elbo`, so the model-agnostic Trainer, which passes
each batch through untouched, trains conditional (c) and denoising (target = clean, x = corrupted)
models without knowing either exists. `PairedData` is that data source; for conditional denoising it
puts the fresh corruption into c and gives the encoder the clean image. The draws it makes from clean
inputs, `binarize` and a `Corruption`, live here too (the Trainer's dynamic binarization uses `binarize`).
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, DataError


def parse_spec(text: str, kinds: dict, flag: str) -> tuple[str, float | None]:
    """'kind' or 'kind:number' -> (kind, number or None); unknown kinds name the valid ones."""
    kind, _, amount = str(text).partition(":")
    if kind not in kinds:
        raise ConfigError(f"unknown {flag} '{text}': use none or one of {', '.join(kinds)}")
    try:
        return kind, float(amount) if amount else None
    except ValueError:
        raise ConfigError(f"{flag} '{text}' needs a number after ':', e.g. {kind}:{kinds[kind]}") from None


# -- conditions -------------------------------------------------------------------------------------
def downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Area (box-average) downscaling (batch, C, H, W) -> (batch, C, H // factor, W // factor)."""
    return F.adaptive_avg_pool2d(x[..., : x.shape[-2] // factor * factor, : x.shape[-1] // factor * factor],
                                 (x.shape[-2] // factor, x.shape[-1] // factor))


class LabelCondition(nn.Module):
    """Class labels (batch,) int in [0, n_classes) -> one-hot features (batch, n_classes)."""

    def __init__(self, n_classes: int):
        super().__init__()
        if n_classes < 2:
            raise ConfigError(f"--condition label needs at least 2 classes, got {n_classes}")
        self.n_classes = n_classes
        self.feature_shape = (n_classes,)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(c)
        if c.dim() != 1 or c.is_floating_point() or (len(c) and (int(c.min()) < 0 or int(c.max()) >= self.n_classes)):
            raise DataError(f"label conditions must be integers in [0, {self.n_classes}) of shape (batch,)")
        return F.one_hot(c.long(), self.n_classes).float()

    def from_data(self, x: torch.Tensor, y) -> torch.Tensor:
        if y is None:
            raise DataError("--condition label needs labelled data: use a dataset with labels or --condition none")
        return torch.as_tensor(y).long()


class LowResCondition(nn.Module):
    """A low-resolution image (batch, C, H // factor, W // factor) as planes: the condition of
    super-resolution, p(x_high | z, x_low)."""

    def __init__(self, factor: int, data_shape: tuple[int, ...]):
        super().__init__()
        if len(data_shape) != 3 or factor < 2 or min(data_shape[1:]) // factor < 1:
            raise ConfigError(f"--condition lowres:{factor} needs images (C, H, W) at least {factor} pixels on a "
                              f"side and an integer factor >= 2; got data of shape {tuple(data_shape)}")
        if data_shape[1] % factor or data_shape[2] % factor:
            dividing = [f"lowres:{f}" for f in (2, 4, 3, 5) if data_shape[1] % f == 0 and data_shape[2] % f == 0]
            fix = f"use {' or '.join(dividing[:2])}" if dividing else "resize the images (--image-size)"
            raise ConfigError(f"--condition lowres:{factor} needs a factor that divides the image size "
                              f"{data_shape[1]}x{data_shape[2]} (so each low-resolution pixel covers whole pixels): "
                              f"{fix}")
        self.factor = factor
        self.feature_shape = (data_shape[0], data_shape[1] // factor, data_shape[2] // factor)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if tuple(c.shape[1:]) != self.feature_shape:
            raise DataError(f"the low-resolution image has shape {tuple(c.shape[1:])}, this model takes "
                            f"{self.feature_shape} (x{self.factor} of its training images): resize the input")
        return c

    def from_data(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return downscale(x, self.factor)


class NoisyCondition(nn.Module):
    """A corrupted copy of the image (batch, *data_shape) as planes: the condition of conditional
    denoising, p(x_clean | z, x_noisy) with q(z | x_clean, x_noisy). The data source draws the
    corruption (PairedData with corrupt_condition), so `from_data` has nothing to take from x."""

    corrupts = True

    def __init__(self, data_shape: tuple[int, ...]):
        super().__init__()
        if len(data_shape) != 3:
            raise ConfigError(f"--condition noisy needs images (C, H, W); got data of shape {tuple(data_shape)}")
        self.feature_shape = tuple(data_shape)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if tuple(c.shape[1:]) != self.feature_shape:
            raise DataError(f"the noisy images have shape {tuple(c.shape[1:])}, this model takes "
                            f"{self.feature_shape}: resize the input")
        return c

    def from_data(self, x: torch.Tensor, y=None) -> None:
        return None


CONDITIONS = {"label": "", "lowres": 2, "noisy": ""}  # kind -> example number


def build_condition(spec: str, data_shape: tuple[int, ...], n_classes: int = 0) -> nn.Module | None:
    """'none' -> None; 'label' -> LabelCondition(n_classes); 'lowres:F' -> LowResCondition(F);
    'noisy' -> NoisyCondition."""
    if spec == "none":
        return None
    kind, number = parse_spec(spec, CONDITIONS, "--condition")
    if kind == "label":
        return LabelCondition(n_classes)
    if kind == "noisy":
        return NoisyCondition(tuple(data_shape))
    if number is None or number != int(number):
        raise ConfigError(f"--condition {spec} needs an integer factor, e.g. lowres:2 or lowres:4")
    return LowResCondition(int(number), tuple(data_shape))


# -- binarization and corruptions (denoising) --------------------------------------------------------
def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli draw of x in [0, 1] (dynamic binarization when redrawn each epoch).

    P(u < x) = x for u ~ U[0, 1): on a CPU the very draws of torch.bernoulli (the same stream, bit for bit), whose
    CPU kernel is slower: per 512 x 784 batch on 2 AMD EPYC cores 2.2 ms against 1.6 for MNIST, 5.2 against
    1.7 for grey-level images.
    """
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (u < x).to(x.dtype)


@dataclass(frozen=True)
class Corruption:
    """Noise applied to clean inputs x in [0, 1]; outputs are clipped to [0, 1] like a saved image.

    gaussian:s adds N(0, s^2); salt-pepper:p sets a share p of values to 0 or 1 (half each);
    mask:p sets a share p of values to 0."""

    kind: str
    amount: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(x.shape, generator=generator, device=x.device)
        if self.kind == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=x.device)
            return (x + self.amount * noise).clamp(0, 1)
        if self.kind == "mask":
            return torch.where(u < self.amount, torch.zeros_like(x), x)
        salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
        return torch.where(u < self.amount, salt.to(x.dtype), x)


CORRUPTIONS = {"gaussian": 0.3, "salt-pepper": 0.1, "mask": 0.25}


def parse_corruption(spec: str) -> Corruption | None:
    """'none' -> None; 'gaussian:0.3', 'salt-pepper:0.1', 'mask:0.25' -> a Corruption."""
    if spec == "none":
        return None
    kind, amount = parse_spec(spec, CORRUPTIONS, "--corrupt")
    amount = CORRUPTIONS[kind] if amount is None else amount
    if not 0 <= amount < math.inf or (kind != "gaussian" and amount > 1):
        raise ConfigError(f"--corrupt {spec}: the amount must be >= 0 (and <= 1 for a share)")
    return Corruption(kind, amount)


# -- paired data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """What VAE.loss/elbo consume: encoder input x (batch, ...), raw condition c (or None) and the
    values the likelihood scores, target (None: x itself)."""

    x: torch.Tensor
    c: torch.Tensor | None = None
    target: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device, non_blocking: bool = False) -> Batch:
        move = (lambda t: None if t is None else t.to(device, non_blocking=non_blocking))
        return Batch(move(self.x), move(self.c), move(self.target))


class PairedData:
    """Examples x (N, ...) with conditions c (N, ...) and an optional corruption applied on every
    read (fresh noise each epoch; the global torch RNG, so exact resume holds). Indexing with an
    index tensor or a slice gives a Batch; `target` pins fixed targets (see `fixed`). With
    corrupt_condition the corrupted copy becomes the condition and the encoder sees x itself
    (conditional denoising); otherwise it replaces the encoder input (a denoising VAE)."""

    def __init__(self, x: torch.Tensor, c: torch.Tensor | None = None, corruption: Corruption | None = None,
                 target: torch.Tensor | None = None, binarize: bool = False, corrupt_condition: bool = False):
        if c is not None and len(c) != len(x):
            raise DataError(f"{len(x)} examples but {len(c)} conditions: give one condition per example")
        if corrupt_condition and (corruption is None or c is not None):
            raise ConfigError("--condition noisy needs --corrupt (e.g. gaussian:0.2): the noise the model "
                              "learns to remove")
        self.x, self.c, self.corruption, self.target, self.binarize = x, c, corruption, target, binarize
        self.corrupt_condition = corrupt_condition

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> torch.Size:
        return self.x.shape

    def to(self, device) -> PairedData:
        move = (lambda t: None if t is None else t.to(device))
        return PairedData(move(self.x), move(self.c), self.corruption, move(self.target), self.binarize,
                          self.corrupt_condition)

    def __getitem__(self, index) -> Batch:
        x = self.x[index]
        if self.binarize:
            x = binarize(x)
        c = None if self.c is None else self.c[index]
        if self.target is not None:
            return Batch(x, c, self.target[index])
        if self.corruption is None:
            return Batch(x, c)
        if self.corrupt_condition:
            return Batch(x, self.corruption(x))
        return Batch(self.corruption(x), c, x)

    def fixed(self, seed: int = 0) -> PairedData:
        """The same data with one fixed corruption draw (validation and test sets)."""
        if self.corruption is None:
            return self
        generator = torch.Generator(device=self.x.device).manual_seed(seed)
        if self.corrupt_condition:
            return PairedData(self.x, self.corruption(self.x, generator))
        return PairedData(self.corruption(self.x, generator), self.c, None, self.x)


# -- labelled and unlabelled rows (semi-supervised training) --------------------------------------------
UNLABELLED = -1


@dataclass(frozen=True)
class LabelledBatch:
    """Rows of the wrapped data source (a tensor or a Batch): first the batch the ELBO is taken over, then
    the labelled rows drawn for the label term; labels (rows,), UNLABELLED for none. (M2, in vae.py, scores every
    row by its label, known or not, and so takes no notice of n_elbo.)"""

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


def balanced_labels(y, n: int, seed: int) -> torch.Tensor:
    """Labels (N,) long that keep `n` of y's labels and mark the rest UNLABELLED: n // K rows of each of the K
    classes (the first n % K classes one more), drawn with `seed`, as semi-supervised benchmarks pick their few
    labels (Kingma et al. 2014: 100 labels of MNIST, 10 per class)."""
    y = torch.as_tensor(y).long()
    classes = torch.unique(y)
    if n < len(classes) or n > len(y):
        raise ConfigError(f"--labelled {n}: keep between {len(classes)} (one per class) and {len(y)} (every training "
                          "example) labels")
    generator = torch.Generator().manual_seed(seed)
    kept = torch.full_like(y, UNLABELLED)
    for i, label in enumerate(classes.tolist()):
        rows = torch.nonzero(y == label).flatten()
        wanted = n // len(classes) + (i < n % len(classes))
        if wanted > len(rows):
            raise DataError(f"--labelled {n} needs {wanted} examples of class {label}, the training set has "
                            f"{len(rows)}: ask for fewer labels")
        chosen = rows[torch.randperm(len(rows), generator=generator)[:wanted]]
        kept[chosen] = label
    return kept


def unpack(x, c=None, target=None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(encoder input, raw condition, likelihood target) from a tensor or a Batch plus keywords."""
    if isinstance(x, Batch):
        c = x.c if c is None else c
        target = x.target if target is None else target
        x = x.x
    return x, c, x if target is None else target


def repeat_rows(features: torch.Tensor, n: int) -> torch.Tensor:
    """Tile (batch, ...) to (n, ...) where n is a multiple of batch (rows of z flattened from (k, batch))."""
    return features.repeat(n // len(features), *([1] * (features.dim() - 1))) if len(features) else features
