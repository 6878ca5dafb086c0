"""The VAE: encoder -> q(z|x) -> z -> decoder -> p(x|z), with a prior p(z).

Kingma & Welling (2014), "Auto-Encoding Variational Bayes"; the importance-weighted bound is
Burda, Grosse & Salakhutdinov (2016), eq. (8). All per-example quantities are in nats.

Conditioning (Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep
Conditional Generative Models"): with a `condition` module every method takes the raw condition
`c` and models q(z|x, c), p(x|z, c); `target` lets the likelihood score other values than the
encoder sees (denoising: Im et al. 2017). Both default to None: the unconditional VAE, unchanged.

Semi-supervised M2 (Kingma, Rezende, Mohamed & Welling 2014, "Semi-Supervised Learning with Deep Generative
Models", sec. 3.1.2): a label-conditional VAE, q(z|x, y) and p(x|y, z), plus a `classifier` part q(y|x) and a
uniform p(y) over K classes. A row with its label y scores -log p(x, y) <= -ELBO(x|y) + log K (eq. 6) plus
`label_weight` times -log q(y|x) (eq. 9, its alpha); a row without one, -log p(x) <= E_q(y|x)[-ELBO(x|y)] +
KL(q(y|x) || p(y)) (eq. 7), a sum over all K classes. The KL reported includes y's term (log K for a known label).
Given no label, `elbo` is that marginal bound and `log_likelihood` estimates log sum_y p(y) p(x|y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Categorical, Distribution

from .conditioning import UNLABELLED, Batch, LabelledBatch, build_condition, repeat_rows, unpack
from .bottlenecks import QuantizedCode, Quantizer, UniformCodes, build_quantizer
from .errors import ConfigError
from .hierarchy import build_latent
from .likelihoods import Likelihood, build_likelihood
from .networks import MLP, build_networks
from .objectives import TCDiscriminator, total_correlation
from .posteriors import DiagonalGaussian, Posterior, full_precision, stats_per_latent
from .priors import Prior, StandardNormal

# Decoded values per chunk when estimating log p(x): bounds the memory of log_likelihood.
_CHUNK_ELEMENTS = 1 << 24
# Decoder rows per chunk at most on a CPU: small chunks keep the likelihood's elementwise passes in
# cache (an MLP decoder's k = 1000 estimate ran 3x faster at 1,000 rows per chunk than at 21,000).
_CPU_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class ELBO:
    """Per-example terms of the evidence lower bound, each (batch,) in nats."""

    reconstruction: torch.Tensor  # E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z))

    def total(self, beta: float = 1.0) -> torch.Tensor:
        """reconstruction - beta * kl, per example."""
        return self.reconstruction - beta * self.kl


@dataclass(frozen=True)
class Loss:
    """A training loss (scalar, mean over the batch) with its parts for logging (scalars)."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    z: torch.Tensor | None = None  # (batch, latent) the draws the loss took, detached, under a TC discriminator


