"""Recommendation from user-item interactions, the API behind `vaekit recommend fit|evaluate|top`: Mult-VAE,
RecVAE and Mult-DAE with popularity and EASE baselines. The recommender package vaekit.recommend holds it (models, metrics,
fitting, saving); this module names the use's entry points, as every apps/<use> does."""

from pathlib import Path

from ..recommend import InteractionConfig, RecommendConfig, Recommender, evaluate, fit, item_titles, load, top

__all__ = ["InteractionConfig", "RecommendConfig", "Recommender", "evaluate", "evaluation_file", "fit", "item_titles",
           "load", "top"]


def evaluation_file(model: str | Path, split: str) -> Path:
    """The JSON file that `evaluate` writes into the model folder `model` for `split`."""
    return Path(model) / ("eval.json" if split == "test" else f"eval_{split}.json")
