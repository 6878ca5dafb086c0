"""Sample quality that runs offline: a small classifier vaekit trains on the dataset itself gives the features,
and three distances compare real and generated examples in them: the Fréchet distance (the formula of FID,
Heusel et al. 2017, in other features: never call it FID), the kernel distance KID (Bińkowski et al. 2018) and
precision/recall (Kynkäänniemi et al. 2019).

The classifier is fitted once per dataset and kept in vaekit's cache folder (`classifier_for`), keyed by a hash
of the training data, so every run on that data is judged in the same features.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import CONFIG_FILE, MODEL_FILE, load_weights, read_json, save_tensors
from .errors import DataError
from .io import cache_dir, write_json
from .progress import progress_bar

CLASSIFIER_FORMAT = 1  # the cached classifier's files; another version is refitted
CLASSIFIER_FEATURES = 128  # width of the penultimate layer: the feature space of the distances
CLASSIFIER_EPOCHS = 3  # Fashion-MNIST: ~90% test accuracy after 3 epochs, ~1 minute on one CPU thread
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # Bińkowski et al. 2018's protocol
PR_NEIGHBOURS = 3  # k of the k-NN radii (Kynkäänniemi et al. 2019)


@dataclass(frozen=True)
class SampleQuality:
    """Distances between generated and real examples in one feature space (lower is better, except precision and
    recall: shares in [0, 1], higher is better)."""

    frechet_distance: float  # ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^1/2), in classifier features
    kid: float  # unbiased MMD^2 with the kernel (x.y / d + 1)^3, mean over subsets
    precision: float  # share of samples inside the real examples' k-NN balls
    recall: float  # share of real examples inside the samples' k-NN balls
    n_samples: int
    sampler: str  # where the latents came from: prior, gmm or two-stage
    features: str  # which classifier: its cache folder's name
    classifier_accuracy: float | None  # the classifier's accuracy on the real examples (None: unlabelled), so the
    # features can be judged
    inception_fid: float | None = None  # real FID, only with local Inception weights

    def to_dict(self) -> dict:
        return asdict(self)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (n, d) and b (m, d). The matrix square root's
    trace is taken as the sum of square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2, which is symmetric, so
    no complex parts arise."""
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def kernel_distance(a: torch.Tensor, b: torch.Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                    seed: int = 0) -> float:
    """KID: the unbiased MMD^2 between feature sets a and b with the polynomial kernel (x.y / d + 1)^3, averaged
    over `subsets` random subsets of `subset_size` rows of each (fewer when a set is smaller)."""
    a, b = a.double(), b.double()
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise DataError(f"KID needs at least 2 examples on each side, got {len(a)} and {len(b)}")
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:m]]
        y = b[torch.randperm(len(b), generator=generator)[:m]]
        k_xx, k_yy, k_xy = ((p @ q.T / a.shape[1] + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off_diagonal = (k_xx.sum() - k_xx.trace() + k_yy.sum() - k_yy.trace()) / (m * (m - 1))
        total += float(off_diagonal - 2 * k_xy.mean())
    return total / subsets


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Whether each point lies in at least one ball (centre, radius)."""
    return torch.cat([(torch.cdist(points[i:i + chunk], centres) <= radii).any(1)
                      for i in range(0, len(points), chunk)])


def _knn_radii(points: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point."""
    k = min(k, len(points) - 1)
    return torch.cat([torch.cdist(points[i:i + chunk], points).topk(k + 1, largest=False).values[:, -1]
                      for i in range(0, len(points), chunk)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = PR_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around
    its points reaching their k-th nearest neighbour; precision is the share of `fake` in the real manifold, recall
    the share of `real` in the fake one."""
    real, fake = real.float(), fake.float()
    if min(len(real), len(fake)) < 2:
        raise DataError(f"precision/recall needs at least 2 examples on each side, got {len(real)} and {len(fake)}")
    precision = _covered(fake, real, _knn_radii(real, k)).float().mean()
    recall = _covered(real, fake, _knn_radii(fake, k)).float().mean()
    return float(precision), float(recall)


class FeatureClassifier(nn.Module):
    """A small classifier of one dataset: convolutions for images (C, H, W), an MLP otherwise. `features` is its
    penultimate layer, (batch, CLASSIFIER_FEATURES)."""

    def __init__(self, data_shape: tuple[int, ...], n_classes: int, width: int = CLASSIFIER_FEATURES):
        super().__init__()
        if len(data_shape) == 3:
            self.body = nn.Sequential(
                nn.Conv2d(data_shape[0], 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                nn.Linear(64 * 16, width), nn.ReLU())
        else:
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data_shape), 256), nn.ReLU(),
                                      nn.Linear(256, width), nn.ReLU())
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.inference_mode()
    def features(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Penultimate-layer features of every row of x, (N, CLASSIFIER_FEATURES), on the CPU."""
        self.eval()
        return torch.cat([self.body(x[i:i + batch_size].float()).cpu() for i in range(0, len(x), batch_size)])

    @torch.inference_mode()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
        self.eval()
        predicted = torch.cat([self(x[i:i + batch_size].float()).argmax(1) for i in range(0, len(x), batch_size)])
        return float((predicted == y).float().mean())


def fit_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = CLASSIFIER_EPOCHS, batch_size: int = 128,
                   seed: int = 0) -> FeatureClassifier:
    """Train a FeatureClassifier on examples x (N, *shape) with integer labels y (N,), cross-entropy and Adam."""
    torch.manual_seed(seed)
    model = FeatureClassifier(tuple(x.shape[1:]), int(y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with progress_bar(total=epochs * math.ceil(len(x) / batch_size), desc="feature classifier", unit="step") as bar:
        for _ in range(epochs):
            for index in torch.randperm(len(x), generator=generator).split(batch_size):
                loss = nn.functional.cross_entropy(model(x[index].float()), y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update()
    return model.eval()


def data_fingerprint(name: str, x: np.ndarray, y: np.ndarray) -> str:
    """A cache folder's name for the classifier of this training data: the dataset's name and a hash of its values."""
    digest = hashlib.blake2b(digest_size=8)
    for array in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        digest.update(repr((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(name).name)[:40] or "data"
    return f"{stem}-{digest.hexdigest()}"


def classifier_for(name: str, x_train: np.ndarray, y_train: np.ndarray, folder: Path | None = None
                   ) -> tuple[FeatureClassifier, str]:
    """The feature classifier of this training data, with its cache folder's name: loaded from
    `folder` (default: the cache folder's feature-classifiers/) or, the first time, fitted and saved there."""
    if y_train is None:
        raise DataError("sample-quality metrics need a labelled dataset to train their feature classifier: "
                        "use data with labels (e.g. fashion-mnist) or leave out --samples")
    key = data_fingerprint(name, x_train, y_train)
    path = (folder or cache_dir() / "feature-classifiers") / key
    labels = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    saved = read_json(path / CONFIG_FILE) if (path / CONFIG_FILE).is_file() else {}
    if saved.get("format_version") == CLASSIFIER_FORMAT and (path / MODEL_FILE).is_file():
        model = FeatureClassifier(tuple(saved["data_shape"]), saved["n_classes"], saved["features"])
        load_weights(model, path / MODEL_FILE)
        return model.eval(), key
    start = time.perf_counter()
    model = fit_classifier(torch.as_tensor(np.asarray(x_train)), labels)
    save_tensors(path / MODEL_FILE, model.state_dict())
    write_json(path / CONFIG_FILE, {"kind": "feature-classifier", "format_version": CLASSIFIER_FORMAT,
                                    "data": name, "data_shape": list(x_train.shape[1:]),
                                    "n_classes": int(labels.max()) + 1, "features": CLASSIFIER_FEATURES,
                                    "epochs": CLASSIFIER_EPOCHS, "fit_seconds": time.perf_counter() - start})
    return model, key


def compare(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> tuple[float, float, float, float]:
    """(Fréchet distance, KID, precision, recall) between feature sets real (n, d) and fake (m, d)."""
    precision, recall = precision_recall(real, fake)
    return frechet_distance(real, fake), kernel_distance(real, fake, seed=seed), precision, recall


def inception_fid(real: torch.Tensor, fake: torch.Tensor, weights: str | Path, batch_size: int = 100) -> float:
    """FID in the features of Inception-v3 loaded from the local file `weights` (torchmetrics' FrechetInceptionDistance
    over torch-fidelity's network, which reads the file instead of downloading). Images (N, C, H, W) in [0, 1];
    one channel is repeated to three. The file is first read as tensors only (`weights_only`), so a file that
    would run code when unpickled is refused before torch-fidelity unpickles it."""
    from .errors import ConfigError, optional_import

    optional_import("torch_fidelity", "--inception-weights", "torch-fidelity")
    image = optional_import("torchmetrics.image.fid", "--inception-weights", "torchmetrics torch-fidelity")
    expected = "pass torch-fidelity's Inception-v3 weights (weights-inception-2015-12-05-6726825d.pth)"
    if not Path(weights).is_file():
        raise ConfigError(f"--inception-weights {weights} not found: {expected}")
    if real.dim() != 4 or real.shape[1] not in (1, 3):
        raise ConfigError("--inception-weights needs images of 1 or 3 channels")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports a bad archive, a pickle it refuses, a truncated file each its own way
        raise ConfigError(f"--inception-weights {weights} is not a file of PyTorch weights "
                          f"({type(err).__name__}): {expected}") from None
    try:
        metric = image.FrechetInceptionDistance(feature=2048, normalize=True,
                                                feature_extractor_weights_path=str(weights))
    except RuntimeError as err:
        raise ConfigError(f"--inception-weights {weights} holds {len(state) if isinstance(state, dict) else 'no'} "
                          f"tensors that are not Inception-v3's ({str(err).splitlines()[0][:80]}): {expected}") from None
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            batch = images[i:i + batch_size].float().clamp(0, 1)
            metric.update(batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch, real=is_real)
    return float(metric.compute())
