"""Disentanglement metrics of a code (latent means, (N, D)) against known discrete factors ((N, K) indices):
MIG, SAP, DCI and the FactorVAE score, each as its paper defines it, with the estimator details named where
a paper leaves them open; and MIG as Chen et al. estimate it, from the whole diagonal Gaussian posterior
(means and standard deviations). numpy only, except DCI's random forests (scikit-learn).

The codes and factors are split once into halves with `seed`: the classifiers of SAP, DCI and the FactorVAE
score are fitted on the first half and scored on the second; both MIGs read all rows.
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
POSTERIOR_SAMPLES = 1  # draws of z from each example's q(z|x) for the entropies of mig_posterior: 6,000 examples give
# 6,000 draws, against Chen et al.'s 10,000 for dSprites' 737,280 images
POSTERIOR_MAX_DRAWS = 10_000  # draws each entropy reads at most (Chen et al.'s), chosen at random: the work is draws x
# rows x dimensions per entropy, so a large test split costs N x 10,000 instead of N^2
MIXTURE_CHUNK = 2 ** 21  # float64 log-densities (draws x components x dimensions) held at once, 16 MB each
DCI_TREES = 20  # trees of each factor's random forest (Eastwood & Williams 2018 used random forests or lasso);
# each split weighs every code dimension (max_features=None): sampling a few would spread importance onto
# dimensions a perfect code does not use (DCI disentanglement 0.59 for the true factors, measured)


@dataclass(frozen=True)
class Disentanglement:
    """Scores in [0, 1], higher is better."""

    mig: float  # mutual information gap (Chen et al. 2018, eq. 7) of the latent means cut into bins, mean over factors
    mig_posterior: float | None  # the same gap with Chen et al.'s estimator over the whole posterior q(z|x) (sec.
    # 4.1); None when q(z|x) is not a diagonal Gaussian
    mig_posterior_by_factor: list[float | None] | None  # its gap per factor, in the factors' order (None: one value)
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
    information = np.array([[mutual_information(z, v) for v in factors.T] for z in binned.T])  # (D, K)
    return float(np.nanmean(information_gaps(information, factors)))


def _check_scale(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    scale = np.asarray(scale, np.float64)
    if scale.shape != loc.shape:
        raise DataError(f"the posterior's scale {scale.shape} must have the shape of its means {loc.shape}")
    if not (scale > 0).all():
        raise DataError("the posterior's scale must be positive standard deviations (exp(0.5 * log_var))")
    return scale


def mixture_entropy(z: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Monte Carlo entropy in nats, per dimension (D,), of the equal-weight mixture of the n Gaussians N(loc_i,
    scale_i^2) (loc, scale (n, D)): -mean_s log (1/n) sum_i N(z_s; loc_i, scale_i^2) at draws z (S, D) from it."""
    n, dims = loc.shape
    chunk = max(1, MIXTURE_CHUNK // (n * dims))
    precision = 1 / scale
    standardized, log_scale, total = loc * precision, np.log(scale), np.zeros(dims)
    for start in range(0, len(z), chunk):
        log_q = z[start:start + chunk, None] * precision - standardized  # (chunk, n, D), in place from here on
        np.square(log_q, out=log_q)
        log_q *= -0.5
        log_q -= log_scale
        top = log_q.max(1)
        log_q -= top[:, None]
        np.exp(log_q, out=log_q)
        total += (np.log(log_q.sum(1)) + top).sum(0)
    return np.log(n) + 0.5 * np.log(2 * np.pi) - total / len(z)


def posterior_information(loc: np.ndarray, scale: np.ndarray, factors: np.ndarray, samples: int = POSTERIOR_SAMPLES,
                          seed: int = 0, max_draws: int = POSTERIOR_MAX_DRAWS) -> np.ndarray:
    """I(z_j; v_k) in nats, (D, K), under the empirical joint q(z_j, v_k) = (1/N) sum_n q(z_j|x_n) [v_k(x_n) = v_k] of
    the diagonal Gaussian posteriors N(loc, scale^2) ((N, D) each) and factor indices (N, K) (Chen et al. 2018, sec.
    4.1): H(z_j) - sum_v p(v_k = v) H(z_j | v_k = v), each entropy that of the mixture of the posteriors of all rows,
    or of the rows with v_k = v, estimated by `mixture_entropy` at `samples` draws from every row's q(z|x), at most
    `max_draws` of them chosen at random (drawn with `seed`; every entropy prefers the same draws, so their Monte Carlo
    errors largely cancel in the difference)."""
    loc, factors = _check(loc, factors)
    scale = _check_scale(loc, scale)
    rng = np.random.default_rng(seed)
    z = loc + scale * rng.standard_normal((samples, *loc.shape))  # (samples, N, D)
    priority = rng.random((samples, len(loc)))  # each entropy reads the max_draws draws of its rows ranked first

    def entropy_of(rows: np.ndarray) -> np.ndarray:
        draws, ranks = z[:, rows].reshape(-1, loc.shape[1]), priority[:, rows].reshape(-1)
        if len(draws) > max_draws:
            draws = draws[np.argpartition(ranks, max_draws - 1)[:max_draws]]
        return mixture_entropy(draws, loc[rows], scale[rows])

    marginal = entropy_of(np.arange(len(loc)))
    information = np.empty((loc.shape[1], factors.shape[1]))
    for k, v in enumerate(factors.T):
        conditional = np.zeros(loc.shape[1])
        for value in np.unique(v):
            rows = np.flatnonzero(v == value)
            conditional += len(rows) / len(v) * entropy_of(rows)
        information[:, k] = marginal - conditional
    return information


def information_gaps(information: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Per factor v_k (K,), the gap between the two largest I(z_j; v_k) of information (D, K) in nats, over H(v_k) (Chen
    et al. 2018, eq. 7); NaN for a factor with one value (H = 0)."""
    top = np.sort(information, axis=0)[::-1]
    h = np.array([entropy(v) for v in np.asarray(factors).T])
    return np.divide(top[0] - top[1], h, out=np.full(len(h), np.nan), where=h > 0)


def posterior_gaps(loc: np.ndarray, scale: np.ndarray, factors: np.ndarray, samples: int = POSTERIOR_SAMPLES,
                   seed: int = 0, max_draws: int = POSTERIOR_MAX_DRAWS) -> np.ndarray:
    """Per factor (K,), the `information_gaps` of `posterior_information`, each I clamped at 0 (a Monte Carlo
    estimate of an MI near 0 can dip below it), as Chen et al.'s released code does."""
    if np.shape(loc)[-1] < 2:
        raise DataError("MIG compares the two most informative code dimensions: the code needs at least 2")
    information = posterior_information(loc, scale, factors, samples, seed, max_draws)
    return information_gaps(np.maximum(information, 0), factors)


def mig_posterior(loc: np.ndarray, scale: np.ndarray, factors: np.ndarray, samples: int = POSTERIOR_SAMPLES,
                  seed: int = 0, max_draws: int = POSTERIOR_MAX_DRAWS) -> float:
    """MIG as Chen et al. (2018, eq. 7 and sec. 4.1) estimate it: mean over factors v_k of the gap between the two
    largest I(z_j; v_k) of `posterior_information` over H(v_k), the entropy of v_k's empirical distribution. It
    reads the posterior's spread as well as its means, and has no bins, so a perfect code scores 1 on every factor.
    6,000 examples x 10 dimensions: 8-11 s on one core at nice 19 beside two training runs (2 cores)."""
    return float(np.nanmean(posterior_gaps(loc, scale, factors, samples, seed, max_draws)))


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


def disentanglement(codes: np.ndarray, factors: np.ndarray, seed: int = 0,
                    scale: np.ndarray | None = None) -> Disentanglement:
    """Every score of codes (N, D) (e.g. latent means) against factor indices (N, K); with `scale` (N, D), the
    standard deviations of a diagonal Gaussian q(z|x) whose means are `codes`, also `mig_posterior` and its gaps per
    factor."""
    codes, factors = _check(codes, factors)
    gaps = None if scale is None else posterior_gaps(codes, scale, factors, seed=seed)
    posterior = None if gaps is None else float(np.nanmean(gaps))
    by_factor = None if gaps is None else [None if np.isnan(gap) else float(gap) for gap in gaps]
    return Disentanglement(mig(codes, factors), posterior, by_factor, sap(codes, factors, seed),
                           *dci(codes, factors, seed), factorvae_score(codes, factors, seed), len(codes))
