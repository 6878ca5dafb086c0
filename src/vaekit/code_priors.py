"""A learned prior over a quantizer's codes: p(c) = prod_i p(c_i | c_<i) over the n_codes code indices of a latent,
so that a VQ or FSQ model samples like a generative model and has a rate in honest bits (van den Oord et al. 2017,
sec. 3.2, fit a PixelCNN over the codes after the VQ-VAE).

vaekit's encoders end in a Linear (networks.py), so a quantized latent is a sequence of n_codes codes with no
spatial grid, for conv and MLP designs alike: no locality for a masked-conv PixelCNN to use. A small causal
transformer (Vaswani et al. 2017, decoder-only) sees every earlier code from its first layer, in any order the
Linear left them. `CausalCodes` is that network; `LearnedCodes` is the `Prior` built on it, replacing
`UniformCodes`: KL(q || p) = -log p(c) at the encoder's codes, so the VAE's ELBO, importance-weighted NLL and
bits/dim count the codes' bits under this prior, and its draws are ancestral samples.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical, Distribution

from .bottlenecks import Quantizer
from .errors import ConfigError
from .priors import Prior


class CausalCodes(nn.Module):
    """Logits (batch, n_codes, K) of p(c_i | c_<i) for codes (batch, n_codes): position i reads a start symbol and
    codes 0..i-1 only (a causal attention mask over inputs shifted one place right)."""

    def __init__(self, n_codes: int, codebook_size: int, width: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        if width % heads:
            raise ConfigError(f"the code prior's --width {width} must be a multiple of its --heads {heads}")
        self.n_codes, self.codebook_size = n_codes, codebook_size
        self.embed = nn.Embedding(codebook_size + 1, width)  # the last symbol starts every sequence
        self.position = nn.Parameter(torch.randn(n_codes, width) * 0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codebook_size))
        mask = torch.full((n_codes, n_codes), float("-inf")).triu(1)  # row i attends to columns <= i
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(codes[:, :1], self.codebook_size)
        inputs = torch.cat([start, codes[:, :-1]], 1)  # (batch, n_codes): position i holds c_{i-1}
        h = self.embed(inputs) + self.position  # (batch, n_codes, width)
        return self.head(self.blocks(h, mask=self.mask))


class LearnedCodes(Prior):
    """p(z) over a quantizer's latents: an autoregressive model of their code indices (`CausalCodes`), with the
    quantizer's codebook to turn codes into latents. log p(z) and the KL are in nats per example."""

    def __init__(self, quantizer: Quantizer, network: CausalCodes):
        super().__init__()
        if (network.n_codes, network.codebook_size) != (quantizer.n_codes, quantizer.codebook_size):
            raise ConfigError(f"a code prior over {network.n_codes} codes of {network.codebook_size} does not fit a "
                              f"quantizer of {quantizer.n_codes} codes of {quantizer.codebook_size}: train it again")
        self.latent_dim, self.n_codes = quantizer.latent_dim, quantizer.n_codes
        # Tuples, not submodules: the codebook is saved once, as the posterior's, and the network beside the run
        # (fitted after it), so that a VAE with this prior keeps the state dict, and the weights' hash, it trained with.
        self._quantizer, self._network = (quantizer,), (network,)

    @property
    def network(self) -> CausalCodes:
        return self._network[0]

    def _apply(self, fn, recurse: bool = True):
        # .to(), .cpu(), .cuda(), .double() ... of the VAE reach the held network too, which is no submodule (above);
        # the quantizer is the posterior's, a submodule already.
        if recurse:
            self.network._apply(fn)
        return super()._apply(fn, recurse)

    @property
    def quantizer(self) -> Quantizer:
        return self._quantizer[0]

    def forward(self) -> Distribution:
        raise ConfigError("an autoregressive code prior has no one distribution to return: use its log_prob or sample")

    def log_prob_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(c) in nats for code indices (..., n_codes), shape codes.shape[:-1]."""
        flat = codes.reshape(-1, self.n_codes)
        logits = self.network(flat)  # (rows, n_codes, K)
        log_p = Categorical(logits=logits).log_prob(flat).sum(-1)
        return log_p.view(codes.shape[:-1])

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob_codes(self.quantizer.codes_of(z))

    def kl(self, qz: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(c) at the codes of the point mass qz (its entropy is 0), (batch,)."""
        return -self.log_prob_codes(qz.codes)

    def kl_terms(self, qz: Distribution, z: torch.Tensor) -> torch.Tensor:
        return self.kl(qz)[:, None]

    @torch.no_grad()
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n ancestral draws of code indices (n, n_codes), one position at a time."""
        device = self.network.position.device
        codes = torch.zeros(n, self.n_codes, dtype=torch.long, device=device)
        for i in range(self.n_codes):
            probs = self.network(codes)[:, i].float().softmax(-1)  # (n, K); positions > i do not reach i
            codes[:, i] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return codes

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.quantizer.lookup(self.sample_codes(n, generator))
