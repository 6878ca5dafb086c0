"""Recommendation from user-item interactions: Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman &
Jebara 2018, "Variational Autoencoders for Collaborative Filtering"), with item popularity and
EASE (Steck 2019) as baselines, evaluated by the paper's strong-generalization protocol.

Mult-VAE is the core `VAE` composed of a `MultEncoder` (L2-normalise, input dropout, MLP), an MLP
decoder emitting one logit per item, the `Multinomial` likelihood and N(0, I); its KL weight is
annealed linearly to a cap by the core Trainer. Mult-DAE is the same composition with a
deterministic encoder and beta = 0. Every model scores items with `model(x) -> (users, items)`.

A model directory holds config.json, model.safetensors, interactions.safetensors (the CSR
matrix of all kept users, their train/val/test role and the held-out mask) and ids.json (the
user's own user and item ids); metrics.jsonl and eval.json when trained/evaluated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..config import add_arguments, from_args, from_dict, option, to_dict
from ..errors import CheckpointError, ConfigError, DataError

CONFIG_FILE, MODEL_FILE = "config.json", "model.safetensors"
DATA_FILE, IDS_FILE, METRICS_FILE = "interactions.safetensors", "ids.json", "metrics.jsonl"
FORMAT_VERSION = 1
MODELS = ("vae", "dae", "ease", "popularity")
EASE_GRID = (50.0, 150.0, 500.0, 1500.0)  # lambdas tried on validation users when ease_lambda is 0
DAE_LOG_VAR = -30.0  # Mult-DAE's posterior log-variance: std 3e-7, a deterministic code in float32
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
        if not 0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"--heldout-fraction must be in (0, 0.5), got {self.heldout_fraction}")
        if not 0 < self.heldout_prop < 1:
            raise ConfigError(f"--heldout-prop must be in (0, 1), got {self.heldout_prop}")
        if self.min_user_count < 1 or self.min_item_count < 0:
            raise ConfigError("--min-user-count must be >= 1 and --min-item-count >= 0")


@dataclass(frozen=True)
class RecommendConfig:
    model: str = option("vae", "vae (Mult-VAE), dae (Mult-DAE), ease (closed-form linear) or popularity")
    hidden: tuple[int, ...] = option((600,), "encoder hidden sizes (decoder mirrors them); the paper: 600")
    latent_dim: int = option(200, "size of z; the paper: 200")
    dropout: float = option(0.5, "dropout on the L2-normalised input (the paper: 0.5)")
    beta_cap: float = option(0.2, "Mult-VAE's KL weight is annealed linearly from 0 up to this cap (the paper: 0.2)")
    anneal_steps: int = option(0, "steps for beta to reach 1 at the paper's slope (200000 on ML-20M); "
                               "0 reaches the cap at 80%% of training, where the paper's schedule reached it")
    epochs: int = option(100, "passes over the training users (the paper: 200)")
    batch_size: int = option(500, "users per step (the paper: 500)")
    lr: float = option(1e-3, "Adam learning rate")
    weight_decay: float = option(0.0, "L2 penalty in Adam (the authors' code: 0 for Mult-VAE, 0.02/500 for Mult-DAE)")
    ease_lambda: float = option(0.0, "EASE's L2 weight; 0 picks the best of 50,150,500,1500 on validation users")
    coefficient: bool = option(True, "include the multinomial coefficient so the reported ELBO is in true nats")
    seed: int = option(0, "seed of the user split, initialization and shuffling")
    device: str = option("auto", "cpu, cuda or auto")

    def validate(self) -> None:

        if self.model not in MODELS:
            raise ConfigError(f"unknown --model '{self.model}': use one of {', '.join(MODELS)}")
        if self.latent_dim < 1 or self.epochs < 1 or self.batch_size < 1 or min(self.hidden, default=1) < 1:
            raise ConfigError("--latent-dim, --epochs, --batch-size and --hidden sizes must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.beta_cap < 0 or self.anneal_steps < 0 or self.ease_lambda < 0:
            raise ConfigError("--beta-cap, --anneal-steps and --ease-lambda must be >= 0")


# -- models ---------------------------------------------------------------------------------------
def _torch():
    import torch
    from torch import nn

    return torch, nn


def build_model(n_items: int, config: RecommendConfig):
    """The scoring module for config.model: (users, items) interactions -> (users, items) scores."""
    torch, nn = _torch()
    from ..networks import MLP
    from ..likelihoods.multinomial import Multinomial
    from ..priors import StandardNormal
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
    deterministic = config.model == "dae"
    decoder = MLP((config.latent_dim,), tuple(reversed(config.hidden)), (n_items,), "tanh")
    vae = VAE(MultEncoder(deterministic), decoder, Multinomial((n_items,), config.coefficient),
              StandardNormal(config.latent_dim))
    return MultScorer(vae)


def _device(module):
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
    gains 1/log2(rank + 1). Fold-in items are never ranked."""

    recall_20: "torch.Tensor"
    recall_50: "torch.Tensor"
    ndcg_100: "torch.Tensor"

    def summary(self) -> dict:
        """Means and standard errors over users, and the number of users."""
        n = len(self.ndcg_100)
        out = {"users": n}
        for name, values in (("recall@20", self.recall_20), ("recall@50", self.recall_50),
                             ("ndcg@100", self.ndcg_100)):
            out[name] = float(values.mean())
            out[f"{name}_se"] = float(values.std() / math.sqrt(n)) if n > 1 else 0.0
        return out


