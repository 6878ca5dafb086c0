"""Recommenders' configs, networks, EASE and the ranking metrics of Liang et al. (2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
from dataclasses import dataclass

from ..config import TrainConfig, check_values, option
from ..errors import ConfigError
from ..progress import progress_bar

if TYPE_CHECKING:
    import torch

CONFIG_FILE, MODEL_FILE = "config.json", "model.safetensors"
DATA_FILE, IDS_FILE, METRICS_FILE = "interactions.safetensors", "ids.json", "metrics.jsonl"
KIND, FORMAT_VERSION = "recommend", 1  # config.json's kind and format (vaekit.saved)
MODELS = ("vae", "recvae", "dae", "ease", "popularity")
EASE_GRID = (5.0, 15.0, 50.0, 150.0, 500.0, 1500.0)  # lambdas tried on validation users when ease_lambda is 0
DAE_LOG_VAR = -30.0  # Mult-DAE's posterior log-variance: std 3e-7, a deterministic code in float32
SHORT_HEAD = 0.8  # the short head: the most popular items that together hold this share of training interactions
EASE_MAX_ITEMS = 30000  # a dense items x items EASE matrix beyond this needs > 3.6 GB


@dataclass(frozen=True)
class InteractionConfig:
    sep: str = option("auto", "field separator: auto sniffs , tab ; | or ::")
    user_col: str = option("auto", "user column name or 0-based index; auto guesses (userId, user_id, ...)")
    item_col: str = option("auto", "item column name or index; auto guesses (movieId, artistID, item_id, ...)")
    rating_col: str = option("auto", "rating/play-count column; auto guesses (rating, weight, ...), none ignores it")
    min_rating: float = option(0.0, "keep rows with rating >= this (the paper: 4 on MovieLens); 0 keeps all")
    weighting: str = option("binary", "interaction value: binary (implicit 1), count (the rating or play count) "
                            "or log (log(1 + count), for listening data)")
    min_user_count: int = option(5, "drop users with fewer interactions (the paper: 5)")
    min_item_count: int = option(0, "drop items with fewer users first (the paper: 0 on ML-20M, 200 on MSD)")
    heldout_fraction: float = option(0.1, "share of users held out for each of validation and test")
    heldout_prop: float = option(0.2, "share of a held-out user's interactions to predict (the paper: 0.2)")

    def validate(self) -> None:
        check_values(self)
        if not 0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"--heldout-fraction must be in (0, 0.5), got {self.heldout_fraction}")
        if not 0 < self.heldout_prop < 1:
            raise ConfigError(f"--heldout-prop must be in (0, 1), got {self.heldout_prop}")
        if self.min_user_count < 1 or self.min_item_count < 0:
            raise ConfigError("--min-user-count must be >= 1 and --min-item-count >= 0")


# The recommender's training defaults, where they differ from TrainConfig's: 100 passes over the training users
# (the paper: 200) of 500 users per step (the paper's), stopped after 10 epochs without a better validation
# NDCG@100 (the best epoch is kept either way; a fixed count ended Mult-VAE's Last.fm runs still improving, issue 47).
# Weight decay stays 0 (the authors' code: 0 for Mult-VAE, 0.02/500 for Mult-DAE); --precision bf16 trains the
# VAE/DAE in mixed precision, scores and metrics stay fp32.
RECOMMEND_TRAIN = TrainConfig(epochs=100, batch_size=500, early_stopping=10)


@dataclass(frozen=True)
class RecommendConfig:
    model: str = option("vae", "vae (Mult-VAE), recvae (RecVAE), dae (Mult-DAE), ease (closed-form linear) or "
                        "popularity")
    hidden: tuple[int, ...] = option((600,), "encoder hidden sizes (decoder mirrors them); the paper: 600")
    latent_dim: int = option(200, "size of z; the paper: 200")
    dropout: float = option(0.5, "dropout on the L2-normalised input (the paper: 0.5)")
    beta_cap: float = option(1.0, "Mult-VAE's KL weight is annealed linearly from 0 up to this cap (the paper: 0.2; "
                             "1 scored best on MovieLens-small's and Last.fm's validation users, 0.2 worst)")
    anneal_steps: int = option(0, "steps for beta to reach 1 at the paper's slope (200000 on ML-20M); "
                               "0 reaches the cap at 80%% of training, where the paper's schedule reached it")
    gamma: float = option(0.01, "RecVAE's KL weight per interaction: a user with n interactions weighs their KL "
                          "gamma * n (Shenbin et al. 2020: 0.005; 0.01 scored best on MovieLens-small's validation "
                          "users, 0.329 over 3 splits against 0.327 for 0.02)")
    encoder_passes: int = option(3, "RecVAE's passes per epoch updating only the encoder (the paper: 3)")
    decoder_passes: int = option(1, "RecVAE's passes per epoch updating only the decoder, after the encoder's (the "
                                 "paper: 1)")
    prior_weights: tuple[float, ...] = option((3 / 20, 3 / 4, 1 / 10), "RecVAE's composite prior: the weights of "
                                              "N(0, 1), the previous epoch's posterior and the wide N(0, e^10), >= 0 "
                                              "and summing to 1 (the paper's)")
    recvae_layers: int = option(5, "RecVAE's encoder: densely connected layers of width --hidden, each "
                                "swish + LayerNorm (the paper: 5 of 600)")
    ease_lambda: float = option(0.0, "EASE's L2 weight; 0 picks the best of 5,15,50,150,500,1500 on validation users")
    coefficient: bool = option(True, "include the multinomial coefficient so the reported ELBO is in true nats")
    train: TrainConfig = option(RECOMMEND_TRAIN, "the Mult-VAE/DAE's training (epochs, batch_size, lr, seed, "
                                "device, ...; beta and kl_warmup follow beta_cap and anneal_steps)", cli=False)

    def validate(self) -> None:
        from ..priors import check_composite_weights  # imports torch: not at this module's import (fast --help)

        check_values(self)
        if self.model not in MODELS:
            raise ConfigError(f"unknown --model '{self.model}': use one of {', '.join(MODELS)}")
        if self.latent_dim < 1 or min(self.hidden, default=1) < 1:
            raise ConfigError("--latent-dim and --hidden sizes must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.beta_cap < 0 or self.anneal_steps < 0 or self.ease_lambda < 0 or self.gamma < 0:
            raise ConfigError("--beta-cap, --anneal-steps, --ease-lambda and --gamma must be >= 0")
        if min(self.encoder_passes, self.decoder_passes, self.recvae_layers) < 1:
            raise ConfigError("--encoder-passes, --decoder-passes and --recvae-layers must be >= 1")
        check_composite_weights(self.prior_weights, "--prior-weights")
        if self.model == "recvae" and len(self.hidden) != 1:
            raise ConfigError(f"RecVAE's dense layers share one width: give one --hidden size, got {self.hidden}")
        self.train.validate()


# -- models ---------------------------------------------------------------------------------------
def _torch():
    import torch
    from torch import nn

    return torch, nn


def build_model(n_items: int, config: RecommendConfig):
    """The scoring module for config.model: (users, items) interactions -> (users, items) scores."""
    # Long because its four small modules close over config and n_items and need torch imported here.
    torch, nn = _torch()
    from ..networks import MLP
    from ..likelihoods.multinomial import Multinomial
    from ..posteriors import DiagonalGaussian
    from ..priors import CompositePrior, StandardNormal
    from ..vae import VAE

    class MultEncoder(nn.Module):
        """x (batch, items) -> L2-normalise rows -> dropout -> MLP (tanh) -> (batch, 2 * latent):
        the loc and log-variance of q(z|x) (Liang et al. 2018, sec. 2.2; dropout only in training).
        deterministic=True is Mult-DAE's encoder: loc = tanh(MLP(x)) and a fixed log-variance."""

        def __init__(self, deterministic: bool):
            super().__init__()
            self.deterministic = deterministic
            out = config.latent_dim * (1 if deterministic else 2)
            self.dropout = nn.Dropout(config.dropout)
            self.mlp = MLP((n_items,), config.hidden, (out,), "tanh")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.mlp(self.dropout(nn.functional.normalize(x, dim=-1)))
            if not self.deterministic:
                return h
            return torch.cat([torch.tanh(h), torch.full_like(h, DAE_LOG_VAR)], -1)

    class DenseEncoder(nn.Module):
        """RecVAE's encoder (Shenbin et al. 2020, sec. 3.1 and the authors' code): x -> L2-normalise -> dropout ->
        h_1 = LN(swish(W_1 x)), h_l = LN(swish(W_l h_(l-1) + h_1 + ... + h_(l-1))) -> Linear to (batch, 2 * latent)."""

        def __init__(self):
            super().__init__()
            width = config.hidden[0]
            self.dropout = nn.Dropout(config.dropout)
            self.layers = nn.ModuleList(nn.Linear(n_items if i == 0 else width, width)
                                        for i in range(config.recvae_layers))
            self.norms = nn.ModuleList(nn.LayerNorm(width, eps=0.1) for _ in range(config.recvae_layers))
            self.out = nn.Linear(width, 2 * config.latent_dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.dropout(nn.functional.normalize(x, dim=-1))
            total = 0.0  # h_1 + ... + h_(l-1)
            for layer, norm in zip(self.layers, self.norms):
                h = norm(nn.functional.silu(layer(h) + total))
                total = total + h
            return self.out(h)

    class MultScorer(nn.Module):
        """Scores of a Mult-VAE/DAE: the decoder's logits at the posterior mean (the paper's test rule)."""

        def __init__(self, vae: VAE):
            super().__init__()
            self.vae = vae

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.vae.decoder(self.vae.encode(x).mean)

    class Popularity(nn.Module):
        """Score = number of training users who interacted with the item, for every user."""

        def __init__(self):
            super().__init__()
            self.register_buffer("counts", torch.zeros(n_items))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.counts.expand(len(x), -1)

    class EASE(nn.Module):
        """Scores x @ B with B the closed-form item-item weights of Steck (2019), diag(B) = 0."""

        def __init__(self):
            super().__init__()
            self.register_buffer("weights", torch.zeros(n_items, n_items))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.weights

    if config.model == "popularity":
        return Popularity()
    if config.model == "ease":
        return EASE()
    likelihood = Multinomial((n_items,), config.coefficient)
    if config.model == "recvae":
        encoder, posterior = DenseEncoder(), DiagonalGaussian()
        prior = CompositePrior(encoder, posterior, config.latent_dim, config.prior_weights)
        return MultScorer(VAE(encoder, nn.Linear(config.latent_dim, n_items), likelihood, prior, posterior=posterior))
    decoder = MLP((config.latent_dim,), tuple(reversed(config.hidden)), (n_items,), "tanh")
    return MultScorer(VAE(MultEncoder(config.model == "dae"), decoder, likelihood, StandardNormal(config.latent_dim)))


def device_of(module):
    """The device a module's tensors are on."""
    return next(iter(module.state_dict().values())).device


def ease_weights(gram, lam: float):
    """B = I - P diag(1/diag(P)), P = (X^T X + lam I)^-1 (Steck 2019, eq. 8); gram (items, items)."""
    torch, _ = _torch()
    a = gram.clone()
    a.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(a))
    b = -p / p.diagonal()
    b.diagonal().zero_()
    return b


