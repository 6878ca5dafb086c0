"""vaekit: variational autoencoders on PyTorch. One VAE, pluggable parts, a trainer, evaluation, a CLI."""

__version__ = "0.1.0"

_LAZY = {
    "VAE": "vae", "ELBO": "vae", "build_vae": "vae",
    "Bernoulli": "likelihoods", "Gaussian": "likelihoods", "Likelihood": "likelihoods",
    "Prior": "priors", "StandardNormal": "priors", "Posterior": "posteriors", "DiagonalGaussian": "posteriors",
    "MLP": "networks", "ConvEncoder": "networks", "ConvDecoder": "networks",
    "Trainer": "training", "ModelConfig": "config", "TrainConfig": "config", "DataConfig": "config",
    "Evaluation": "evaluation",
    "train": "apps.images", "evaluate": "apps.images", "sample": "apps.images", "reconstruct": "apps.images",
    "interpolate": "apps.images", "embed": "apps.images", "sweep": "apps.images", "report": "apps.images",
    "demo": "apps.images", "load_run": "apps.images", "Run": "apps.images",
    "load": "apps.registry", "save_pretrained": "apps.hub", "from_pretrained": "apps.hub",
    "TabularVAE": "tabular", "VAEAnomalyDetector": "apps.anomaly", "Multinomial": "likelihoods.multinomial",
    "MixedLikelihood": "likelihoods.mixed", "read_interactions": "data.interactions",
    "VaekitError": "errors", "DataError": "errors", "ConfigError": "errors", "CheckpointError": "errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    # Lazy imports keep `import vaekit` (and `vaekit --help`) free of torch until it is needed.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vaekit' has no attribute '{name}'")