def ranking_metrics(scorer, foldin, heldout, batch_size: int = 1000) -> RankingMetrics:
    """Score fold-in rows (scipy CSR, users x items) and compare the top items with `heldout`."""
    torch, _ = _torch()
    device = _device(scorer)
    keep = torch.from_numpy(heldout.getnnz(axis=1) > 0)
    parts = []
    scorer.eval()
    with torch.inference_mode():
        for start in range(0, foldin.shape[0], batch_size):
            x = torch.from_numpy(foldin[start:start + batch_size].toarray()).to(device)
            truth = torch.from_numpy(heldout[start:start + batch_size].toarray() > 0).to(device)
            scores = scorer(x).float().masked_fill(x > 0, -math.inf)
            k = min(100, scores.shape[1])
            hits = truth.gather(1, scores.topk(k, dim=1).indices).float()  # (batch, k)
            n_true = truth.sum(1)
            recall = [hits[:, :c].sum(1) / n_true.clamp(max=c, min=1) for c in (20, 50)]
            gains = 1 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float32))
            ideal = torch.cumsum(gains, 0)[(n_true.clamp(max=k, min=1) - 1)]
            parts.append(torch.stack([*recall, (hits * gains).sum(1) / ideal], 1).cpu())
    values = torch.cat(parts)[keep]
    return RankingMetrics(values[:, 0], values[:, 1], values[:, 2])


# -- a fitted recommender -------------------------------------------------------------------------
@dataclass
class Recommender:
    """A fitted model with its data: `scorer(x)` -> scores; `data`/`split` as in data.interactions."""

    path: Path | None
    scorer: object
    config: RecommendConfig
    data_config: object
    data: object  # Interactions (restricted to the training users' items)
    split: object  # StrongSplit
    history: list[dict]

    def part(self, role: str, part: str = "all"):
        from ..data.interactions import ROLE_TEST, ROLE_TRAIN, ROLE_VAL

        code = {"train": ROLE_TRAIN, "val": ROLE_VAL, "test": ROLE_TEST}[role]
        return self.split.rows(self.data.matrix, code, part)


def fit(data, out: str | Path | None = None, data_config=None, progress: bool = False, **options) -> Recommender:
    """Fit a recommender on an interaction log (`vaekit recommend fit`).

    data: a CSV/TSV/Parquet path or a pandas DataFrame of user, item[, rating] rows.
    data_config: an InteractionConfig (reading, thresholds, filters, split); options: fields of
    RecommendConfig (model='vae'|'dae'|'ease'|'popularity', epochs=..., beta_cap=...).
    Mult-VAE/DAE keep the weights of the epoch with the best validation NDCG@100.
    """
    torch, _ = _torch()
    from ..data.interactions import SparseRows, read_interactions, strong_split
    from ..training import select_device

    config = dataclasses.replace(RecommendConfig(), **{k: tuple(v) if isinstance(v, list) else v
                                                       for k, v in options.items()})
    config.validate()
    data_config = data_config or InteractionConfig()
    if out is not None and (Path(out) / CONFIG_FILE).exists():
        raise ConfigError(f"{out} already holds a model: choose another -o/--out or delete it")
    data_config.validate()
    reading = {k: v for k, v in to_dict(data_config).items() if not k.startswith("heldout")}
    interactions, split = strong_split(read_interactions(data, **reading), data_config.heldout_fraction,
                                       data_config.heldout_prop, config.seed)
    n_items = interactions.matrix.shape[1]
    if config.model == "ease" and n_items > EASE_MAX_ITEMS:
        raise ConfigError(f"EASE needs a dense {n_items} x {n_items} matrix: raise --min-item-count to keep "
                          f"at most {EASE_MAX_ITEMS} items")
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    model = Recommender(None, build_model(n_items, config).to(device), config, data_config, interactions, split, [])
    train = model.part("train")
    val = (model.part("val", "foldin"), model.part("val", "heldout"))
    if config.model == "popularity":
        model.scorer.counts.copy_(torch.from_numpy(train.getnnz(axis=0)).float())
    elif config.model == "ease":
        _fit_ease(model, train, val, device)
    else:
        _fit_mult(model, SparseRows(train), val, device, progress)
    if out is not None:
        save(model, out)
    return model


