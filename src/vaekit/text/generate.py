"""Decoding sentences from a SentenceDecoder given z: greedy, temperature sampling and beam search.

Every function returns token ids (batch, max_len): the sentence, <eos>, then <pad>.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..data.text import BOS, EOS, PAD

METHODS = ("greedy", "sample", "beam")


@torch.no_grad()
def generate(decoder, z: torch.Tensor | None, max_len: int, method: str = "greedy", temperature: float = 1.0,
             beam_size: int = 5, generator: torch.Generator | None = None, batch: int | None = None) -> torch.Tensor:
    """Decode z (batch, latent_dim) (None with `batch` for a plain language model) into token ids."""
    if method not in METHODS:
        raise ConfigError(f"unknown decoding method '{method}': use one of {', '.join(METHODS)}")
    if method == "sample" and not temperature > 0:
        raise ConfigError(f"--temperature must be positive, got {temperature}")
    if method == "beam":
        if beam_size < 1:
            raise ConfigError(f"--beam-size must be a positive integer, got {beam_size}")
        return _beam(decoder, z, max_len, beam_size, batch)
    n = len(z) if z is not None else batch
    device = decoder.out.weight.device
    state = decoder.initial_state(z, n)
    tokens = torch.full((n,), BOS, dtype=torch.long, device=device)
    out = torch.full((n, max_len), PAD, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(max_len):
        logits, state = decoder.step(tokens, state, z)
        if t == max_len - 1:
            tokens = torch.full_like(tokens, EOS)
        elif method == "greedy":
            tokens = logits.argmax(-1)
        else:
            tokens = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
        out[:, t] = tokens.masked_fill(done, PAD)
        done |= tokens == EOS
        if bool(done.all()):
            break
    return out


def _beam(decoder, z: torch.Tensor | None, max_len: int, k: int, batch: int | None) -> torch.Tensor:
    """Beam search for the most probable sentence (summed log-probabilities, no length penalty)."""
    n = len(z) if z is not None else batch
    device = decoder.out.weight.device
    zk = z.repeat_interleave(k, 0) if z is not None else None  # (n * k, latent)
    state = decoder.initial_state(zk, n * k)
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    seqs = torch.full((n, k, max_len), PAD, dtype=torch.long, device=device)
    done = torch.zeros(n, k, dtype=torch.bool, device=device)
    tokens = torch.full((n * k,), BOS, dtype=torch.long, device=device)
    for t in range(max_len):
        logits, state = decoder.step(tokens, state, zk)
        logp = torch.log_softmax(logits, -1).view(n, k, -1)  # (n, k, vocab)
        if t == max_len - 1:  # force an end
            logp = torch.where(torch.arange(logp.shape[-1], device=device) == EOS, 0.0, float("-inf")).expand_as(logp)
        logp = torch.where(done.unsqueeze(-1), torch.where(torch.arange(logp.shape[-1], device=device) == PAD,
                                                           0.0, float("-inf")), logp)
        best, flat = (scores.unsqueeze(-1) + logp).view(n, -1).topk(k, -1)  # (n, k)
        beam, token = flat // logp.shape[-1], flat % logp.shape[-1]
        seqs = seqs.gather(1, beam.unsqueeze(-1).expand(-1, -1, max_len)).clone()
        seqs[:, :, t] = token
        done = done.gather(1, beam) | (token == EOS)
        scores = best
        states, hidden = state.shape[0], state.shape[-1]  # a GRU's h, or an LSTM's h and c
        state = state.view(states, n, k, hidden).gather(2, beam.view(1, n, k, 1).expand(states, n, k, hidden)) \
            .view(states, n * k, hidden)
        tokens = token.view(-1)
        if bool(done.all()):
            break
    return seqs[torch.arange(n, device=device), scores.argmax(-1)]
