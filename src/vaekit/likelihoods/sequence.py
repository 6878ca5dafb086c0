"""A categorical likelihood over token sequences: p(x|z) = prod_t Cat(x_t | x_<t, z).

An autoregressive decoder needs the target tokens (teacher forcing), while VAE.decode(z) sees z
only. So the VAE's decoder passes z through (nn.Identity) and this likelihood owns the
autoregressive network: `distribution(z)` returns a SequenceDistribution that holds the network
and z, and scores any x by teacher forcing. log_prob is in nats per sentence, padding masked.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution

from ..errors import DataError
from .base import Likelihood


class SequenceDistribution(Distribution):
    """p(x|z) over sentences of token ids; batch_shape is z's leading shape.

    log_prob(x): x (batch, T) or z's full leading shape + (T,); broadcast against z
    (e.g. z (k, batch, latent) from importance sampling) -> (*lead,) nats.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, network: nn.Module, z: torch.Tensor, max_len: int):
        self.network, self.z, self.max_len = network, z, max_len
        super().__init__(batch_shape=z.shape[:-1], event_shape=(max_len,), validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lead = self.z.shape[:-1]
        x = x.expand(*lead, x.shape[-1]).reshape(-1, x.shape[-1])  # (prod(lead), T)
        z = self.z.flatten(0, -2) if self.z.shape[-1] else None
        return self.network.log_prob(x, z).view(lead)

    def decode(self, method: str = "greedy", **options) -> torch.Tensor:
        """Token ids (*lead, max_len) by greedy decoding, temperature sampling or beam search."""
        lead = self.z.shape[:-1]
        z = self.z.flatten(0, -2)
        return self.network.generate(z, self.max_len, method, **options).view(*lead, self.max_len)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        if len(sample_shape):
            raise NotImplementedError("draw one sentence per z; repeat z for more")
        return self.decode("sample")

    @property
    def mode(self) -> torch.Tensor:
        """The greedy sentence (an approximation of the most probable one)."""
        return self.decode("greedy")


class CategoricalSequence(Likelihood):
    """p(x|z) for sentences of token ids (batch, T) with 0 as padding.

    network: a module with `log_prob(x, z) -> (batch,)` nats, `generate(z, max_len, method, **options) ->
    (batch, max_len)` token ids and `vocab_size` (text.SentenceDecoder).
    params_per_value is the vocabulary size: the logits per token, which is what bounds memory.
    """

    def __init__(self, network: nn.Module, max_len: int):
        super().__init__((max_len,))
        self.network = network
        self.params_per_value = network.vocab_size

    def distribution(self, params: torch.Tensor) -> SequenceDistribution:
        """params: z itself, (*batch, latent_dim)."""
        return SequenceDistribution(self.network, params, self.data_shape[0])

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """A sequence has no useful mean: the greedy sentence (batch, max_len) stands for it."""
        return self.distribution(params).mode

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (params,)

    def check_data(self, x: torch.Tensor) -> None:
        if x.is_floating_point() or x.is_complex():
            raise DataError(f"token ids must be integers, got {x.dtype}: encode sentences with the vocabulary")
        if len(x) and (int(x.min()) < 0 or int(x.max()) >= self.params_per_value):
            raise DataError(f"token ids lie in [{int(x.min())}, {int(x.max())}] but the vocabulary has "
                            f"{self.params_per_value} entries: encode with the model's own vocabulary")