def _fit_ease(model: Recommender, train, val, device) -> None:
    torch, _ = _torch()
    x = torch.from_numpy(train.toarray()).to(device)
    gram = x.T @ x  # (items, items)
    lambdas = [model.config.ease_lambda] if model.config.ease_lambda > 0 else EASE_GRID
    best = -1.0
    for lam in lambdas:
        model.scorer.weights.copy_(ease_weights(gram, lam))
        ndcg = float(ranking_metrics(model.scorer, *val).ndcg_100.mean()) if len(lambdas) > 1 else 0.0
        model.history.append({"ease_lambda": lam, "val_ndcg@100": ndcg})
        if ndcg > best:
            best, best_weights = ndcg, model.scorer.weights.clone()
    model.scorer.weights.copy_(best_weights)


def kl_schedule(config: RecommendConfig, steps_per_epoch: int) -> tuple[float, float]:
    """(beta, kl_warmup epochs) for the core Trainer, whose weight is beta * min(1, step / warmup):
    the paper's min(cap, step / anneal_steps) is beta=cap with warmup = cap * anneal_steps steps;
    anneal_steps=0 reaches the cap at 80% of training. Mult-DAE: (0, 0)."""
    if config.model == "dae":
        return 0.0, 0.0
    if config.anneal_steps > 0:
        return config.beta_cap, config.beta_cap * config.anneal_steps / steps_per_epoch
    return config.beta_cap, 0.8 * config.epochs


def _fit_mult(model: Recommender, train, val, device, progress: bool) -> None:
    """Train with the core Trainer; beta = min(cap, step / anneal_steps) is the Trainer's linear
    warm-up with beta=cap and kl_warmup = cap * anneal_steps / steps_per_epoch epochs."""
    torch, _ = _torch()
    from ..config import TrainConfig
    from ..training import Trainer

    cfg = model.config
    beta, warmup = kl_schedule(cfg, math.ceil(len(train) / min(cfg.batch_size, len(train))))
    train_config = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               beta=beta, kl_warmup=warmup, seed=cfg.seed, device=str(device), progress=progress)
    best = {"ndcg": -1.0, "state": None}

    def validate(row: dict) -> None:
        row["val_ndcg@100"] = ndcg = float(ranking_metrics(model.scorer, *val).ndcg_100.mean())
        if ndcg > best["ndcg"]:
            best.update(ndcg=ndcg, state={k: v.clone() for k, v in model.scorer.state_dict().items()})

    model.history = Trainer(model.scorer.vae, train_config, on_epoch=validate).fit(train)
    model.scorer.load_state_dict(best["state"])


# -- saving and loading ---------------------------------------------------------------------------
def save(model: Recommender, out: str | Path) -> Path:
    """Write the model directory (config.json last, so a complete directory is one with a config)."""
    import numpy as np
    import torch

    from .. import __version__
    from ..checkpoint import atomic_write, save_tensors, write_json

    out = Path(out)
    m = model.data.matrix
    save_tensors(out / MODEL_FILE, model.scorer.state_dict())
    save_tensors(out / DATA_FILE, {"indptr": torch.from_numpy(m.indptr.astype(np.int64)),
                                   "indices": torch.from_numpy(m.indices.astype(np.int64)),
                                   "values": torch.from_numpy(m.data.astype(np.float32)),
                                   "role": torch.from_numpy(model.split.role.astype(np.int8)),
                                   "heldout": torch.from_numpy(model.split.heldout.astype(np.uint8))})
    write_json(out / IDS_FILE, {"users": model.data.users.tolist(), "items": model.data.items.tolist()})
    atomic_write(out / METRICS_FILE, "".join(json.dumps(row) + "\n" for row in model.history))
    write_json(out / CONFIG_FILE, {"format_version": FORMAT_VERSION, "vaekit_version": __version__,
                                   "kind": "recommend", "shape": list(m.shape), "model": to_dict(model.config),
                                   "data": to_dict(model.data_config)})
    model.path = out
    return out


