"""Terms an objective may add to the ELBO, as functions of the posterior a batch gives.

total_correlation: TC(q(z)) = KL(q(z) || prod_d q(z_d)) of the aggregate posterior q(z) = E_x[q(z|x)], the term
beta-TCVAE weights (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", eq. 2 and sec. 4.1), estimated
on a minibatch by minibatch stratified sampling (their appendix C.2).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from .errors import ConfigError
from .posteriors import as_diagonal_normal


def stratified_log_weights(batch: int, dataset_size: int, device=None) -> torch.Tensor:
    """log w (batch, batch) of minibatch stratified sampling (Chen et al. 2018, app. C.2): row i estimates
    q(z_i) = E_x[q(z_i|x)] as sum_j w_ij q(z_i|x_j), with w_ii = 1/N, w_i,i+1 = (N - M) / (N M) and 1/M for the
    other M - 1 rows, where M = batch - 1 and N = dataset_size; each row sums to 1."""
    n, m = float(dataset_size), batch - 1
    w = torch.full((batch, batch), 1 / m, dtype=torch.float64)
    rows = torch.arange(batch)
    w[rows, rows] = 1 / n
    w[rows, (rows + 1) % batch] = (n - m) / (n * m)
    return w.log().to(device=device, dtype=torch.float32)


def total_correlation(qz: Distribution, z: torch.Tensor, dataset_size: int) -> torch.Tensor:
    """log q(z_i) - sum_d log q(z_id) per example (batch,) in nats, whose mean over the batch estimates the total
    correlation of the aggregate posterior; q(z_i) and each marginal q(z_id) are estimated from the batch's own
    posteriors by minibatch stratified sampling (`stratified_log_weights`). z: (batch, latent), one draw of each
    row's q(z|x). Needs a diagonal Gaussian q(z|x) (its marginals are per-dimension Normals) and batch >= 2."""
    normal = as_diagonal_normal(qz)
    if normal is None:
        raise ConfigError("the total-correlation term needs a diagonal Gaussian posterior, whose marginals it "
                          "evaluates per dimension: drop --tc-weight or use the default posterior")
    batch = z.shape[0]
    if batch < 2:
        raise ConfigError("the total-correlation term compares the rows of a batch: use --batch-size 2 or more")
    if dataset_size < batch:
        raise ConfigError(f"dataset_size {dataset_size} is below the batch of {batch}: pass the training set's size")
    log_qz_dims = normal.log_prob(z[:, None, :])  # (batch i, batch j, latent): log q(z_id | x_j)
    log_w = stratified_log_weights(batch, dataset_size, z.device)[:, :, None]  # (batch, batch, 1)
    log_qz = torch.logsumexp(log_w[..., 0] + log_qz_dims.sum(-1), dim=1)  # (batch,)
    log_marginals = torch.logsumexp(log_w + log_qz_dims, dim=1).sum(-1)  # (batch,)
    return log_qz - log_marginals
