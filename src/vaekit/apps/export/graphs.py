"""The modules `vaekit export` traces: a VAE's encoder and decoder as functions of plain tensors, so no
torch.distributions object crosses the exported graph's boundary, and the copy of the VAE they trace, built in
torch's own layers and kernels."""

from __future__ import annotations


import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent

from ...vae import VAE, build_vae


def parameters(d: Distribution) -> dict[str, torch.Tensor]:
    """The parameters torch declares for `d` (its `arg_constraints`, of the base of an Independent), by name:
    a Normal's loc and scale, a Bernoulli's probs and logits, a discretized logistic's loc and scale."""
    base = d.base_dist if isinstance(d, Independent) else d
    return {name: getattr(base, name) for name in base.arg_constraints}


class EncoderGraph(nn.Module):
    """x (batch, *data_shape)[, condition: features (batch, *feature_shape)] -> q(z|x)'s parameters, each
    (batch, latent_dim): loc and scale for the diagonal Gaussian posterior."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def outputs(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The graph's outputs by name."""
        stats = self.vae.encoder(x) if condition is None else self.vae.encoder(x, condition)
        return parameters(self.vae.posterior(stats))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        return tuple(self.outputs(x, condition).values())


class DecoderGraph(nn.Module):
    """z (batch, latent_dim)[, condition: features (batch, *feature_shape)] -> E[x|z] ("mean") and p(x|z)'s
    parameters, each (batch, *data_shape): probs and logits (Bernoulli), loc and scale (Gaussian, discretized
    logistic)."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def outputs(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The graph's outputs by name."""
        params = self.vae.decoder(z) if condition is None else self.vae.decoder(z, condition)
        px = self.vae.likelihood.distribution(params)
        return {"mean": px.mean, **parameters(px)}

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        return tuple(self.outputs(z, condition).values())


class ClassifierGraph(nn.Module):
    """x (batch, *data_shape) -> a semi-supervised run's q(y|x): probs and logits, each (batch, n_classes); its
    argmax is the class `vaekit classify` gives, and the label to feed the other graphs' `condition`."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The graph's outputs by name."""
        return parameters(Categorical(logits=self.vae.classifier(x), validate_args=False))  # no data-dependent check

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.outputs(x).values())


def plain_copy(vae: VAE, config) -> VAE:
    """A copy of `vae` on the CPU, built afresh from its ModelConfig `config`: torch's own layers in their
    default layout, whatever a trainer or loader made of `vae` for speed."""
    copy = build_vae(config)
    copy.load_state_dict({name: value.cpu() for name, value in vae.state_dict().items()})
    return copy.eval()