# -- metrics --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankingMetrics:
    """Per-user metrics, each (users,), over users with at least one held-out item (Liang et al.
    2018, sec. 4.3): Recall@k = hits in top k / min(k, |I_u|); NDCG@k = DCG@k / ideal DCG@k with
    gains 1/log2(rank + 1). Fold-in items are never ranked. top_20 (users, 20): the items recommended, best first."""

    recall_20: "torch.Tensor"
    recall_50: "torch.Tensor"
    ndcg_100: "torch.Tensor"
    top_20: "torch.Tensor"

    def summary(self) -> dict:
        """Means and standard errors over users, and the number of users."""
        n = len(self.ndcg_100)
        out = {"users": n}
        for name, values in (("recall@20", self.recall_20), ("recall@50", self.recall_50),
                             ("ndcg@100", self.ndcg_100)):
            out[name] = float(values.mean())
            out[f"{name}_se"] = float(values.std() / math.sqrt(n)) if n > 1 else 0.0
        return out


def ranking_metrics(scorer, foldin, heldout, batch_size: int = 1000, progress: bool = False) -> RankingMetrics:
    """Score fold-in rows (scipy CSR, users x items) and compare the top items with `heldout`; `progress` shows a bar
    with an ETA on a terminal."""
    torch, _ = _torch()
    device = device_of(scorer)
    keep = torch.from_numpy(heldout.getnnz(axis=1) > 0)
    parts, tops = [], []
    scorer.eval()
    with torch.inference_mode():
        for start in progress_bar(range(0, foldin.shape[0], batch_size), desc="ranking held-out users",
                                  enabled=progress, unit="batch"):
            x = torch.from_numpy(foldin[start:start + batch_size].toarray()).to(device)
            truth = torch.from_numpy(heldout[start:start + batch_size].toarray() > 0).to(device)
            scores = scorer(x).float().masked_fill(x > 0, -math.inf)
            k = min(100, scores.shape[1])
            top = scores.topk(k, dim=1).indices  # (batch, k)
            hits = truth.gather(1, top).float()
            n_true = truth.sum(1)
            recall = [hits[:, :c].sum(1) / n_true.clamp(max=c, min=1) for c in (20, 50)]
            gains = 1 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float32))
            ideal = torch.cumsum(gains, 0)[(n_true.clamp(max=k, min=1) - 1)]
            parts.append(torch.stack([*recall, (hits * gains).sum(1) / ideal], 1).cpu())
            tops.append(top[:, :20].cpu())
    values = torch.cat(parts)[keep]
    return RankingMetrics(values[:, 0], values[:, 1], values[:, 2], torch.cat(tops)[keep])


def catalogue_reach(top, popularity) -> dict:
    """What the recommendations show: coverage@20, the share of the catalogue in some user's top 20, and
    long_tail@20, the share of all top-20 recommendations outside the short head (the most popular items holding
    SHORT_HEAD of the training interactions; Abdollahpouri et al. 2017). top (users, 20) item indices;
    popularity (items,) training interaction counts."""
    torch, _ = _torch()
    popularity = torch.as_tensor(popularity, dtype=torch.float64)
    order = popularity.argsort(descending=True)
    share = popularity[order].cumsum(0) / popularity.sum().clamp(min=1)
    head = torch.zeros(len(popularity), dtype=torch.bool)
    head[order[:int(torch.searchsorted(share, SHORT_HEAD)) + 1]] = True
    return {"coverage@20": top.unique().numel() / len(popularity),
            "long_tail@20": float((~head[top]).double().mean()) if top.numel() else 0.0}


# -- a fitted recommender -------------------------------------------------------------------------
