"""A likelihood for mixed-type rows: Gaussian, categorical (softmax) and Bernoulli terms, summed per row.

A row x (D,) is laid out in blocks, as a fitted `vaekit.tabular.TableTransformer` writes it:
a "gaussian" block is one real value, a "categorical" block of width k is a one-hot vector, a
"bernoulli" block is one value in {0, 1} (a boolean or a missing-value flag). The decoder emits
exactly D numbers per row, block by block: the loc of each Gaussian, the k logits of each
categorical, the logit of each Bernoulli. Gaussian scales are learned per column, independent of z
(as TVAE's sigmas). log_prob is in nats per row, normalizing constants included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from ..errors import ConfigError, DataError
from .base import Likelihood

BLOCK_KINDS = ("gaussian", "categorical", "bernoulli")


class MixedDistribution(Distribution):
    """p(x|z) over one row: independent Gaussian, categorical and Bernoulli blocks.

    loc/logits: (*batch, D) decoder output; batch_shape is `batch`, event_shape (D,).
    """

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, params: torch.Tensor, likelihood: "MixedLikelihood"):
        self.params, self.lik = params, likelihood
        super().__init__(params.shape[:-1], params.shape[-1:], validate_args=False)

    def _category_logits(self, p: torch.Tensor) -> torch.Tensor:
        """(..., n_categorical, max_k) logits from params p (..., D), padded with -inf."""
        return p[..., self.lik.cat_index].masked_fill(~self.lik.cat_mask, -math.inf)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per row in nats; x (..., D) broadcasts against the batch (e.g. (K, batch) samples).

        Written on the whole row with 0/1 column weights and block matrices rather than by indexing
        columns, and with few full-row operations: on CPU, gathers, their backward scatters and each
        operation's dispatch cost more than the arithmetic of a table row.
        """
        lik = self.lik
        p, x = torch.broadcast_tensors(self.params, x)
        total = torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
        if lik.gauss.numel():  # -(x - loc)^2 / (2 scale^2) - log scale - log(2 pi) / 2 per Gaussian column
            log_scale = lik.log_scale.clamp(min=lik.log_min_scale)  # (n_gaussian,)
            precision = (0.5 * torch.exp(-2 * log_scale)) @ lik.gauss_blocks  # (D,) 0 off Gaussian columns
            total = total - (x - p).square() @ precision - (log_scale.sum() + lik.gauss.numel() * 0.5 * math.log(
                2 * math.pi))
        if lik.bern.numel():  # log Bernoulli(x; sigmoid(p)) = x p - softplus(p)
            total = total - F.softplus(p) @ lik.bern_weight
        if lik.bern.numel() or lik.cat_columns.numel():  # x p: the Bernoulli term and the one-hot's chosen logit
            total = total + (x * p) @ lik.picked_weight
        if lik.cat_columns.numel():  # minus each block's logsumexp, shifted by the block's max
            with torch.no_grad():
                columns = p.reshape(-1, p.shape[-1]).T.contiguous()  # (D, rows): reduced over a leading dim
                index = lik.cat_block_of.unsqueeze(-1).expand_as(columns)
                top = torch.full((len(lik.cat_index) + 1, columns.shape[1]), -math.inf, dtype=p.dtype,
                                 device=p.device).scatter_reduce_(0, index, columns, "amax")
                top = top[:-1].T.reshape(*p.shape[:-1], -1)  # (..., n_categorical) each block's max
                shift = torch.where(lik.cat_column_mask, top @ lik.cat_blocks.T, p)  # p itself off the blocks
            total = total - torch.log(torch.exp(p - shift) @ lik.cat_blocks).sum(-1) - top.sum(-1)
        return total

    @property
    def mean(self) -> torch.Tensor:
        """Gaussian locs, Bernoulli probabilities, categorical probabilities, in the row layout (*batch, D)."""
        lik, p = self.lik, self.params
        out = p.clone()
        out[..., lik.bern] = torch.sigmoid(p[..., lik.bern])
        if lik.cat_columns.numel():
            out[..., lik.cat_columns] = torch.softmax(self._category_logits(p), -1)[..., lik.cat_mask]
        return out

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw in the row layout (*sample_shape, *batch, D): one-hot categoricals, 0/1 flags."""
        lik = self.lik
        p = self.params.expand(*sample_shape, *self.params.shape)
        out = torch.zeros_like(p)
        noise = torch.randn(p[..., lik.gauss].shape, generator=generator, device=p.device, dtype=p.dtype)
        out[..., lik.gauss] = p[..., lik.gauss] + lik.scale() * noise
        u = torch.rand(p[..., lik.bern].shape, generator=generator, device=p.device, dtype=p.dtype)
        out[..., lik.bern] = (u < torch.sigmoid(p[..., lik.bern])).to(p.dtype)
        if lik.cat_columns.numel():
            logits = self._category_logits(p)
            u = torch.rand(logits.shape, generator=generator, device=p.device, dtype=p.dtype)
            choice = (logits - torch.log(-torch.log(u.clamp_min(1e-20)))).argmax(-1)  # Gumbel-max
            picked = lik.cat_index[torch.arange(len(lik.cat_index), device=p.device), choice]  # (..., n_cat)
            out.scatter_(-1, picked, 1.0)
        return out


class MixedLikelihood(Likelihood):
    """p(x|z) for rows of mixed blocks; `blocks` is a sequence of (kind, width) with kind in
    BLOCK_KINDS (width 1 for gaussian and bernoulli). Data and decoder output are (batch, D),
    D = sum of widths.
    """

    def __init__(self, blocks: Sequence[tuple[str, int]], min_scale: float = 0.01):
        blocks = [(str(kind), int(width)) for kind, width in blocks]
        for kind, width in blocks:
            if kind not in BLOCK_KINDS:
                raise ConfigError(f"unknown block kind '{kind}': use one of {', '.join(BLOCK_KINDS)}")
            if width < 1 or (kind != "categorical" and width != 1):
                raise ConfigError(f"a {kind} block cannot have width {width}")
        if not blocks:
            raise ConfigError("a mixed likelihood needs at least one block")
        width = sum(w for _, w in blocks)
        super().__init__((width,))
        self.blocks = blocks
        starts = [sum(w for _, w in blocks[:i]) for i in range(len(blocks))]
        gauss = [s for s, (k, _) in zip(starts, blocks) if k == "gaussian"]
        bern = [s for s, (k, _) in zip(starts, blocks) if k == "bernoulli"]
        cats = [(s, w) for s, (k, w) in zip(starts, blocks) if k == "categorical"]
        max_k = max((w for _, w in cats), default=1)
        # (n_categorical, max_k): column index of each category, padded with the block's first column.
        index = [[s + min(j, w - 1) for j in range(max_k)] for s, w in cats]
        mask = [[j < w for j in range(max_k)] for _, w in cats]
        self.register_buffer("gauss", torch.tensor(gauss, dtype=torch.long), persistent=False)
        self.register_buffer("bern", torch.tensor(bern, dtype=torch.long), persistent=False)
        self.register_buffer("cat_index", torch.tensor(index, dtype=torch.long).view(len(cats), max_k),
                             persistent=False)
        self.register_buffer("cat_mask", torch.tensor(mask, dtype=torch.bool).view(len(cats), max_k),
                             persistent=False)
        cat_cols = [s + j for s, w in cats for j in range(w)]
        self.register_buffer("cat_columns", torch.tensor(cat_cols, dtype=torch.long), persistent=False)
        # 0/1 column weights (D,) and block matrices: (n_gaussian, D) places each Gaussian's log-scale,
        # (D, n_categorical) sums each categorical block's columns.
        def weight(columns):
            return torch.zeros(width).index_fill_(0, torch.tensor(columns, dtype=torch.long), 1.0)

        self.register_buffer("bern_weight", weight(bern), persistent=False)
        self.register_buffer("picked_weight", weight(bern + cat_cols), persistent=False)
        self.register_buffer("gauss_blocks", torch.eye(width)[gauss].view(len(gauss), width), persistent=False)
        block_of = torch.full((width,), len(cats), dtype=torch.long)  # (D,) categorical block of each column
        for i, (s, w) in enumerate(cats):
            block_of[s:s + w] = i
        self.register_buffer("cat_block_of", block_of, persistent=False)  # n_categorical off the blocks
        self.register_buffer("cat_blocks", F.one_hot(block_of, len(cats) + 1)[:, :-1].float(), persistent=False)
        self.register_buffer("cat_column_mask", block_of < len(cats), persistent=False)
        self.log_scale = nn.Parameter(torch.zeros(len(gauss)))
        self.log_min_scale = math.log(min_scale)

    def scale(self) -> torch.Tensor:
        """Per-Gaussian-column standard deviation (n_gaussian,), floored at min_scale."""
        return self.log_scale.clamp(min=self.log_min_scale).exp()

    def distribution(self, params: torch.Tensor) -> MixedDistribution:
        return MixedDistribution(params, self)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return MixedDistribution(params, self).mean

    def check_data(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.data_shape[0]:
            raise DataError(f"rows have {x.shape[-1]} values but the model expects {self.data_shape[0]}: "
                            "transform the table with the model's own transformer")
        if self.bern.numel() and not torch.all((x[..., self.bern] == 0) | (x[..., self.bern] == 1)):
            raise DataError("a Bernoulli (boolean or missing-flag) column holds values other than 0 and 1")
        if self.cat_columns.numel():
            one_hot = x[..., self.cat_index] * self.cat_mask
            if not torch.all(one_hot.sum(-1) == 1):
                raise DataError("a categorical block is not one-hot: transform the table with the model's transformer")
