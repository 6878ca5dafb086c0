"""Disentanglement metrics of a code (latent means, (N, D)) against known discrete factors ((N, K) indices):
MIG, SAP, DCI and the FactorVAE score, each as its paper defines it, with the estimator details named where
a paper leaves them open. numpy only, except DCI's random forests (scikit-learn).

The codes and factors are split once into halves with `seed`: the classifiers of SAP, DCI and the FactorVAE
score are fitted on the first half and scored on the second; MIG reads all rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import DataError, optional_import

MIG_BINS = 20  # equal-width bins per code dimension for MIG's plug-in MI (Locatello et al. 2019's choice)
SAP_BINS = 20  # equal-count bins of the one-dimension classifier of each SAP cell
FACTORVAE_VOTES = 800  # votes to fit and as many to score the majority-vote classifier (Kim & Mnih 2018)
FACTORVAE_GROUP = 100  # examples sharing one fixed factor value per vote (Kim & Mnih's L)
FACTORVAE_MIN_VARIANCE = 0.05  # dimensions whose variance over the data falls below this count as collapsed
DCI_TREES = 20  # trees of each factor's random forest (Eastwood & Williams 2018 used random forests or lasso);
# each split weighs every code dimension (max_features=None): sampling a few would spread importance onto
# dimensions a perfect code does not use (DCI disentanglement 0.59 for the true factors, measured)


@dataclass(frozen=True)
class Disentanglement:
    """Scores in [0, 1], higher is better."""

    mig: float  # mutual information gap (Chen et al. 2018, eq. 7), mean over factors
    sap: float  # separated attribute predictability (Kumar et al. 2018, sec. 3)
    dci_disentanglement: float  # Eastwood & Williams 2018, sec. 3: per code, 1 - entropy of its importances
    dci_completeness: float  # per factor, 1 - entropy of the importances that predict it
    dci_informativeness: float  # the forests' test accuracy, mean over factors
    factorvae: float  # the majority-vote accuracy of Kim & Mnih 2018, sec. 4
    n_examples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise DataError(f"codes {codes.shape} and factors {factors.shape} must be (N, D) and (N, K) of the same N")
    if len(codes) < 4:
        raise DataError(f"{len(codes)} examples are too few to score disentanglement; give a few hundred or more")
    if factors.dtype.kind not in "iu" or factors.min() < 0:
        raise DataError("factors must be non-negative integer indices, one column per factor")
    return codes, factors


def entropy(labels: np.ndarray) -> float:
    """H of the empirical distribution of integer `labels`, in nats."""
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """Each column of codes (N, D) cut into `bins` equal-width bins: indices (N, D)."""
    low, high = codes.min(0), codes.max(0)
    width = np.where(high > low, (high - low) / bins, 1.0)
    return np.clip(((codes - low) / width).astype(np.int64), 0, bins - 1)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in I(a; b) in nats of two integer label vectors of the same length."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= len(a)
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> float:
    """Mean over factors v_k of (I(z_j*; v_k) - max_{j != j*} I(z_j; v_k)) / H(v_k), j* the code dimension most
    informative of v_k (Chen et al. 2018, eq. 7). The MI is estimated from codes cut into `bins` equal-width
    bins, so a factor with more values than bins cannot reach 1 even under a perfect code."""
    codes, factors = _check(codes, factors)
    if codes.shape[1] < 2:
        raise DataError("MIG compares the two most informative code dimensions: the code needs at least 2")
    binned = discretize(codes, bins)
    gaps = []
    for v in factors.T:
        h = entropy(v)
        if h == 0:
            continue
        info = np.sort([mutual_information(z, v) for z in binned.T])[::-1]
        gaps.append((info[0] - info[1]) / h)
    return float(np.mean(gaps))


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2:]


def _binned_accuracy(z_train, v_train, z_test, v_test, bins: int) -> float:
    """Test accuracy of the classifier of one code dimension that predicts each of its equal-count bins'
    majority factor value."""
    edges = np.unique(np.quantile(z_train, np.linspace(0, 1, bins + 1)[1:-1]))
    cell_train, cell_test = np.searchsorted(edges, z_train), np.searchsorted(edges, z_test)
    counts = np.zeros((len(edges) + 1, v_train.max() + 1))
    np.add.at(counts, (cell_train, v_train), 1)
    return float((counts.argmax(1)[cell_test] == v_test).mean())


def sap(codes: np.ndarray, factors: np.ndarray, seed: int = 0, bins: int = SAP_BINS) -> float:
    """Mean over factors of the gap between the two code dimensions that predict it best alone (Kumar et al. 2018):
    each cell S_jk is the test accuracy of a classifier of factor k reading only dimension j; for discrete factors
    the paper uses threshold classifiers, here each of `bins` equal-count intervals predicts its majority value."""
    codes, factors = _check(codes, factors)
    if codes.shape[1] < 2:
        raise DataError("SAP compares the two most predictive code dimensions: the code needs at least 2")
    train, test = _halves(len(codes), seed)
    gaps = []
    for v in factors.T:
        score = np.sort([_binned_accuracy(z[train], v[train], z[test], v[test], bins) for z in codes.T])[::-1]
        gaps.append(score[0] - score[1])
    return float(np.mean(gaps))


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 - H(p) / log(base) along the last axis of the distributions p."""
    logs = np.log(np.where(p > 0, p, 1.0))
    return 1 + (p * logs).sum(-1) / np.log(base)