class VAE(nn.Module):
    """`VAE(encoder, decoder, likelihood, prior[, condition][, posterior=DiagonalGaussian()])`.

    encoder: (batch, *data_shape) -> the raw parameters `posterior` turns into q(z|x); for the
    default DiagonalGaussian, (batch, 2 * latent_dim): the loc and log-variance of a diagonal Gaussian.
    decoder: (batch, latent_dim) -> parameters for `likelihood`. The prior owns log p(z), its draws and
    KL(q(z|x) || p(z)) (priors.py); the VAE asks the parts and knows none of them by type.
    condition (optional): raw condition c -> features (batch, *feature_shape), which encoder and
    decoder then take as a second argument (conditioning.py, networks.py).

    classifier (optional, with a label condition): data -> class logits (batch, K), q(y|x) of the semi-supervised
    M2 (see the module's note), whose labelled rows add `label_weight` times -log q(y|x) to the loss.

    Methods taking data accept a tensor or a conditioning.Batch(x, c, target), as data sources
    of conditional or denoising training yield.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, prior: Prior,
                 condition: nn.Module | None = None, posterior: Posterior | None = None,
                 classifier: nn.Module | None = None, label_weight: float = 0.0):
        super().__init__()
        if classifier is not None and not hasattr(condition, "n_classes"):
            raise ConfigError("a classifier q(y|x) needs a label condition: build the VAE with LabelCondition")
        self.encoder, self.decoder, self.likelihood, self.prior = encoder, decoder, likelihood, prior
        self.condition, self.classifier, self.label_weight = condition, classifier, label_weight
        self.posterior = DiagonalGaussian() if posterior is None else posterior  # no parameters: state dicts unchanged
        self.latent_dim = prior.latent_dim

    def features(self, c) -> torch.Tensor | None:
        """Condition features (batch, *feature_shape), or None for an unconditional VAE."""
        if self.condition is None:
            if c is not None:
                raise ConfigError("this VAE is unconditional: drop the condition (label or low-resolution image)")
            return None
        if c is None:
            raise ConfigError(f"this VAE is conditional ({type(self.condition).__name__}): pass its condition c")
        return self.condition(c)

    def _encode(self, x: torch.Tensor, f: torch.Tensor | None) -> Distribution:
        stats = self.encoder(x) if f is None else self.encoder(x, f)
        return self.posterior(full_precision(stats))

    def _params(self, z: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
        return full_precision(self.decoder(z) if f is None else self.decoder(z, repeat_rows(f, len(z))))

    def _decoded_params(self, z: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
        """Likelihood parameters for z of shape (..., batch, latent_dim), with z's leading shape."""
        params = self._params(z.flatten(0, -2), f)  # flatten, unlike reshape(-1, d), takes d = 0
        return params.view(*z.shape[:-1], *params.shape[1:])

    def _decode(self, z: torch.Tensor, f: torch.Tensor | None) -> Distribution:
        return self.likelihood.distribution(self._decoded_params(z, f))

    def _log_px(self, z: torch.Tensor, f: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        """log p(target|z) in nats, shape z.shape[:-1]."""
        return self.likelihood.log_prob(self._decoded_params(z, f), target)

    def decoded_elements(self) -> int:
        """Tensor values one decoded example occupies: the decoder's activations where it reports
        them (conv decoders), else the likelihood's parameters. Bounds the memory of chunked estimators."""
        values = math.prod(self.likelihood.data_shape) * self.likelihood.params_per_value
        return max(values, getattr(self.decoder, "activation_elements", 0))

    def _on_device(self, *tensors) -> list:
        """The tensors (None passes) on the model's device: a model trained on a GPU takes the CPU
        tensors a user holds; results stay on the model's device."""
        weight = next(self.parameters(), None)
        return [t.to(weight.device) if torch.is_tensor(t) and weight is not None else t for t in tensors]

    def _inputs(self, x, c=None, target=None) -> tuple:
        """(x, c, target) unpacked from a Batch and on the model's device (x copied once when it is the target)."""
        x, c, target = unpack(x, c, target)
        moved, c = self._on_device(x, c)
        return moved, c, moved if target is x else self._on_device(target)[0]

    def encode(self, x: torch.Tensor | Batch, c=None) -> Distribution:
        """q(z|x[, c]) with batch_shape (batch,) and event_shape (latent_dim,): a diagonal Gaussian
        for the default posterior."""
        x, c, _ = self._inputs(x, c)
        return self._encode(x, self.features(self._label_or_guess(x, c)))

    def decode(self, z: torch.Tensor, c=None) -> Distribution:
        """p(x|z[, c]) for z of shape (..., batch, latent_dim) and c of batch rows; batch_shape is
        z's leading shape."""
        z, c = self._on_device(z, c)
        return self._decode(z, self.features(c))

    def decode_mean(self, z: torch.Tensor, c=None) -> torch.Tensor:
        """E[x|z[, c]] (probabilities for Bernoulli), shape (batch, *data_shape)."""
        z, c = self._on_device(z, c)
        return self.likelihood.mean(self._params(z, self.features(c)))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, c=None) -> torch.Tensor:
        """Decode n draws from the prior; returns E[x|z[, c]] (the tutorials' sigmoid(logits)).
        A conditional VAE needs c with n rows (or one row, used for all n)."""
        z = self.prior.sample(n, generator)  # (n, latent)
        f = self.features(*self._on_device(c))
        return self.likelihood.mean(self._params(z, f if f is None or len(f) == n else repeat_rows(f, n)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c=None) -> torch.Tensor:
        """E[x|z] at the posterior mean z = E[z|x] (x may be a Batch)."""
        x, c, _ = self._inputs(x, c)
        f = self.features(self._label_or_guess(x, c))
        return self.likelihood.mean(self._params(self._encode(x, f).mean, f))

    def elbo(self, x: torch.Tensor | Batch, n_samples: int = 1, c=None, target: torch.Tensor | None = None) -> ELBO:
        """Per-example ELBO terms; the reconstruction term averages n_samples reparameterized draws,
        as does the KL where the prior has no closed form for it. `target` (default x) is what the
        likelihood scores. A semi-supervised VAE given no label returns its bound on log p(x), a sum over
        the classes (the module's note)."""
        x, c, target = self._inputs(x, c, target)
        if self.classifier is not None and c is None:
            return self._marginal_elbo(x, target, self._classify(x).logits, n_samples)
        return self._elbo(x, self.features(c), target, n_samples)

    def _elbo(self, x: torch.Tensor, f: torch.Tensor | None, target: torch.Tensor, n_samples: int = 1) -> ELBO:
        qz = self._encode(x, f)
        z = qz.rsample((n_samples,))  # (n_samples, batch, latent)
        return ELBO(self._log_px(z, f, target).mean(0), self.prior.given(x).kl(qz, z))

    def classify(self, x: torch.Tensor | Batch) -> Categorical:
        """q(y|x) of a semi-supervised VAE (M2), batch_shape (batch,) over its K classes."""
        if self.classifier is None:
            raise ConfigError("this VAE has no classifier q(y|x): train it with --semi-supervised")
        return self._classify(self._inputs(x)[0])

    def _classify(self, x: torch.Tensor) -> Categorical:
        return Categorical(logits=full_precision(self.classifier(x)))

    def _label_or_guess(self, x: torch.Tensor, c):
        """c, or for a semi-supervised VAE given none, the classes q(y|x) finds most probable."""
        return c if c is not None or self.classifier is None else self._classify(x).probs.argmax(-1)

    def _marginal_elbo(self, x: torch.Tensor, target: torch.Tensor, log_qy: torch.Tensor, n_samples: int = 1) -> ELBO:
        """M2's bound on log p(x) (Kingma et al. 2014, eq. 7), per example (batch,): each class's ELBO weighed by
        q(y|x) (log-probabilities log_qy (batch, K)), and KL(q(y|x) || p(y)) with p(y) uniform added to the KL."""
        classes, rows = self.condition.n_classes, len(x)
        y = torch.arange(classes, device=x.device).repeat_interleave(rows)  # (K * batch,), class-major as repeat_rows
        per_class = self._elbo(repeat_rows(x, classes * rows), self.features(y), repeat_rows(target, classes * rows),
                               n_samples)
        weights = log_qy.exp().T  # (K, batch)
        kl_y = (log_qy.exp() * (log_qy + math.log(classes))).sum(-1)
        return ELBO((weights * per_class.reconstruction.view(classes, rows)).sum(0),
                    (weights * per_class.kl.view(classes, rows)).sum(0) + kl_y)

    def _semi_supervised_loss(self, x, c, target, beta: float) -> Loss:
        """M2's objective, the mean over a batch whose labels c are UNLABELLED where unknown (the module's note)."""
        x, labels, target = self._inputs(x, c, target)
        if labels is None:
            raise ConfigError("a semi-supervised VAE trains on labels, UNLABELLED where unknown: give it LabelledData")
        known = labels != UNLABELLED
        qy = self._classify(x)
        given = self._elbo(x[known], self.features(labels[known]), target[known])
        labelled = ELBO(given.reconstruction, given.kl + math.log(self.condition.n_classes))  # -log p(y) = log K
        unlabelled = self._marginal_elbo(x[~known], target[~known], qy.logits[~known])  # Categorical's logits: log q(y|x)
        label_nll = -qy.log_prob(labels.clamp(min=0))[known]  # -log q(y|x), (labelled,)
        per_row = torch.cat([self.label_weight * label_nll - labelled.total(beta), -unlabelled.total(beta)])
        reconstruction = torch.cat([labelled.reconstruction, unlabelled.reconstruction]).mean()
        kl = torch.cat([labelled.kl, unlabelled.kl]).mean()
        return Loss(per_row.mean(), reconstruction.detach(), kl.detach())

    def loss(self, x: torch.Tensor | Batch, beta: float | torch.Tensor = 1.0, free_bits: float = 0.0,
             iw_samples: int = 1, c=None, target: torch.Tensor | None = None, tc_weight: float = 0.0,
             dataset_size: int | None = None, standard_prior: bool = False,
             tc_discriminator: TCDiscriminator | None = None) -> Loss:
        """The training objective, a scalar to minimize (mean over the batch).

        beta: the KL weight, a number or one weight per example (batch,) (RecVAE's beta proportional to a
        user's interactions, Shenbin et al. 2020, sec. 3.3), which takes no free bits.

        iw_samples=1: -(reconstruction - beta * KL), with free bits (Kingma et al. 2016, eq. 15):
        each of the prior's KL terms (`Prior.kl_terms`) counts as at least `free_bits` nats in its
        batch mean: each latent dimension's KL where it is in closed form (the standard normal prior),
        its chain-rule share of the Monte-Carlo KL for a mixture prior (mog, vamp) against a diagonal
        Gaussian q, each layer's dimensions for two stochastic layers, the whole KL where the prior has
        no split of it (a flow posterior).
        iw_samples=K>1: the negative importance-weighted bound of Burda et al. with K samples,
        beta weighting log p(z) - log q(z|x) inside each weight.
        tc_weight > 0 (with iw_samples=1) adds tc_weight times the batch's estimate of the aggregate posterior's
        total correlation (objectives.total_correlation; beta-TCVAE, Chen et al. 2018, whose beta is
        beta + tc_weight), which needs `dataset_size`, the number of training examples; with a `tc_discriminator`,
        the total correlation is its mean logit on the batch's draws instead (FactorVAE, Kim & Mnih 2018, eq. 3),
        its parameters held fixed, and the Loss carries those draws (`z`) for the caller to train it on.
        standard_prior=True takes the KL against N(0, I) over the whole latent instead of the model's prior
        (the Trainer's first --prior-warmup epochs: its fixed closed-form KL keeps the encoder from the
        saturated, input-blind state in which a VampPrior, the same encoder at its pseudo-inputs, matches
        every posterior at no cost).
        x may be a Batch; c and target as in `elbo`. A semi-supervised VAE takes labels (a LabelledBatch, or c)
        with UNLABELLED where unknown and returns M2's objective (the module's note) with beta on both KLs.
        """
        # Long: every objective option's checks and terms in one place, the order in which they apply.
        if self.classifier is not None:
            if isinstance(x, LabelledBatch):
                x, c = x.x, x.labels
            if iw_samples > 1 or free_bits > 0 or tc_weight > 0 or (torch.is_tensor(beta) and beta.dim() > 0):
                raise ConfigError("the semi-supervised objective takes one KL weight (--beta) and none of --iw-samples, "
                                  "--free-bits, --tc-weight: drop them")
            return self._semi_supervised_loss(x, c, target, beta)
        if tc_weight > 0 and (iw_samples > 1 or (dataset_size is None and tc_discriminator is None)):
            raise ConfigError("the total-correlation term needs the training set's size (dataset_size) and "
                              "iw_samples=1: drop --tc-weight or --iw-samples")
        x, c, target = self._inputs(x, c, target)
        f = self.features(c)
        qz = self._encode(x, f)
        prior = StandardNormal(self.latent_dim).to(x.device) if standard_prior else self.prior.given(x)
        if iw_samples > 1:
            z = qz.rsample((iw_samples,))  # (K, batch, latent)
            log_px = self._log_px(z, f, target)  # (K, batch)
            log_ratio = prior.log_prob(z) - qz.log_prob(z)
            bound = torch.logsumexp(log_px + beta * log_ratio, 0) - math.log(iw_samples)
            return Loss(-bound.mean(), log_px.mean(), prior.kl(qz, z).mean())
        z = qz.rsample()  # (batch, latent)
        reconstruction = self._log_px(z, f, target).mean()
        per_example = prior.kl_terms(qz, z, split=free_bits > 0)  # (batch, terms)
        kl_terms = per_example.mean(0)  # (terms,) batch means
        kl = kl_terms.sum()
        if torch.is_tensor(beta) and beta.dim() > 0:
            if free_bits > 0 or tc_weight > 0:
                raise ConfigError("free bits and the total-correlation term take one KL weight for the batch, not "
                                  "one per example: drop one of them")
            penalty = (beta * per_example.sum(-1)).mean()
            return Loss(penalty - reconstruction, reconstruction.detach(), kl.detach())
        penalty = kl_terms.clamp(min=free_bits).sum() if free_bits > 0 else kl
        loss = beta * penalty - reconstruction
        if isinstance(qz, QuantizedCode):  # a quantizer's own training loss (VQ's commitment)
            loss = loss + qz.penalty.mean()
        if tc_weight > 0 and tc_discriminator is not None:
            loss = loss + tc_weight * tc_discriminator.estimate(z).mean()
            return Loss(loss, reconstruction.detach(), kl.detach(), z.detach())
        if tc_weight > 0:
            loss = loss + tc_weight * total_correlation(qz, z, dataset_size).mean()
        return Loss(loss, reconstruction.detach(), kl.detach())

    def epoch_statistics(self) -> dict[str, float]:
        """What the parts counted over the last epoch's training steps (a quantizer's codebook usage and
        perplexity), read once an epoch by the Trainer; {} when nothing counts."""
        return self.posterior.epoch_statistics() if isinstance(self.posterior, Quantizer) else {}

    @torch.inference_mode()
    def log_likelihood(self, x: torch.Tensor | Batch, k: int = 1000, chunk_size: int | None = None, c=None,
                       target: torch.Tensor | None = None) -> torch.Tensor:
        """Importance-weighted estimate of log p(x), per example (batch,), in nats:
        log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016, eq. 8).

        The k samples are drawn in chunks so that memory stays bounded for any k; the chunks'
        log-sum-exps are combined exactly. With c it estimates log p(x|c); with a target, log p(target[|c])
        with q(z|x) as the proposal. A semi-supervised VAE given no label estimates log sum_y p(y) p(x|y), k samples
        per class.
        """
        x, c, target = self._inputs(x, c, target)
        if self.classifier is not None and c is None:
            classes = self.condition.n_classes
            per_class = torch.stack([self.log_likelihood(x, k, chunk_size, torch.full((len(x),), y, device=x.device),
                                                         target) for y in range(classes)])  # (K, batch)
            return torch.logsumexp(per_class, 0) - math.log(classes)
        f = self.features(c)
        qz = self._encode(x, f)
        prior = self.prior.given(x)
        rows = _CHUNK_ELEMENTS // self.decoded_elements()
        rows = min(rows, _CPU_CHUNK_ROWS) if x.device.type == "cpu" else rows
        chunk = chunk_size or max(1, rows // x.shape[0])
        total = torch.full((x.shape[0],), -math.inf, device=x.device)
        for start in range(0, k, chunk):
            z = qz.sample((min(chunk, k - start),))  # (chunk, batch, latent)
            log_w = self._log_px(z, f, target) + prior.log_prob(z) - qz.log_prob(z)
            total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
        return total - math.log(k)


def build_vae(config) -> VAE:
    """Build a VAE from a ModelConfig whose data_shape is set (the saved config.json's 'model')."""
    config.validate()
    shape = tuple(config.data_shape)
    network = config.network if config.network != "auto" else ("conv" if len(shape) == 3 else "mlp")
    likelihood = build_likelihood(config.likelihood, shape, config.gaussian_scale)
    condition = build_condition(config.condition, shape, config.n_classes)
    features = condition.feature_shape if condition is not None else ()
    if config.bottleneck == "gaussian":
        encoder, decoder = build_networks(network, shape, config.latent_dim * config.stochastic_layers,
                                          likelihood.params_per_value, config.hidden, config.conv_channels,
                                          config.activation, config.encoder_padding, features,
                                          stats_per_latent(config.posterior, config.flow_context))
        prior, posterior = build_latent(config.prior, config.posterior, config.latent_dim, config.stochastic_layers,
                                        config.prior_components, config.flow_steps, encoder, shape, features,
                                        config.hidden[-1], config.activation, config.flow_context)
    else:
        posterior = build_quantizer(config.bottleneck, config.latent_dim, config.codebook_size, config.code_dim,
                                    config.fsq_levels)
        prior = UniformCodes(posterior)
        encoder, decoder = build_networks(network, shape, config.latent_dim, likelihood.params_per_value,
                                          config.hidden, config.conv_channels, config.activation,
                                          config.encoder_padding, features, posterior.stats_per_latent)
    classifier = MLP(shape, config.hidden, (config.n_classes,), config.activation) if config.semi_supervised else None
    return VAE(encoder, decoder, likelihood, prior, condition, posterior, classifier, config.label_weight)
