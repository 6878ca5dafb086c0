"""Anomaly detection: a VAE trained on (mostly) normal data flags what it explains badly.

`VAEAnomalyDetector` is a thin composition of the core parts (networks, a likelihood, the standard
normal prior, the Trainer) behind the PyOD / scikit-learn estimator conventions: `fit`,
`decision_function` (higher = more anomalous), `decision_scores_`, `threshold_`, `predict`.
Numeric tables are standardized robustly (median, IQR) with statistics of the training data and
modelled with a Gaussian likelihood; mixed-type pandas DataFrames go through the tabular app's
TableTransformer and MixedLikelihood; images in [0, 1] use a Bernoulli likelihood. Saved as config.json (parameters, scaler,
threshold) + model.safetensors + scores.safetensors; nothing is pickled.

CLI: `vaekit anomaly fit|score|evaluate`, each verb one function of `vaekit.apps.anomaly_files`
(fit_file, score_file, evaluate_file), which reads tables in chunks so files of any size stream. Each
parameter is written once, as a field (its default and its help, from which the fit flags are made).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import option
from ..errors import CheckpointError, ConfigError, DataError
from .anomaly_data import Standardizer, as_examples, is_mixed_table, mixed_rows

__all__ = ["Standardizer", "VAEAnomalyDetector", "as_examples"]

if TYPE_CHECKING:
    import numpy as np
    import torch


# torch and the core modules are imported inside methods: the CLI imports this module for --help.
SCORES = ("elbo", "iwae", "reconstruction", "deviance")  # what decision_function can report
LIKELIHOODS = ("auto", "gaussian", "bernoulli")
KIND = "anomaly"  # config.json's kind (vaekit.saved); vaekit 0.1.0 wrote "vaekit.anomaly"
SCORES_FILE = "scores.safetensors"
FORMAT_VERSION = 2  # 2: robust scaler and the clipping encoder (its weight names differ from version 1)
ENCODER_CLIP = 20.0  # standardized units: the encoder sees values clipped to +-this, the likelihood the real ones


@dataclass(eq=False)
class VAEAnomalyDetector:
    """A VAE-based anomaly detector with the PyOD conventions.

    fit(X) trains on (mostly) normal data X of shape (N, D) (a table) or (N, C, H, W) / (N, H, W)
    (images); decision_function(X) returns one anomaly score per row, HIGHER = MORE ANOMALOUS
    (as in PyOD; the opposite sign of scikit-learn's `score_samples`). Scores, in nats per example
    unless noted:

    - "elbo": -ELBO, averaged over `n_samples` posterior draws (a bound on -log p(x));
    - "iwae": -log p(x) estimated with `k` importance samples (Burda et al. 2016, eq. 8);
    - "reconstruction": squared error between x and its reconstruction at z = E[z|x], summed over
      features (in standardized units for tables, in pixel units for images). Not in nats.
    - "deviance" (Bernoulli likelihood, i.e. images): -ELBO minus H(x) = sum_j entr(x_j) + entr(1 - x_j),
      the lowest -log p(x|z) any decoder output can reach for grey levels x in [0, 1] (0 for binary
      pixels). -ELBO on grey images charges every pixel its own entropy, so images with many mid-grey
      pixels look anomalous whatever the model; the deviance removes that per-image constant and
      keeps the model's part (E_q[Bernoulli KL(x || decoded)] + KL(q||p)).

    score="auto" (the default) is "deviance" for Bernoulli images and "elbo" otherwise, chosen on a
    validation split of Fashion-MNIST TRAINING images (benchmarks/README.md, "Anomaly detection").

    A score that overflows (rows far outside the training range) is reported as the largest float64.

    `explain(X)` splits the score per feature (column or pixel). `threshold_` is the
    (1 - contamination) quantile of the training scores (`decision_scores_`), or set with
    `set_threshold(X_val, quantile)`; predict(X) is 1 where the score exceeds it.

    Parameters: the fields below, each with its default and what it does. likelihood='auto' is bernoulli
    for images in [0, 1], mixed for a DataFrame with non-numeric columns, else gaussian with a learned
    per-feature scale floored at `min_scale`; scaler='robust' is median and IQR / 1.349 (numeric tables);
    val_fraction holds out rows to stop training after `patience` epochs without a better validation
    -ELBO and keep the best epoch's weights (no labels are used; 0 trains for all epochs).

    Mixed-type tables (a pandas DataFrame with a categorical, string, boolean or datetime column):
    decision_function needs a DataFrame with the same columns; a category never seen at fit time
    has probability 0, so its row gets the largest float64 score; explain() is not available.
    """

    latent_dim: int = option(8, "size of z")
    hidden: tuple[int, ...] = option((64, 32), "MLP hidden sizes")
    network: str = option("auto", "mlp or conv; auto: conv for images", cli=False)
    likelihood: str = option("auto", "auto, gaussian or bernoulli", cli=False)
    min_scale: float = option(0.01, "floor of the Gaussian scale, in standardized units", cli=False)
    epochs: int | None = option(None, "training epochs; None: enough for about `steps` gradient steps")
    steps: int = option(3000, "gradient steps that set the epochs when epochs is None", cli=False)
    batch_size: int = option(128, "rows per gradient step", cli=False)
    lr: float = option(1e-3, "Adam learning rate", cli=False)
    beta: float = option(1.0, "weight of the KL term", cli=False)
    score: str = option("auto", "default score kind: auto = deviance for images, elbo for tables",
                        choices=("auto", *SCORES))
    n_samples: int = option(8, "posterior draws per row for the elbo and deviance scores", cli=False)
    k: int = option(64, "importance samples per row for the iwae score", cli=False)
    contamination: float = option(0.1, "share of training rows above the threshold")
    random_state: int = option(0, "seed of the weights, the split, shuffling and scoring draws", flag="seed")
    device: str = option("cpu", "cpu, cuda or cuda:N", cli=False)
    verbose: bool = option(False, "show training progress", cli=False)
    scaler: str = option("robust", "column scaling: median/IQR (robust) or mean/std (standard)",
                         choices=("robust", "standard"))
    val_fraction: float = option(0.1, "share of rows held out for early stopping on -ELBO; 0 disables")
    patience: int = option(10, "epochs without a better validation -ELBO before training stops", cli=False)
    weight_decay: float = option(0.0, "L2 penalty in Adam", cli=False)

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)

    # -- scikit-learn plumbing -------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def set_params(self, **params) -> VAEAnomalyDetector:
        names = [f.name for f in fields(self)]
        for name, value in params.items():
            if name not in names:
                raise ConfigError(f"unknown parameter '{name}': use one of {', '.join(names)}")
            setattr(self, name, value)
        return self

    def _validate(self) -> None:
        from ..config import check_count, check_device, check_values

        check_values(self)
        check_device(self.device)
        if self.score not in ("auto", *SCORES):
            raise ConfigError(f"unknown score '{self.score}': use one of auto, {', '.join(SCORES)}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood '{self.likelihood}': use one of {', '.join(LIKELIHOODS)}")
        if not 0 < self.contamination < 0.5:
            raise ConfigError(f"contamination must be in (0, 0.5), got {self.contamination}")
        if self.scaler not in ("robust", "standard"):
            raise ConfigError(f"unknown scaler '{self.scaler}': use robust or standard")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("latent_dim", "steps", "batch_size", "n_samples", "k", "patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"hidden must list positive sizes, got {self.hidden}")
        check_count("seed", self.random_state, 0)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be a positive integer or None, got {self.epochs}")

    # -- building and training -------------------------------------------------------------------
    def _likelihood_kind(self, x: np.ndarray) -> str:
        if self.likelihood != "auto":
            return self.likelihood
        return "bernoulli" if x.ndim == 4 and x.min() >= 0 and x.max() <= 1 else "gaussian"

    def _network(self):
        from ..likelihoods import Bernoulli, Gaussian
        from ..likelihoods.mixed import MixedLikelihood
        from ..networks import build_networks
        from ..priors import StandardNormal
        from ..vae import VAE

        shape = self.data_shape_
        likelihood = {"gaussian": lambda: Gaussian(shape, "learned", self.min_scale),
                      "bernoulli": lambda: Bernoulli(shape),
                      "mixed": lambda: MixedLikelihood(self.transformer_.blocks(), self.min_scale)}[self.likelihood_]()
        network = self.network if self.network != "auto" else ("conv" if len(shape) == 3 else "mlp")
        encoder, decoder = build_networks(network, shape, self.latent_dim, likelihood.params_per_value,
                                          self.hidden)
        if self.likelihood_ == "gaussian":  # q(z|clip(x)) is still a valid posterior family: the ELBO stays a bound
            from torch import nn

            encoder = nn.Sequential(nn.Hardtanh(-ENCODER_CLIP, ENCODER_CLIP), encoder)
        return VAE(encoder, decoder, likelihood, StandardNormal(self.latent_dim))

    def _build(self) -> None:
        from ..limits import build_within_memory

        self.vae_ = build_within_memory(self._network, "a detector of these sizes",
                                        "lower --latent-dim or --hidden").to(self.device)

    def fit(self, X, y=None) -> VAEAnomalyDetector:
        """Train on X (mostly normal rows); y is ignored (PyOD convention). Sets decision_scores_ and threshold_."""
        import numpy as np
        import torch

        from ..config import TrainConfig
        from ..training import Trainer

        self._validate()
        if is_mixed_table(X):  # categories one-hot, numbers standardized, by the tabular app's transformer
            from ..data.tables import TableTransformer

            self.transformer_ = TableTransformer.fit(X, seed=self.random_state)
            self.feature_names_ = [str(c) for c in X.columns]
            x = self.transformer_.transform(X)
        else:
            if hasattr(X, "columns"):
                self.feature_names_ = [str(c) for c in X.columns]
            x = as_examples(X)
        self.data_shape_ = tuple(x.shape[1:])
        self.likelihood_ = "mixed" if hasattr(self, "transformer_") else self._likelihood_kind(x)
        if self.score == "deviance" and self.likelihood_ != "bernoulli":
            raise ConfigError(_DEVIANCE_NEEDS_BERNOULLI)
        if self.likelihood_ == "bernoulli":
            from ..likelihoods import Bernoulli

            Bernoulli(self.data_shape_).check_data(torch.from_numpy(x))
        self.scaler_ = (Standardizer.fit(x, self.scaler == "robust") if self.likelihood_ == "gaussian"
                        else Standardizer.identity(self.data_shape_))
        xt = torch.from_numpy(self.scaler_.transform(x))
        order = np.random.default_rng(self.random_state).permutation(len(x))
        n_val = int(self.val_fraction * len(x)) if len(x) * self.val_fraction >= 10 else 0
        x_fit, x_val = xt[order[n_val:]], (xt[order[:n_val]] if n_val else None)
        epochs = self.epochs or min(200, max(5, math.ceil(self.steps / math.ceil(len(x_fit) / self.batch_size))))
        best = {}

        def keep_best(row):  # the weights of the epoch with the best validation -ELBO
            if x_val is not None and row["val_neg_elbo"] <= best.get("value", math.inf):
                best.update(value=row["val_neg_elbo"], epoch=row["epoch"],
                            state={k: v.detach().clone() for k, v in self.vae_.state_dict().items()})

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self._build()
            config = TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, beta=self.beta,
                                 weight_decay=self.weight_decay, early_stopping=self.patience if n_val else 0,
                                 seed=self.random_state, device=self.device, progress=self.verbose)
            self.history_ = Trainer(self.vae_, config, on_epoch=keep_best).fit(x_fit, x_val)
        if best:
            self.vae_.load_state_dict(best["state"])
        self.best_epoch_ = best.get("epoch", len(self.history_))
        self.vae_.eval()  # the Trainer already gave its convolutions the device's fast layout
        self.decision_scores_ = self._scores(xt, self.score_)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1 - self.contamination))
        return self

    # -- scoring ---------------------------------------------------------------------------------
    @property
    def score_(self) -> str:
        """The score kind decision_function reports by default: `score`, with 'auto' resolved."""
        if self.score != "auto":
            return self.score
        return "deviance" if getattr(self, "likelihood_", None) == "bernoulli" else "elbo"

    def _check_fitted(self) -> None:
        if not hasattr(self, "vae_"):
            raise ConfigError("this detector is not fitted yet: call fit(X) or VAEAnomalyDetector.load(path) first")

    def _prepare(self, X) -> tuple[torch.Tensor, np.ndarray | None]:
        """Model-space rows (N, *data_shape) and, for mixed tables, which rows hold a value never seen
        at fit time (N,) bool, else None."""
        import torch

        self._check_fitted()
        unseen = None
        if hasattr(self, "transformer_"):
            x, unseen = mixed_rows(self.transformer_, X)
        else:
            x = as_examples(X)
        if tuple(x.shape[1:]) != self.data_shape_:
            raise DataError(f"X has examples of shape {tuple(x.shape[1:])} but the detector was fitted on "
                            f"{self.data_shape_}: pass the same columns (or image size) as at fit time")
        return torch.from_numpy(self.scaler_.transform(x)), unseen

    def _per_feature(self, x: torch.Tensor, score: str) -> torch.Tensor:
        """(batch, *data_shape): E_q[-log p(x_j|z)] over n_samples draws (nats), minus the Bernoulli
        entropy of x_j for 'deviance', or squared error."""
        qz = self.vae_.encode(x)
        if score == "reconstruction":
            return (self.vae_.decode_mean(qz.mean) - x) ** 2
        z = qz.sample((self.n_samples,))  # (n_samples, batch, latent)
        nats = -self.vae_.decode(z).base_dist.log_prob(x).mean(0)
        return nats - _bernoulli_entropy(x) if score == "deviance" else nats

    def _batch_scores(self, x: torch.Tensor, score: str) -> torch.Tensor:
        if score == "iwae":
            return -self.vae_.log_likelihood(x, self.k)
        if score in ("elbo", "deviance"):
            nats = -self.vae_.elbo(x, self.n_samples).total()
            return nats - _bernoulli_entropy(x).flatten(1).sum(1) if score == "deviance" else nats
        return self._per_feature(x, score).flatten(1).sum(1)

    def _scores(self, x: torch.Tensor, score: str, per_feature: bool = False, batch_size: int = 1024) -> np.ndarray:
        import numpy as np
        score = score or self.score_
        if score not in SCORES:
            raise ConfigError(f"unknown score '{score}': use one of {', '.join(SCORES)}")
        if score == "deviance" and self.likelihood_ != "bernoulli":
            raise ConfigError(_DEVIANCE_NEEDS_BERNOULLI)
        import torch

        fn = self._per_feature if per_feature else self._batch_scores
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(self.random_state)
            parts = [fn(x[i:i + batch_size].to(self.device), score).cpu() for i in range(0, len(x), batch_size)]
        out = torch.cat(parts).numpy().astype(np.float64)
        # Rows far outside the training range can overflow float32 (e.g. the encoder's variance):
        # they are as anomalous as a score can say.
        return np.nan_to_num(out, nan=np.finfo(np.float64).max, posinf=np.finfo(np.float64).max)

    def decision_function(self, X, score: str | None = None) -> np.ndarray:
        """Anomaly score per row, (N,) float64: higher = more anomalous (PyOD convention; the negative
        of scikit-learn's score_samples). `score` overrides the detector's default kind."""
        import numpy as np

        x, unseen = self._prepare(X)
        scores = self._scores(x, score or self.score_)
        if unseen is not None:
            scores[unseen] = np.finfo(np.float64).max
        return scores

    def explain(self, X, score: str | None = None) -> np.ndarray:
        """Per-feature contributions (N, *data_shape): for 'elbo'/'iwae', E_q[-log p(x_j|z)] in nats,
        which sums over features to the reconstruction part of -ELBO (the KL is per row, not per
        feature); for 'deviance', the same minus each pixel's Bernoulli entropy (the score without the
        KL); for 'reconstruction', the squared error of each feature (these sum to the score)."""
        score = score or self.score_
        if hasattr(self, "transformer_"):
            raise ConfigError("per-feature contributions are not available for a mixed-type table yet: "
                              "use decision_function, or fit on numeric columns only")
        return self._scores(self._prepare(X)[0], score if score in ("reconstruction", "deviance") else "elbo",
                            per_feature=True)

    def predict(self, X, score: str | None = None) -> np.ndarray:
        """1 (anomaly) where the score exceeds threshold_, else 0; (N,) int64."""
        import numpy as np
        return (self.decision_function(X, score) > self.threshold_).astype(np.int64)

    def set_threshold(self, X_val=None, quantile: float | None = None) -> float:
        """threshold_ = the `quantile` of scores on normal validation data X_val (default: 1 - contamination),
        or of the training scores when X_val is None. Returns the threshold."""
        import numpy as np
        quantile = 1 - self.contamination if quantile is None else quantile
        if not 0 < quantile < 1:
            raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
        scores = self.decision_scores_ if X_val is None else self.decision_function(X_val)
        self.threshold_ = float(np.quantile(scores, quantile))
        return self.threshold_

    # -- saving ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write path/config.json (parameters, scaler, threshold), model.safetensors and scores.safetensors."""
        import torch

        from ..checkpoint import MODEL_FILE, save_tensors
        from ..io import write_json

        self._check_fitted()
        path = Path(path)
        save_tensors(path / MODEL_FILE, self.vae_.state_dict())
        save_tensors(path / SCORES_FILE, {"decision_scores": torch.from_numpy(self.decision_scores_)})
        write_json(path / "config.json", {
            "kind": KIND, "format_version": FORMAT_VERSION, "params": {**self.get_params(), "hidden": list(self.hidden)},
            "data_shape": list(self.data_shape_), "likelihood": self.likelihood_, "threshold": self.threshold_,
            "scaler": self.scaler_.to_dict(), "feature_names": getattr(self, "feature_names_", None),
            "transformer": self.transformer_.to_dict() if hasattr(self, "transformer_") else None})
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> VAEAnomalyDetector:
        """Rebuild a detector written by save()."""
        from ..accel import accelerate
        from ..checkpoint import MODEL_FILE, load_tensors, load_weights
        from ..saved import read_config

        path = Path(path)
        meta = read_config(path, KIND, FORMAT_VERSION)
        params = {**meta["params"], "hidden": tuple(meta["params"]["hidden"]), "device": device}
        detector = cls(**params)
        detector.data_shape_ = tuple(meta["data_shape"])
        detector.likelihood_, detector.threshold_ = meta["likelihood"], meta["threshold"]
        detector.scaler_ = Standardizer.from_dict(meta["scaler"])
        if meta.get("feature_names") is not None:
            detector.feature_names_ = meta["feature_names"]
        if meta.get("transformer") is not None:
            from ..data.tables import TableTransformer

            detector.transformer_ = TableTransformer.from_dict(meta["transformer"])
        detector._build()
        load_weights(detector.vae_, path / MODEL_FILE)
        accelerate(detector.vae_, device).eval()  # as the Trainer ran it
        detector.decision_scores_ = load_tensors(path / SCORES_FILE)["decision_scores"].numpy()
        return detector


_DEVIANCE_NEEDS_BERNOULLI = ("the deviance score needs the Bernoulli likelihood (images in [0, 1]): "
                             "use score='elbo' for tables")


def _bernoulli_entropy(x: torch.Tensor) -> torch.Tensor:
    """Per value, same shape as x in [0, 1]: entr(x) + entr(1 - x) in nats, the smallest Bernoulli
    -log p(x|probability) over probabilities (reached at probability = x; 0 for x in {0, 1})."""
    import torch

    return torch.special.entr(x) + torch.special.entr(1 - x)
