"""Fit, save, load, evaluate and query recommenders (the API behind `vaekit recommend`)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..config import from_dict, route, to_dict
from ..errors import CheckpointError, ConfigError, DataError
from .models import (CONFIG_FILE, DATA_FILE, EASE_GRID, EASE_MAX_ITEMS, FORMAT_VERSION, IDS_FILE, METRICS_FILE, MODEL_FILE,
                     KIND, InteractionConfig, RecommendConfig, build_model, catalogue_reach, device_of, ease_weights,
                     ranking_metrics)


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
    source: str | None = None  # the interaction log fitted on (absolute path), where item titles are looked for

    def part(self, role: str, part: str = "all"):
        from ..data.interactions import ROLE_TEST, ROLE_TRAIN, ROLE_VAL

        code = {"train": ROLE_TRAIN, "val": ROLE_VAL, "test": ROLE_TEST}[role]
        return self.split.rows(self.data.matrix, code, part)


def fit(data, out: str | Path | None = None, data_config=None, progress: bool = False, overwrite: bool = False,
        **options) -> Recommender:
    """Fit a recommender on an interaction log (`vaekit recommend fit`).

    data: a CSV/TSV/Parquet path or a pandas DataFrame of user, item[, rating] rows.
    data_config: an InteractionConfig (reading, thresholds, filters, split); options: fields of
    RecommendConfig (model='vae'|'dae'|'ease'|'popularity', beta_cap=...) and of the TrainConfig it
    holds (epochs=..., batch_size=...).
    Mult-VAE/DAE keep the weights of the epoch with the best validation NDCG@100. A folder `out` holding a
    saved model is refused unless `overwrite`.
    """
    import torch

    from ..data.interactions import SparseRows, read_interactions, strong_split
    from ..limits import build_within_memory
    from ..saved import check_new_folder, clear_folder
    from ..devices import select_device

    (config,) = route(options, RecommendConfig())
    data_config = data_config or InteractionConfig()
    if out is not None:
        check_new_folder(out, overwrite)
    data_config.validate()
    reading = {k: v for k, v in to_dict(data_config).items() if not k.startswith("heldout")}
    interactions, split = strong_split(read_interactions(data, **reading), data_config.heldout_fraction,
                                       data_config.heldout_prop, config.train.seed)
    n_items = interactions.matrix.shape[1]
    if config.model == "ease" and n_items > EASE_MAX_ITEMS:
        raise ConfigError(f"EASE needs a dense {n_items} x {n_items} matrix: raise --min-item-count to keep "
                          f"at most {EASE_MAX_ITEMS} items")
    device = select_device(config.train.device)
    torch.manual_seed(config.train.seed)
    scorer = build_within_memory(lambda: build_model(n_items, config),
                                 f"a recommender of these sizes for {n_items} items", "lower --latent-dim or --hidden")
    source = str(Path(data).resolve()) if isinstance(data, (str, Path)) else None
    model = Recommender(None, scorer.to(device), config, data_config, interactions, split, [], source)
    train = model.part("train")
    val = (model.part("val", "foldin"), model.part("val", "heldout"))
    if config.model == "popularity":
        model.scorer.counts.copy_(torch.from_numpy(train.getnnz(axis=0)).float())
    elif config.model == "ease":
        _fit_ease(model, train, val, device)
    else:
        _fit_mult(model, SparseRows(train), val, device, progress)
    if out is not None:
        clear_folder(out, overwrite)
        save(model, out)
    return model


def _fit_ease(model: Recommender, train, val, device) -> None:
    import torch

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
    anneal_steps=0 reaches the cap at 80% of training. Mult-DAE: (0, 0); RecVAE: (gamma, 0), the weight per
    interaction, each user's beta being gamma times their interactions (`_fit_mult`)."""
    if config.model == "dae":
        return 0.0, 0.0
    if config.model == "recvae":
        return config.gamma, 0.0
    if config.anneal_steps > 0:
        return config.beta_cap, config.beta_cap * config.anneal_steps / steps_per_epoch
    return config.beta_cap, 0.8 * config.train.epochs


def _fit_mult(model: Recommender, train, val, device, progress: bool) -> None:
    """Train with the core Trainer; beta = min(cap, step / anneal_steps) is the Trainer's linear
    warm-up with beta=cap and kl_warmup = cap * anneal_steps / steps_per_epoch epochs. RecVAE: each user's beta
    is gamma times their interactions, encoder and decoder take turns, and the composite prior's previous
    encoder is renewed after every epoch (Shenbin et al. 2020)."""
    from ..training import Trainer

    cfg = model.config
    beta, warmup = kl_schedule(cfg, math.ceil(len(train) / min(cfg.train.batch_size, len(train))))
    train_config = dataclasses.replace(cfg.train, beta=beta, kl_warmup=warmup, device=str(device), progress=progress)
    best = {"ndcg": -1.0, "state": None}

    recvae = cfg.model == "recvae"
    vae = model.scorer.vae

    def score(scored, row: dict) -> dict:
        # under ema the Trainer hands the probe the weights' average: that is what is scored, and kept if best
        best["scored"] = model.scorer if scored is vae else type(model.scorer)(scored)
        return {"val_ndcg@100": float(ranking_metrics(best["scored"], *val).ndcg_100.mean())}

    def keep_best(row: dict) -> None:
        if recvae:
            vae.prior.renew(vae.encoder)
        if row["val_ndcg@100"] > best["ndcg"]:
            state = best["scored"].state_dict()
            best.update(ndcg=row["val_ndcg@100"], state={k: v.clone() for k, v in state.items()})

    recvae_options = dict(kl_per_example=interaction_counts, alternate=(cfg.encoder_passes, cfg.decoder_passes))
    model.history = Trainer(vae, train_config, on_epoch=keep_best, probe=score, monitor="val_ndcg@100",
                            **(recvae_options if recvae else {})).fit(train)
    model.scorer.load_state_dict(best["state"])


