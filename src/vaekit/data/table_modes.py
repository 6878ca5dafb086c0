"""The modes of one numeric column: a variational Dirichlet-process Gaussian mixture in one dimension.

The same model, initialization and updates as scikit-learn's
`BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_process")` with its default
priors (Bishop 2006, sec. 10.2; Blei & Jordan 2006 for the stick-breaking weights), which CTGAN's
mode-specific normalization uses (Xu et al. 2019, sec. 4.2), written for a single feature: sklearn's
general code spends most of its time on per-iteration checks and per-component Cholesky factors of
1x1 matrices, several times the arithmetic of a column. `tests/test_tabular.py` checks the fit
against sklearn's.
"""

from __future__ import annotations

import math

import numpy as np

REG_COVAR = 1e-6  # sklearn's default, added to every variance
EPS = 10 * np.finfo(np.float64).eps  # added to each component's count, as sklearn does


def fit_dp_mixture(values: np.ndarray, n_components: int, concentration: float = 0.001, max_iter: int = 100,
                   tol: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, means, variances), each (n_components,), of values (N,) float64.

    concentration: the Dirichlet-process prior's gamma (small: few modes). Iterates until the lower
    bound (nats, summed over values) changes by less than tol, or max_iter updates; k-means starts it.
    """
    # Long because m_step, e_step and lower_bound share x and the priors: one algorithm, read in one place.
    from ..errors import optional_import

    optional_import("sklearn", "vaekit tabular's numeric modes", "scikit-learn")
    from scipy.special import betaln, digamma, gammaln
    from sklearn.cluster import KMeans

    x = np.asarray(values, dtype=np.float64)
    x2 = x * x
    prior_mean, prior_var = x.mean(), x.var(ddof=1)  # mean precision and degrees of freedom priors are 1
    labels = KMeans(n_clusters=n_components, n_init=1, random_state=np.random.RandomState(seed)).fit(
        x[:, None]).labels_
    resp = np.zeros((len(x), n_components))  # (N, K) responsibilities
    resp[np.arange(len(x)), labels] = 1.0

    def m_step(resp):  # the posterior parameters given responsibilities
        nk = resp.sum(0) + EPS
        xk = x @ resp / nk
        sk = x2 @ resp / nk - xk ** 2 + REG_COVAR
        a, b = 1.0 + nk, concentration + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0))  # stick-breaking Betas
        kappa = 1.0 + nk  # mean precision
        means = (prior_mean + nk * xk) / kappa
        dof = 1.0 + nk
        variances = (prior_var + nk * (sk + (xk - prior_mean) ** 2 / kappa)) / dof
        return a, b, kappa, means, dof, variances

    def e_step(params):  # responsibilities and their logs, (N, K) each
        a, b, kappa, means, dof, variances = params
        digamma_sum = digamma(a + b)
        log_weights = digamma(a) - digamma_sum + np.hstack((0, np.cumsum(digamma(b) - digamma_sum)[:-1]))
        const = (log_weights - 0.5 * (math.log(2 * math.pi) + np.log(variances) + np.log(dof))
                 + 0.5 * (math.log(2.0) + digamma(0.5 * dof) - 1.0 / kappa))  # (K,)
        log_resp = np.square(x[:, None] - means)
        log_resp *= -0.5 / variances
        log_resp += const
        log_resp -= log_resp.max(1, keepdims=True)
        resp = np.exp(log_resp)
        total = resp.sum(1, keepdims=True)
        log_resp -= np.log(total)
        return resp / total, log_resp

    def lower_bound(resp, log_resp, params):  # up to constants, as sklearn's _compute_lower_bound
        a, b, kappa, _, dof, variances = params
        log_det = -0.5 * np.log(variances) - 0.5 * np.log(dof)
        log_wishart = -np.sum(dof * log_det + dof * 0.5 * math.log(2.0) + gammaln(0.5 * dof))
        return (-np.vdot(resp, log_resp) - log_wishart + np.sum(betaln(a, b))
                - 0.5 * np.sum(np.log(kappa)))

    params, bound = m_step(resp), -np.inf
    for _ in range(max_iter):
        resp, log_resp = e_step(params)
        params = m_step(resp)
        previous, bound = bound, lower_bound(resp, log_resp, params)
        if abs(bound - previous) < tol:
            break
    a, b, _, means, _, variances = params
    weights = a / (a + b) * np.hstack((1, np.cumprod(b / (a + b))[:-1]))
    return weights / weights.sum(), means, variances
