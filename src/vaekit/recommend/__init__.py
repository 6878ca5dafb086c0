"""Recommendation from user-item interactions: Mult-VAE, RecVAE (Shenbin et al. 2020) and Mult-DAE (Liang, Krishnan, Hoffman &
Jebara 2018, "Variational Autoencoders for Collaborative Filtering"), with item popularity and
EASE (Steck 2019) as baselines, evaluated by the paper's strong-generalization protocol.

Mult-VAE is the core `VAE` composed of a `MultEncoder` (L2-normalise, input dropout, MLP), an MLP
decoder emitting one logit per item, the `Multinomial` likelihood and N(0, I); its KL weight is
annealed linearly to a cap by the core Trainer. Mult-DAE is the same composition with a
deterministic encoder and beta = 0. RecVAE is the core `VAE` of a densely connected LayerNorm encoder, a linear
decoder, the `Multinomial` likelihood and the `CompositePrior` (priors.py), trained with a KL weight proportional
to each user's interactions and alternating encoder/decoder passes (Trainer options). Every model scores items with `model(x) -> (users, items)`.

A model directory holds config.json, model.safetensors, interactions.safetensors (the CSR
matrix of all kept users, their train/val/test role and the held-out mask) and ids.json (the
user's own user and item ids); metrics.jsonl and eval.json when trained/evaluated.
"""

from .api import Recommender, evaluate, fit, item_titles, kl_schedule, load, save, top
from .models import (InteractionConfig, RankingMetrics, RecommendConfig, build_model, catalogue_reach, ease_weights,
                     ranking_metrics)

__all__ = ["InteractionConfig", "RankingMetrics", "RecommendConfig", "Recommender", "build_model", "catalogue_reach",
           "ease_weights", "evaluate", "fit", "item_titles", "kl_schedule", "load", "ranking_metrics", "save", "top"]
