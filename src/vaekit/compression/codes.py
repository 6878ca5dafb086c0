"""A quantized run's codes entropy-coded under its learned code prior (`vaekit compress` of a VQ or FSQ run).

The codes c (n, n_codes) of n images are ANS-coded with constriction, autoregressively: the symbol c_i of an image
is coded with the categorical p(c_i | c_<i) of the run's causal transformer (code_priors.CausalCodes). The cost is
-log2 p(c) bits per image plus a few bits of ANS overhead per file, the code prior's NLL that `vaekit eval` counts.

Determinism: an ANS decoder needs, bit for bit, the probabilities the encoder used. The decoder can only compute
p(c_i | c_<i) one position at a time, after decoding c_<i, so the encoder computes them the same way: images in
chunks of CHUNK, and for each chunk n_codes forward passes in position order, each over the same (rows, n_codes)
input (the codes known so far, zeros after them), under one thread in inference mode, softmax in float64. Both
sides then hand constriction the same float64 tables, which it turns into fixed-point ones deterministically
(`Categorical(perfect=False)`, the same setting on both sides). The symbols go position-major within a chunk:
chunk 0's c_0 of every row, then their c_1, ...; the decoder pops them in that order.
"""

from __future__ import annotations

import numpy as np
import torch

from ..code_priors import LearnedCodes
from .bbans import deterministic_torch

CHUNK = 256  # images per batch of forward passes: part of the format (the decoder must batch the same rows)


def _family():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def _probabilities(prior: LearnedCodes, known: torch.Tensor, i: int) -> np.ndarray:
    """p(c_i | c_<i) (rows, K) float64 from the codes known so far (rows, n_codes), zeros from position i on."""
    logits = prior.network(known)[:, i]  # (rows, K) float32
    return torch.softmax(logits.double(), -1).numpy()


def _chunks(n: int):
    return (slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK))


def encode_codes(prior: LearnedCodes, codes: np.ndarray) -> np.ndarray:
    """ANS words (uint32) of code indices (n, n_codes) under the autoregressive prior."""
    import constriction

    codes_t = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))
    symbols, tables = [], []
    with deterministic_torch():
        for rows in _chunks(len(codes_t)):
            known = torch.zeros_like(codes_t[rows])  # (rows, n_codes): what the decoder knows before position i
            for i in range(prior.n_codes):
                tables.append(_probabilities(prior, known, i))
                symbols.append(codes_t[rows, i].numpy())
                known[:, i] = codes_t[rows, i]
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.concatenate(symbols).astype(np.int32), _family(), np.concatenate(tables))
    return coder.get_compressed()


def decode_codes(prior: LearnedCodes, words: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """Code indices (n, n_codes) int64 back from `encode_codes`'s words, and whether the stack ended empty (it does
    unless the words are corrupt or the probabilities differ from the encoder's)."""
    import constriction

    coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
    codes = torch.zeros(n, prior.n_codes, dtype=torch.long)
    family = _family()
    with deterministic_torch():
        for rows in _chunks(n):
            known = torch.zeros_like(codes[rows])
            for i in range(prior.n_codes):
                known[:, i] = torch.from_numpy(coder.decode(family, _probabilities(prior, known, i)).astype(np.int64))
            codes[rows] = known
    return codes.numpy(), coder.is_empty()


def code_bits(prior: LearnedCodes, codes: np.ndarray) -> np.ndarray:
    """-log2 p(c) per image (n,) float64 under the prior: the ideal length of `encode_codes`'s output."""
    with deterministic_torch():
        nats = -prior.log_prob_codes(torch.from_numpy(np.asarray(codes, dtype=np.int64)))
    return nats.double().numpy() / np.log(2)
