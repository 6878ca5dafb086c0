"""The sentence VAE as a composition: VAE(SentenceEncoder, nn.Identity, CategoricalSequence(SentenceDecoder),
StandardNormal), its config, KL schedules, saving, and evaluation in nats and perplexity."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import CONFIG_FILE, MODEL_FILE, load_weights
from ..config import FORMAT_VERSION, TrainConfig, from_dict, to_dict
from ..evaluation import active_units
from ..io import write_json
from ..likelihoods.sequence import CategoricalSequence
from ..progress import progress_bar
from ..priors import StandardNormal
from ..saved import read_config
from ..semisupervised import LabelledVAE
from ..vae import VAE
from .config import TEXT_TRAIN, TextConfig  # noqa: F401 (re-exported)
from .networks import NoEncoder, SentenceDecoder, SentenceEncoder
from ..data.text import PAD, TokenBatches, Vocabulary, load_vocabulary, save_vocabulary

VOCAB_FILE = "vocab.json"
KIND = "text"  # config.json's kind (vaekit.saved); vaekit 0.1.0 wrote "text-vae"


def cyclical_beta(beta: float, total_steps: int, cycles: int, ramp: float = 0.5):
    """Fu et al. (2019), eq. 4: within each of `cycles` equal cycles, beta rises linearly from 0 over
    the first `ramp` of the cycle, then holds. Returns (step, steps_per_epoch) -> beta for the Trainer."""
    period = max(1.0, total_steps / cycles)

    def schedule(step: int, steps_per_epoch: int) -> float:
        return beta * min(1.0, (step % period + 1) / (period * ramp))

    return schedule


def build_text_vae(config: TextConfig, vocab_size: int) -> VAE:
    """The sentence VAE: z passes through the VAE's decoder slot to the likelihood's recurrent decoder; with
    latent_dim 0, a plain language model (no encoder)."""
    encoder = SentenceEncoder(vocab_size, config.embed_dim, config.encoder_hidden or config.hidden, config.latent_dim,
                              config.cell) \
        if config.latent_dim else NoEncoder()
    network = SentenceDecoder(vocab_size, config.embed_dim, config.hidden, config.latent_dim, config.word_dropout,
                              config.bow_weight, config.dropout, config.cell, config.tie_embeddings, config.layers)
    return VAE(encoder, nn.Identity(), CategoricalSequence(network, config.max_len), StandardNormal(config.latent_dim))


@dataclass
class TextModel:
    """A sentence VAE with its vocabulary and configs; a model fitted with labels also holds `labelled`,
    the VAE with its p(y|z) over `classes` (the VAE is its .vae)."""

    vae: VAE
    vocabulary: Vocabulary
    config: TextConfig
    train: TrainConfig
    path: Path | None = None
    classes: tuple[str, ...] = ()
    labelled: LabelledVAE | None = None

    @property
    def trained(self) -> nn.Module:
        """The module whose weights are model.safetensors: the VAE, or the VAE with its classifier."""
        return self.vae if self.labelled is None else self.labelled

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def encode_text(self, sentences: list[str]) -> TokenBatches:
        return TokenBatches(self.vocabulary.encode(list(sentences), self.config.max_len)[0])

    def decode_ids(self, ids: torch.Tensor) -> list[str]:
        return [self.vocabulary.decode(row) for row in ids.cpu()]

    def save(self, path: str | Path) -> None:
        """config.json and vocab.json (model.safetensors is written by the Trainer)."""
        path = Path(path)
        meta = {"kind": KIND, "format_version": FORMAT_VERSION, "text": to_dict(self.config), "train": to_dict(self.train)}
        write_json(path / CONFIG_FILE, {**meta, "classes": list(self.classes)} if self.classes else meta)
        save_vocabulary(path / VOCAB_FILE, self.vocabulary)


def load_text_model(path: str | Path, device: str = "cpu", weights: bool = True) -> TextModel:
    """Rebuild a saved sentence VAE from config.json, vocab.json and model.safetensors (weights=False:
    configs and vocabulary only, the networks freshly initialized)."""
    path = Path(path)
    meta = read_config(path, KIND, FORMAT_VERSION)
    # Models saved before bow_weight existed were trained without it (and have no bag-of-words head).
    config = from_dict(TextConfig, {"bow_weight": 0.0, **meta["text"]})
    train = from_dict(TrainConfig, meta["train"])
    vocabulary = load_vocabulary(path / VOCAB_FILE)
    classes = tuple(meta.get("classes", ()))
    model = TextModel(build_text_vae(config, len(vocabulary)), vocabulary, config, train, path, classes)
    if classes:
        model.labelled = LabelledVAE(model.vae, len(classes), config.label_weight)
    if weights:
        load_weights(model.trained, path / MODEL_FILE)
    model.trained.to(device).eval()
    return model


@torch.inference_mode()
def latent_means(vae: VAE, data: TokenBatches, batch_size: int = 256) -> torch.Tensor:
    """E[z|x] per sentence (N, latent_dim)."""
    device = next(vae.parameters()).device
    return torch.cat([vae.encode(x.to(device)).mean for x in data.batches(batch_size)])


@dataclass(frozen=True)
class TextEvaluation:
    nll: float  # importance-weighted -log p(x), nats per sentence
    perplexity: float  # exp(total NLL / total tokens), tokens counting each sentence's <eos>
    neg_elbo: float  # nats per sentence
    reconstruction: float  # E_q[log p(x|z)], nats per sentence
    kl: float  # KL(q(z|x) || p(z)), nats per sentence
    active_units: int  # latent dims with Cov_x(E[z|x]) > 0.01 (Burda et al. 2016)
    k: int
    n_sentences: int
    n_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def evaluate_text(vae: VAE, data: TokenBatches, k: int = 100, batch_size: int = 64, seed: int = 0,
                  progress: bool = False) -> TextEvaluation:
    """Test NLL (IWAE bound with k samples), perplexity per token, -ELBO, KL and active units; `progress` shows a
    bar with an ETA on a terminal."""
    torch.manual_seed(seed)
    vae.eval()
    device = next(vae.parameters()).device
    sums = torch.zeros(4, dtype=torch.float64)
    batches = progress_bar(data.batches(batch_size), total=-(-len(data) // batch_size), desc=f"IWAE NLL (k={k})",
                           enabled=progress, unit="batch")
    for x in batches:
        x = x.to(device)
        elbo = vae.elbo(x)
        nll = -vae.log_likelihood(x, k=k, chunk_size=max(1, 2048 // len(x)))
        sums += torch.stack([nll.sum(), -elbo.total().sum(), elbo.reconstruction.sum(), elbo.kl.sum()]).double().cpu()
    n, tokens = len(data), int((data.ids != PAD).sum())
    nll, neg_elbo, reconstruction, kl = (sums / n).tolist()
    return TextEvaluation(nll, math.exp(nll * n / tokens), neg_elbo, reconstruction, kl,
                          active_units(latent_means(vae, data)), k, n, tokens)