def dci(codes: np.ndarray, factors: np.ndarray, seed: int = 0, trees: int = DCI_TREES) -> tuple[float, float, float]:
    """(disentanglement, completeness, informativeness) of Eastwood & Williams (2018). One random forest per factor
    predicts it from the code; its impurity importances form column k of R (D, K). Disentanglement: sum_j rho_j
    (1 - H_K(P_j.)), P_j. row j of R normalised, rho_j its share of all importance; completeness: the mean over
    factors of 1 - H_D(P~_.k), column k normalised; informativeness: the forests' test accuracy, mean over
    factors (an error in the paper: 1 - it)."""
    ensemble = optional_import("sklearn.ensemble", "the DCI disentanglement scores", "scikit-learn")
    codes, factors = _check(codes, factors)
    train, test = _halves(len(codes), seed)
    importance, accuracy = [], []
    for v in factors.T:
        forest = ensemble.RandomForestClassifier(n_estimators=trees, max_depth=8, max_features=None,
                                                  random_state=seed, n_jobs=1)
        forest.fit(codes[train], v[train])
        importance.append(forest.feature_importances_)
        accuracy.append(forest.score(codes[test], v[test]))
    r = np.abs(np.stack(importance, axis=1))  # (D, K)
    total = r.sum()
    if total == 0 or min(r.shape) < 2:
        return 0.0, 0.0, float(np.mean(accuracy))
    rows = r.sum(1, keepdims=True)
    by_code = np.divide(r, rows, out=np.full_like(r, 1 / r.shape[1]), where=rows > 0)
    disentanglement = float((rows[:, 0] / total * _one_minus_entropy(by_code, r.shape[1])).sum())
    completeness = float(_one_minus_entropy((r / r.sum(0, keepdims=True)).T, r.shape[0]).mean())
    return disentanglement, completeness, float(np.mean(accuracy))


def _factorvae_votes(codes: np.ndarray, factors: np.ndarray, scale: np.ndarray, kept: np.ndarray,
                     n: int, rng: np.random.Generator) -> np.ndarray:
    """n votes (factor k, the kept dimension of least normalised variance among FACTORVAE_GROUP examples sharing
    a value of factor k), as rows (n, 2)."""
    votes = np.empty((n, 2), np.int64)
    for i in range(n):
        k = rng.integers(factors.shape[1])
        value = factors[rng.integers(len(factors)), k]
        rows = np.flatnonzero(factors[:, k] == value)
        group = codes[rng.choice(rows, FACTORVAE_GROUP, replace=len(rows) < FACTORVAE_GROUP)][:, kept]
        votes[i] = k, kept[np.argmin(group.var(0) / scale[kept] ** 2)]
    return votes


def factorvae_score(codes: np.ndarray, factors: np.ndarray, seed: int = 0, votes: int = FACTORVAE_VOTES) -> float:
    """Kim & Mnih (2018), sec. 4: fix one factor, draw FACTORVAE_GROUP examples, divide each code dimension by its
    standard deviation over all data and vote (factor, dimension of least variance); a majority-vote classifier
    dimension -> factor is fitted on `votes` votes from the first half of the data and scored on as many from the
    second. Dimensions with variance below FACTORVAE_MIN_VARIANCE over the data are left out (collapsed)."""
    codes, factors = _check(codes, factors)
    scale = codes.std(0)
    kept = np.flatnonzero(scale ** 2 >= FACTORVAE_MIN_VARIANCE)
    if len(kept) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    train, test = _halves(len(codes), seed)
    fit = _factorvae_votes(codes[train], factors[train], scale, kept, votes, rng)
    score = _factorvae_votes(codes[test], factors[test], scale, kept, votes, rng)
    table = np.zeros((codes.shape[1], factors.shape[1]), np.int64)  # (dimension, factor) vote counts
    np.add.at(table, (fit[:, 1], fit[:, 0]), 1)
    return float((table.argmax(1)[score[:, 1]] == score[:, 0]).mean())


def disentanglement(codes: np.ndarray, factors: np.ndarray, seed: int = 0) -> Disentanglement:
    """Every score of codes (N, D) (e.g. latent means) against factor indices (N, K)."""
    codes, factors = _check(codes, factors)
    return Disentanglement(mig(codes, factors), sap(codes, factors, seed), *dci(codes, factors, seed),
                           factorvae_score(codes, factors, seed), len(codes))