def interaction_counts(x):
    """Each user's number of interactions (batch,), the factor of RecVAE's per-user KL weight."""
    return (x > 0).sum(-1).to(x.dtype)


# -- saving and loading ---------------------------------------------------------------------------
def save(model: Recommender, out: str | Path) -> Path:
    """Write the model directory (config.json last, so a complete directory is one with a config)."""
    import numpy as np
    import torch

    from .. import __version__
    from ..checkpoint import save_tensors
    from ..io import atomic_write, write_json

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
                                   "kind": KIND, "shape": list(m.shape), "model": to_dict(model.config),
                                   "data": to_dict(model.data_config), "source": model.source})
    model.path = out
    return out


def load(path: str | Path, device: str = "auto") -> Recommender:
    """Rebuild a fitted recommender from its directory."""
    import numpy as np
    from scipy import sparse

    from ..checkpoint import load_tensors, load_weights, read_json, read_jsonl
    from ..data.interactions import Interactions, StrongSplit
    from ..saved import read_config
    from ..devices import select_device

    path = Path(path)
    saved = read_config(path, KIND, FORMAT_VERSION)
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
    history = read_jsonl(path / METRICS_FILE)
    return Recommender(path, scorer.to(select_device(device)).eval(), config, data_config, data, split, history,
                       saved.get("source"))


def _as_model(model) -> Recommender:
    return model if isinstance(model, Recommender) else load(model)


# -- the API behind the CLI -----------------------------------------------------------------------
def evaluate(model, split: str = "test", baselines: bool = False, progress: bool = True) -> dict[str, dict]:
    """Recall@20, Recall@50, NDCG@100 on held-out users, with coverage@20 and long_tail@20 (`catalogue_reach`)
    (`vaekit recommend evaluate`).

    split: 'test' or 'val'. baselines=True also fits popularity and EASE on the same training
    users and scores them on the same users. Returns {model name: summary}; writes eval.json. `progress`: a bar
    with an ETA per model scored, on a terminal.
    """
    from ..io import write_json

    model = _as_model(model)
    if split not in ("test", "val"):
        raise ConfigError(f"unknown --split '{split}': use test or val")
    foldin, heldout = model.part(split, "foldin"), model.part(split, "heldout")
    popularity = model.part("train").getnnz(axis=0)

    def scored(scorer) -> dict:
        metrics = ranking_metrics(scorer, foldin, heldout, progress=progress)
        return {**metrics.summary(), **catalogue_reach(metrics.top_20, popularity)}

    results = {model.config.model: scored(model.scorer)}
    if baselines:
        for kind in ("popularity", "ease"):
            if kind != model.config.model:
                base = _refit(model, kind)
                results[kind] = scored(base.scorer)
                if kind == "ease":
                    results[kind]["ease_lambda"] = max(base.history, key=lambda r: r["val_ndcg@100"])["ease_lambda"]
    if model.path is not None:
        write_json(model.path / ("eval.json" if split == "test" else f"eval_{split}.json"), results)
    return results


def _refit(model: Recommender, kind: str) -> Recommender:
    """A baseline fitted on exactly the same split as `model`."""
    import torch

    config = dataclasses.replace(model.config, model=kind)
    device = device_of(model.scorer)
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
    device = device_of(model.scorer)
    with torch.inference_mode():
        x = torch.from_numpy(x).float().to(device)
        scores = model.scorer(x)[0].float()
        if exclude_seen:
            scores = scores.masked_fill(x[0] > 0, -math.inf)
        best = scores.topk(min(k, int(torch.isfinite(scores).sum()))).indices.cpu().numpy()
    return [(str(model.data.items[i]), float(scores[i])) for i in best]


def item_titles(model, path: str | Path | None = None) -> dict[str, str]:
    """{item id: title} from the items file `path`, else from one found beside the interaction log the model was
    fitted on (data.interactions.ITEM_FILES: MovieLens' movies.csv, Last.fm's artists.dat); {} when there is none."""
    from ..data.interactions import find_item_file, read_item_titles

    if path is None:
        source = _as_model(model).source
        path = find_item_file(Path(source).parent) if source is not None else None
    return read_item_titles(path) if path is not None else {}


# -- the CLI --------------------------------------------------------------------------------------
