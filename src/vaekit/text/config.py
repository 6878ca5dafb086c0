"""The sentence VAE's config (no torch import: the CLI builds its flags from it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import TrainConfig, check_values, option
from ..errors import ConfigError

CELLS = ("gru", "lstm")
KL_SCHEDULES = ("linear", "cyclical")


@dataclass(frozen=True)
class TextConfig:
    tokenizer: str = option("word", "word (split on spaces), wordpunct (words and punctuation) or char (small corpora)")
    lowercase: bool = option(True, "lower-case the text before tokenizing")
    max_vocab: int = option(10000, "vocabulary cap incl. <pad>/<unk>/<bos>/<eos>; rarer tokens become <unk>")
    min_count: int = option(1, "tokens seen fewer times become <unk>")
    max_len: int = option(64, "tokens per sentence incl. <eos>; longer sentences are cut (and counted)")
    embed_dim: int = option(128, "token embedding size (encoder and decoder)")
    cell: str = option("gru", "recurrent cell of the encoder and decoder: gru or lstm (Bowman et al.'s)")
    hidden: int = option(256, "recurrent state size (encoder per direction, decoder)")
    encoder_hidden: int = option(0, "the encoder's recurrent state size per direction, when it should differ from "
                                    "--hidden (0): z carries a few nats, so a smaller encoder can serve a large "
                                    "decoder at less cost per step")
    layers: int = option(1, "stacked recurrent layers of the decoder (Zaremba et al. 2014 used 2), with --dropout "
                            "between them too; z sets every layer's initial state")
    latent_dim: int = option(32, "size of z (Bowman et al. used 13 with an LSTM of 191); 0 fits a plain language "
                                 "model of the same sizes, the baseline a sentence VAE is measured against")
    dropout: float = option(0.0, "dropout on the decoder's input embeddings and output states in training "
                                 "(Zaremba et al. 2014), against overfitting when the decoder is large")
    tie_embeddings: bool = option(False, "share the decoder's input embedding with its output layer (Press & Wolf "
                                         "2017; Inan et al. 2017), through a linear map hidden -> embed-dim: "
                                         "fewer weights, less overfitting of large decoders")
    word_dropout: float = option(0.25, "probability of replacing a decoder input word by <unk> in training, "
                                       "against posterior collapse (Bowman et al. 2016, sec. 3.1)")
    bow_weight: float = option(0.0, "weight of the bag-of-words loss -log p(words of x | z) added in training "
                                    "(Zhao et al. 2017): z must encode the content words; reported NLL/PPL "
                                    "score the sentence alone")
    kl_schedule: str = option("linear", "linear: warm up over --kl-warmup epochs; cyclical: --kl-cycles "
                                        "ramps of beta from 0 over half a cycle each (Fu et al. 2019)")
    kl_cycles: int = option(4, "cycles of the cyclical KL schedule over the whole run")
    label_weight: float = option(50.0, "with --labelled: weight of the label term -log p(y|z) against the ELBO "
                                       "(alpha of Kingma et al. 2014; 50 beat 10 on the validation split of "
                                       "benchmarks/text.py)")
    labelled_per_batch: int = option(32, "with --labelled: labelled sentences (drawn with replacement) added to "
                                         "each batch, so a few labels are seen at every step")
    batch_by_length: bool = option(True, "train on batches of sentences of similar length (sorted within windows "
                                          "of 50 random batches), so the recurrent networks run over little padding")
    val_fraction: float = option(0.05, "share of the corpus held out for validation when no --val file is given")

    def validate(self) -> None:
        from ..data.text import TOKENIZERS  # the vocabulary's; imports torch, not at --help

        check_values(self)
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got '{self.tokenizer}'")
        if self.cell not in CELLS:
            raise ConfigError(f"--cell must be one of {', '.join(CELLS)}, got '{self.cell}'")
        if self.kl_schedule not in KL_SCHEDULES:
            raise ConfigError(f"--kl-schedule must be one of {', '.join(KL_SCHEDULES)}, got '{self.kl_schedule}'")
        for name in ("max_vocab", "min_count", "embed_dim", "hidden", "layers", "kl_cycles", "labelled_per_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.encoder_hidden < 0:
            raise ConfigError(f"--encoder-hidden must be >= 0 (0: the same as --hidden), got {self.encoder_hidden}")
        if self.latent_dim < 0:
            raise ConfigError(f"--latent-dim must be >= 0 (0 fits a plain language model), got {self.latent_dim}")
        if self.max_len < 2:
            raise ConfigError(f"--max-len must be at least 2 (a token and <eos>), got {self.max_len}")
        for name in ("bow_weight", "label_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.word_dropout < 1 or not 0 <= self.dropout < 1 or not 0 <= self.val_fraction < 1:
            raise ConfigError("--word-dropout, --dropout and --val-fraction must lie in [0, 1)")


# Training defaults for sentences, where they differ from images: warm-up against KL vanishing, clipping for RNNs.
TEXT_TRAIN = TrainConfig(epochs=10, batch_size=64, kl_warmup=2.0, grad_clip=5.0)
