"""Terms an objective may add to the ELBO, as functions of the posterior a batch gives.

total_correlation: TC(q(z)) = KL(q(z) || prod_d q(z_d)) of the aggregate posterior q(z) = E_x[q(z|x)], the term
beta-TCVAE weights (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", eq. 2 and sec. 4.1), estimated
on a minibatch by minibatch stratified sampling (their appendix C.2), or by a discriminator trained beside the
model to tell q(z) from the product of its marginals (FactorVAE, Kim & Mnih 2018, "Disentangling by Factorising").
"""

from __future__ import annotations

import torch
from torch import nn
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


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """z (batch, latent) with each dimension shuffled across the batch independently (Kim & Mnih 2018, alg. 1):
    draws of prod_d q(z_d), the product of the batch's marginals, from draws of q(z)."""
    rows = torch.rand(z.shape, device=z.device).argsort(dim=0)  # (batch, latent): a permutation per column
    return z.gather(0, rows)


class TCDiscriminator(nn.Module):
    """D(z) of FactorVAE (Kim & Mnih 2018, sec. 3): an MLP whose logit log D(z)/(1 - D(z)) tells draws of q(z)
    (label 1) from draws of prod_d q(z_d) (`permute_dims`, label 0); at the optimum the logit is
    log q(z) - sum_d log q(z_d), so its mean over q(z) estimates the total correlation (eq. 3).
    The paper's has 6 hidden layers of 1000 units; 3 of 256 (leaky ReLU 0.2) cost a small share of a step at
    vaekit's latent sizes (docs/disentanglement.md)."""

    LR, BETAS = 1e-4, (0.5, 0.9)  # the paper's Adam for D (its appendix, dSprites)

    def __init__(self, latent_dim: int, hidden: tuple[int, ...] = (256, 256, 256)):
        super().__init__()
        widths = (latent_dim, *hidden)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, latent) -> (batch,) logits, each an estimate of log q(z) - sum_d log q(z_d) in nats."""
        return self.net(z).squeeze(-1)

    def estimate(self, z: torch.Tensor) -> torch.Tensor:
        """forward(z) for the model's loss, with the parameters as constants: the model's backward reaches z and
        leaves the discriminator's .grad alone (its own step, `loss`, is what trains it)."""
        constants = {name: p.detach() for name, p in self.named_parameters()}
        return torch.func.functional_call(self, constants, (z,))

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """The discriminator's cross-entropy (scalar) on the batch's draws z (batch, latent), detached from the
        model: z as class 1, its dimensions permuted as class 0."""
        z = z.detach()
        logits = self(torch.cat([z, permute_dims(z)]))  # (2 batch,)
        labels = torch.cat([torch.ones_like(logits[:len(z)]), torch.zeros_like(logits[len(z):])])  # made on its device
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)

    def optimizer(self, lr: float = LR) -> torch.optim.Optimizer:
        """Its own Adam, with the paper's betas and (by default) rate."""
        return torch.optim.Adam(self.parameters(), lr=lr, betas=self.BETAS)
