"""Classifiers on a sentence VAE's latent means, and what the text app's classifying verbs return: the logistic
regression (with self-training on unlabelled sentences) behind `vaekit text classify`, `Classification` and
`Predictions`. Imports scikit-learn and numpy when first used."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Classification:
    """A logistic regression on latent means: cross-validated accuracy on the labelled sentences
    (None when a class has fewer than 2 examples), the predictions for `predict`, and how many
    unlabelled sentences self-training could draw on (0: supervised only)."""

    accuracy: float | None
    folds: int
    n_labelled: int
    classes: tuple[str, ...]
    predictions: tuple[str, ...]
    n_unlabelled: int = 0


# Self-training's confidence threshold (sklearn's default): at least as good as 0.55, 0.6, 0.7 and 0.9 on
# the validation protocol of benchmarks/text.py (sentiment, 100 labels); see benchmarks/README.md.
SELF_TRAINING_THRESHOLD = 0.75


def latent_classifier(seed: int = 0, self_training: float | None = None):
    """Standardized latent means -> L2 logistic regression (sklearn, C=1). With `self_training` (a
    probability threshold), fit it on labelled and unlabelled rows together (label -1): the standardization
    uses all rows, and the regression is refitted, adding each round the unlabelled rows whose predicted class
    probability exceeds the threshold with that class as label, until none is added (self-training,
    Yarowsky 1995; sklearn's SelfTrainingClassifier, at most 10 rounds)."""
    from ..errors import optional_import

    optional_import("sklearn", "few-label classification", "scikit-learn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import SelfTrainingClassifier

    regression = LogisticRegression(max_iter=2000, random_state=seed)
    if self_training is not None:
        regression = SelfTrainingClassifier(regression, threshold=self_training)
    return make_pipeline(StandardScaler(), regression)


def fit_latent_classifier(features, labels, unlabelled=None, self_training: float = SELF_TRAINING_THRESHOLD,
                          seed: int = 0):
    """`latent_classifier` fitted on features (N, latent_dim) with integer labels (N,); with `unlabelled`
    features (M, latent_dim), by self-training at threshold `self_training` on all N + M rows."""
    import numpy as np

    if unlabelled is None or len(unlabelled) == 0:
        return latent_classifier(seed).fit(features, labels)
    x = np.concatenate([features, unlabelled])
    y = np.concatenate([labels, np.full(len(unlabelled), -1)])
    return latent_classifier(seed, self_training).fit(x, y)


@dataclass(frozen=True)
class Predictions:
    """Labels from a model fitted with labelled sentences: the most probable class per sentence and
    p(y | z = E[z|x]) over `classes`, (N, classes)."""

    classes: tuple[str, ...]
    labels: tuple[str, ...]
    probabilities: object  # numpy array