def load(path: str | Path, device: str = "auto") -> Recommender:
    """Rebuild a fitted recommender from its directory."""
    import numpy as np
    from scipy import sparse

    from ..checkpoint import load_tensors, load_weights, read_json
    from ..data.interactions import Interactions, StrongSplit
    from ..training import select_device

    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"{path} is not a recommender directory (no {CONFIG_FILE}): pass the -o folder of "
                              "'vaekit recommend fit'")
    saved = read_json(path / CONFIG_FILE)
    if saved.get("kind") != "recommend" or saved.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path / CONFIG_FILE} is not a recommender of format {FORMAT_VERSION}: refit it")
    try:
        config = from_dict(RecommendConfig, saved["model"])
        data_config = from_dict(InteractionConfig, saved["data"])
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{path / CONFIG_FILE} is damaged ({err}): refit the model") from None
    t = load_tensors(path / DATA_FILE)
    ids = read_json(path / IDS_FILE)
    matrix = sparse.csr_matrix((t["values"].numpy(), t["indices"].numpy(), t["indptr"].numpy()),
                               shape=tuple(saved["shape"]))
    data = Interactions(matrix, np.asarray(ids["users"], dtype=str), np.asarray(ids["items"], dtype=str))
    split = StrongSplit(t["role"].numpy(), t["heldout"].numpy().astype(bool))
    scorer = build_model(matrix.shape[1], config)
    load_weights(scorer, path / MODEL_FILE)
    history_file = path / METRICS_FILE
    history = [json.loads(line) for line in history_file.read_text().splitlines() if line.strip()] \
        if history_file.exists() else []
    return Recommender(path, scorer.to(select_device(device)).eval(), config, data_config, data, split, history)


def _as_model(model) -> Recommender:
    return model if isinstance(model, Recommender) else load(model)


# -- the API behind the CLI -----------------------------------------------------------------------
def evaluate(model, split: str = "test", baselines: bool = False) -> dict[str, dict]:
    """Recall@20, Recall@50, NDCG@100 on held-out users (`vaekit recommend evaluate`).

    split: 'test' or 'val'. baselines=True also fits popularity and EASE on the same training
    users and scores them on the same users. Returns {model name: summary}; writes eval.json.
    """
    from ..checkpoint import write_json

    model = _as_model(model)
    if split not in ("test", "val"):
        raise ConfigError(f"unknown --split '{split}': use test or val")
    foldin, heldout = model.part(split, "foldin"), model.part(split, "heldout")
    results = {model.config.model: ranking_metrics(model.scorer, foldin, heldout).summary()}
    if baselines:
        for kind in ("popularity", "ease"):
            if kind != model.config.model:
                base = _refit(model, kind)
                results[kind] = ranking_metrics(base.scorer, foldin, heldout).summary()
                if kind == "ease":
                    results[kind]["ease_lambda"] = max(base.history, key=lambda r: r["val_ndcg@100"])["ease_lambda"]
    if model.path is not None:
        write_json(model.path / ("eval.json" if split == "test" else f"eval_{split}.json"), results)
    return results


def _refit(model: Recommender, kind: str) -> Recommender:
    """A baseline fitted on exactly the same split as `model`."""
    torch, _ = _torch()
    config = dataclasses.replace(model.config, model=kind)
    device = _device(model.scorer)
    base = Recommender(None, build_model(model.data.matrix.shape[1], config).to(device), config, model.data_config,
                       model.data, model.split, [])
    train = base.part("train")
    if kind == "popularity":
        base.scorer.counts.copy_(torch.from_numpy(train.getnnz(axis=0)).float())
    else:
        _fit_ease(base, train, (base.part("val", "foldin"), base.part("val", "heldout")), device)
    return base


