"""Samplers fitted after training: a density of the aggregate posterior q(z) = E_x q(z|x) to draw latents from
instead of the prior, whose holes (regions the prior covers and q(z) does not) decode to blurry or mixed samples.

- `gmm`: a Gaussian mixture with full covariances, fitted by scikit-learn's EM, its number of components chosen by
  BIC on held-out latents (Ghosh et al. 2020 fit one ex post; Dai & Wipf 2019 sec. 4 compare it);
- `two-stage`: a second small VAE trained on the latents (Dai & Wipf 2019): u ~ N(0, I) -> its decoder -> z.

Both are fitted to one draw z ~ q(z|x) per training example and saved as safetensors + JSON (the mixture as its
tensors, sampled here with torch: no pickle). `vaekit.apps.sampling` fits, saves and reloads them for a run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig, TrainConfig
from .errors import ConfigError, optional_import
from .progress import progress_bar
from .training import Trainer
from .vae import VAE, build_vae

GMM_COMPONENTS = (1, 2, 5, 10, 20, 40)  # the K tried; BIC picks one
GMM_FIT_LIMIT = 20_000  # latents EM sees at most: enough for 40 full covariances of a 20-d latent, and quick
# The second stage's training and width, read when it is fitted. Dai & Wipf 2019 use 1024-wide layers on the
# latents; 512 is ample for latents of tens of dimensions and a quarter of the work.
TWO_STAGE = TrainConfig(epochs=30, batch_size=256, lr=1e-3, progress=False)
TWO_STAGE_HIDDEN = (512, 512)


@dataclass(frozen=True)
class Fit:
    """A fitted sampler with what its fit measured."""

    sampler: nn.Module  # .sample(n, generator) -> (n, latent_dim)
    seconds: float  # wall time of the fit
    details: dict  # what was chosen: the BIC of each K, the second stage's validation -ELBO


class GaussianMixture(nn.Module):
    """A mixture of K full-covariance Gaussians in latent space: weights (K,), loc (K, d), scale_tril (K, d, d)."""

    def __init__(self, weights: torch.Tensor, loc: torch.Tensor, scale_tril: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights)
        self.register_buffer("loc", loc)
        self.register_buffer("scale_tril", scale_tril)

    @classmethod
    def empty(cls, components: int, latent_dim: int) -> GaussianMixture:
        """A mixture of this size whose tensors a saved state dict fills."""
        return cls(torch.ones(components) / components, torch.zeros(components, latent_dim),
                   torch.eye(latent_dim).expand(components, -1, -1).clone())

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=self.weights),
                                                     torch.distributions.MultivariateNormal(self.loc,
                                                                                            scale_tril=self.scale_tril))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of z (n, d), (n,), in nats."""
        return self.distribution().log_prob(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        noise = torch.randn(n, self.loc.shape[1], 1, generator=generator, device=self.loc.device)  # (n, d, 1)
        return self.loc[component] + (self.scale_tril[component] @ noise).squeeze(-1)


class TwoStage(nn.Module):
    """The second stage of Dai & Wipf 2019: a VAE on latents, whose decoded prior draws are first-stage latents."""

    def __init__(self, vae: VAE, config: ModelConfig):
        super().__init__()
        self.vae, self.config = vae, config  # config: what rebuilds vae from saved weights

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.vae.sample(n, generator=generator).detach()


def fit_gmm(z_fit: torch.Tensor, z_heldout: torch.Tensor, components: tuple[int, ...] = GMM_COMPONENTS,
            seed: int = 0) -> Fit:
    """A GaussianMixture fitted to latents z_fit (n, d) for each K in `components` (those with fewer than 2 points
    per component skipped), the one of least BIC on z_heldout kept."""
    mixture = optional_import("sklearn.mixture", "--from gmm", "scikit-learn")
    start = time.perf_counter()
    fit_set = z_fit[torch.randperm(len(z_fit), generator=torch.Generator().manual_seed(seed))[:GMM_FIT_LIMIT]]
    fit_set, heldout = fit_set.double().cpu().numpy(), z_heldout.double().cpu().numpy()
    bics, best = {}, None
    for k in progress_bar([k for k in components if 2 * k <= len(fit_set)] or [1], desc="mixture sizes", unit="fit"):
        model = mixture.GaussianMixture(k, covariance_type="full", reg_covar=1e-5, random_state=seed).fit(fit_set)
        bics[k] = float(model.bic(heldout))
        if best is None or bics[k] < bics[best.n_components]:
            best = model
    fitted = GaussianMixture(*(torch.as_tensor(a, dtype=torch.float32) for a in
                               (best.weights_, best.means_, torch.linalg.cholesky(torch.as_tensor(best.covariances_)))))
    return Fit(fitted, time.perf_counter() - start, {"components": best.n_components, "bic": bics})


def two_stage_config(latent_dim: int, hidden: tuple[int, ...]) -> ModelConfig:
    """The second stage's model: an MLP VAE with a Gaussian of learned scale on latents, as wide as the first stage's
    latent (Dai & Wipf 2019 set the second latent's size to the first's)."""
    return ModelConfig(network="mlp", hidden=hidden, latent_dim=latent_dim, likelihood="gaussian",
                       gaussian_scale="learned", data_shape=(latent_dim,))


def fit_two_stage(z_fit: torch.Tensor, z_heldout: torch.Tensor, train: TrainConfig | None = None, seed: int = 0,
                  hidden: tuple[int, ...] | None = None) -> Fit:
    """A TwoStage sampler: a VAE trained with vaekit's Trainer on latents z_fit (n, d), validated on z_heldout
    (`train` and `hidden` default to TWO_STAGE and TWO_STAGE_HIDDEN)."""
    if len(z_fit) < 2:
        raise ConfigError("the two-stage sampler needs at least 2 training latents")
    train = train or TWO_STAGE
    start = time.perf_counter()
    torch.manual_seed(seed)
    config = two_stage_config(z_fit.shape[1], hidden or TWO_STAGE_HIDDEN)
    vae = build_vae(config)
    with progress_bar(total=train.epochs, desc="two-stage VAE", unit="epoch") as bar:
        history = Trainer(vae, dataclasses.replace(train, seed=seed, device="cpu"),
                          on_epoch=lambda row: bar.update()).fit(z_fit.float().cpu(), z_heldout.float().cpu())
    details = {"epochs": len(history), "val_neg_elbo": history[-1].get("val_neg_elbo") if history else None}
    return Fit(TwoStage(vae.eval(), config), time.perf_counter() - start, details)
