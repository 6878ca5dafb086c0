"""Sentence networks (Bowman et al. 2016, "Generating Sentences from a Continuous Space", sec. 3).

SentenceEncoder: token ids (batch, T) -> (batch, 2 * latent_dim), the loc and log-variance of q(z|x).
SentenceDecoder: the autoregressive p(x_t | x_<t, z). z sets the initial state and is fed with
every input word; teacher forcing in training, with word dropout on the inputs and dropout on the
embeddings and output states; tie_embeddings shares the input embedding with the output layer.
latent_dim=0 makes it a plain language model (the baseline of the same size).
Both take a GRU (default) or an LSTM (Bowman et al.'s cell). bow_weight > 0 adds, in training only,
the bag-of-words loss of Zhao, Zhao & Eskenazi (2017): an MLP from z alone must predict
the sentence's words, which makes z carry the content words and resists KL vanishing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from . import generate as decoding
from ..data.text import BOS, EOS, PAD, UNK

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}

# Decoder output rows (tokens) per output-layer chunk: bounds the (rows, vocab) logits held at once.
_TOKEN_CHUNK = 4096


class SentenceEncoder(nn.Module):
    """Embedding -> bidirectional GRU or LSTM over the real tokens -> Linear to (batch, 2 * latent_dim)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, latent_dim: int, cell: str = "gru"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.rnn = CELLS[cell](embed_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = (x != PAD).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        h = h[0] if isinstance(h, tuple) else h  # (2 directions, batch, hidden); an LSTM's cells are left out
        return self.out(torch.cat([h[0], h[1]], -1))


class NoEncoder(nn.Module):
    """The encoder of a plain language model (latent_dim=0): there is no z to infer, so no network to run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 0, device=x.device)


class SentenceDecoder(nn.Module):
    """GRU or LSTM decoder over a vocabulary, of one or more layers. Scoring uses the full softmax (the
    model learns to give <pad> and <bos> no mass); generation never emits them. Its recurrent state is one
    tensor (states, batch, hidden): a GRU's h per layer, or an LSTM's h per layer then c per layer, so
    decoding reorders either alike. With bow_weight > 0 (and a latent), training-mode log_prob adds
    bow_weight * bag_of_words_log_prob; eval mode scores the sentence alone."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, latent_dim: int, word_dropout: float = 0.0,
                 bow_weight: float = 0.0, dropout: float = 0.0, cell: str = "gru", tie_embeddings: bool = False,
                 layers: int = 1):
        super().__init__()
        self.vocab_size, self.latent_dim = vocab_size, latent_dim
        self.word_dropout, self.bow_weight = word_dropout, bow_weight
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = CELLS[cell](embed_dim + latent_dim, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0)
        self.init = nn.Linear(latent_dim, layers * hidden) if latent_dim else None
        self.project = nn.Linear(hidden, embed_dim) if tie_embeddings and hidden != embed_dim else nn.Identity()
        self.out = nn.Linear(embed_dim if tie_embeddings else hidden, vocab_size)
        if tie_embeddings:
            # one matrix as the input embedding and the output weights, at a scale fit for logits (Zaremba et al.)
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
            with torch.no_grad():
                self.embed.weight[PAD] = 0.0
            self.out.weight = self.embed.weight
        self.bow = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, vocab_size)) \
            if bow_weight > 0 and latent_dim else None
        never = torch.zeros(vocab_size, dtype=torch.bool)
        never[[PAD, BOS]] = True
        self.register_buffer("never", never, persistent=False)

    def initial_state(self, z: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(states, batch, hidden): every layer's h = tanh(W z + b), or zeros for the plain language model;
        an LSTM's cells start at zero."""
        layers, hidden = self.rnn.num_layers, self.rnn.hidden_size
        h = self.out.weight.new_zeros(layers, batch, hidden) if self.init is None \
            else torch.tanh(self.init(z)).view(batch, layers, hidden).transpose(0, 1)
        return torch.cat([h, torch.zeros_like(h)]) if isinstance(self.rnn, nn.LSTM) else h.contiguous()

    def recur(self, inputs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrent network over inputs (batch, T, features) from `state` -> outputs, last state."""
        if not isinstance(self.rnn, nn.LSTM):
            return self.rnn(inputs, state)
        h, c = state.chunk(2)  # (layers, batch, hidden) each
        out, (h, c) = self.rnn(inputs, (h.contiguous(), c.contiguous()))
        return out, torch.cat([h, c])

    def _inputs(self, tokens: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        emb = self.dropout(self.embed(tokens))  # (batch, T, embed)
        if self.init is None:
            return emb
        return torch.cat([emb, z.unsqueeze(1).expand(-1, tokens.shape[1], -1)], -1)

    def bag_of_words_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(words of x | z) = sum over x's tokens but <eos> of log softmax(MLP(z))[token], nats per
        sentence (batch,): each word an independent draw from one categorical given z, order ignored
        (the xBOW loss of Zhao, Zhao & Eskenazi 2017)."""
        log_p = F.log_softmax(self.bow(z), -1)  # (batch, vocab)
        words = (x != PAD) & (x != EOS)
        return log_p.gather(1, x).masked_fill(~words, 0.0).sum(1)

    def log_prob(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) per sentence (batch,) in nats, by teacher forcing; x (batch, T) ends each
        sentence with <eos> then <pad> (masked). In training mode, inputs are word-dropped to <unk> and
        the weighted bag-of-words term is added (a training objective, not a likelihood)."""
        inputs = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], 1)  # (batch, T)
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(inputs.shape, device=x.device) < self.word_dropout) & (inputs != PAD)
            drop[:, 0] = False
            inputs = inputs.masked_fill(drop, UNK)
        states, _ = self.recur(self._inputs(inputs, z), self.initial_state(z, len(x)))  # (batch, T, hidden)
        mask = x != PAD
        rows, targets = self.dropout(states[mask]), x[mask]  # (tokens, hidden), (tokens,)
        token_lp = torch.cat([-F.cross_entropy(self.logits(rows[i:i + _TOKEN_CHUNK]), targets[i:i + _TOKEN_CHUNK],
                                               reduction="none") for i in range(0, len(rows), _TOKEN_CHUNK)])
        log_px = token_lp.new_zeros(x.shape).masked_scatter(mask, token_lp).sum(1)  # fp32 under autocast too
        if self.training and self.bow is not None:
            log_px = log_px + self.bow_weight * self.bag_of_words_log_prob(x, z)
        return log_px

    def step(self, tokens: torch.Tensor, state: torch.Tensor, z: torch.Tensor | None = None):
        """One generation step: tokens (batch,), state (states, batch, hidden) -> logits (batch, vocab), state."""
        out, state = self.recur(self._inputs(tokens.unsqueeze(1), z), state)
        return self.logits(out[:, 0]).masked_fill(self.never, float("-inf")), state

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Decoder states (..., hidden) -> next-token logits (..., vocab)."""
        return self.out(self.project(states))

    def generate(self, z: torch.Tensor, max_len: int, method: str = "greedy", **options) -> torch.Tensor:
        """Token ids (batch, max_len) decoded from z (batch, latent_dim) by greedy decoding, temperature
        sampling or beam search (text.generate); what CategoricalSequence's distribution draws with."""
        return decoding.generate(self, z, max_len, method, **options)