def top(model, user: str | None = None, items: list[str] | None = None, k: int = 10,
        exclude_seen: bool = True) -> list[tuple[str, float]]:
    """The k best items, as (item id, score) best first (`vaekit recommend top`), for a known
    `user` id (all of their stored interactions) or for a new user given their `items` (no
    retraining). Unknown item ids of a new user are ignored; none known is an error."""
    import numpy as np
    import torch


    model = _as_model(model)
    if (user is None) == (items is None):
        raise ConfigError("give exactly one of --user ID or --items ID,ID,...")
    if k < 1:
        raise ConfigError(f"-k must be a positive integer, got {k}")
    n_items = model.data.matrix.shape[1]
    if user is not None:
        rows = np.flatnonzero(model.data.users == str(user))
        if len(rows) == 0:
            raise DataError(f"unknown user '{user}' (not in the data, or dropped by --min-user-count): "
                            f"known ids look like {', '.join(model.data.users[:3])}; use --items for a new user")
        x = model.data.matrix[rows[0]].toarray()
    else:
        position = {item: i for i, item in enumerate(model.data.items)}
        known = [position[str(i)] for i in items if str(i) in position]
        if not known:
            raise DataError(f"none of the items {', '.join(map(str, items[:5]))} is known to the model: "
                            f"item ids look like {', '.join(model.data.items[:3])}")
        x = np.zeros((1, n_items), np.float32)
        x[0, known] = 1.0
    device = _device(model.scorer)
    with torch.inference_mode():
        x = torch.from_numpy(x).float().to(device)
        scores = model.scorer(x)[0].float()
        if exclude_seen:
            scores = scores.masked_fill(x[0] > 0, -math.inf)
        best = scores.topk(min(k, int(torch.isfinite(scores).sum()))).indices.cpu().numpy()
    return [(str(model.data.items[i]), float(scores[i])) for i in best]


# -- the CLI --------------------------------------------------------------------------------------
EXAMPLES = {
    "fit": "vaekit recommend fit ratings.csv --min-rating 4 -o models/ml\n"
           "  vaekit recommend fit user_artists.dat --model dae --weighting log -o models/lastfm",
    "evaluate": "vaekit recommend evaluate models/ml --baselines",
    "top": "vaekit recommend top models/ml --user 42 -k 10\n"
           "  vaekit recommend top models/ml --items 1,260,1196 -k 10   # a new user, no retraining",
}


def add_commands(subparsers) -> None:
    app = subparsers.add_parser("recommend", help="Mult-VAE/DAE recommendations from user-item interactions",
                                description="Mult-VAE/DAE (Liang et al. 2018) with popularity and EASE baselines.")
    verbs = app.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help, description=help, epilog=f"example:\n  {EXAMPLES[name]}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    p = verb("fit", "fit a recommender on an interaction log and write a model directory")
    p.add_argument("data", help="CSV/TSV/.dat/Parquet file of user, item[, rating or play count] rows")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    add_arguments(p.add_argument_group("data"), InteractionConfig)
    add_arguments(p.add_argument_group("model"), RecommendConfig)
    p.set_defaults(handler=_fit_command)

    p = verb("evaluate", "Recall@20/50 and NDCG@100 on the held-out users")
    p.add_argument("model", help="model directory written by 'vaekit recommend fit'")
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--baselines", action="store_true", help="also fit and score popularity and EASE on the same split")
    p.set_defaults(handler=_evaluate_command)

    p = verb("top", "the top-k items for a known user or a new user's items")
    p.add_argument("model", help="model directory written by 'vaekit recommend fit'")
    p.add_argument("--user", help="a user id as in the data")
    p.add_argument("--items", help="comma-separated item ids of a new user")
    p.add_argument("-k", type=int, default=10, help="number of items (default: 10)")
    p.add_argument("--exclude-seen", action=argparse.BooleanOptionalAction, default=True,
                   help="leave out items the user already has (default: on)")
    p.set_defaults(handler=_top_command)


def _fit_command(args: argparse.Namespace):
    config = from_args(RecommendConfig, args)
    model = fit(args.data, args.out, from_args(InteractionConfig, args), progress=True, **to_dict(config))
    n_users, n_items = model.data.matrix.shape
    print(f"{config.model}: {n_users} users x {n_items} items, {model.data.matrix.nnz} interactions")
    if model.history and "val_ndcg@100" in model.history[0]:
        print(f"best validation NDCG@100 {max(r['val_ndcg@100'] for r in model.history):.4f}")
    return model.path


def _evaluate_command(args: argparse.Namespace):
    results = evaluate(args.model, args.split, args.baselines)
    print(f"{'model':<11} {'Recall@20':>9} {'Recall@50':>9} {'NDCG@100':>9} {'users':>6}")
    for name, r in results.items():
        print(f"{name:<11} {r['recall@20']:>9.4f} {r['recall@50']:>9.4f} {r['ndcg@100']:>9.4f} {r['users']:>6}")
    return Path(args.model) / ("eval.json" if args.split == "test" else f"eval_{args.split}.json")


def _top_command(args: argparse.Namespace):
    items = [i.strip() for i in args.items.split(",") if i.strip()] if args.items is not None else None
    for rank, (item, score) in enumerate(top(args.model, args.user, items, args.k, args.exclude_seen), 1):
        print(f"{rank:>3}  {item}  {score:.4f}")
    return None
