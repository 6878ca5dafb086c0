"""Text in and out: sentence readers, a word- or character-level vocabulary saved as JSON, and
padded token tensors that the Trainer batches (each batch trimmed to its longest sentence)."""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError

TOKENIZERS = ("word", "wordpunct", "char")

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
_WORDPUNCT = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def tokenize(sentence: str, level: str, lowercase: bool = True) -> list[str]:
    """word: split on whitespace (keeps pre-tokenized corpora such as PTB as they are); wordpunct:
    words and punctuation marks apart; char: characters, spaces included."""
    text = sentence.lower() if lowercase else sentence
    if level == "word":
        return text.split()
    if level == "wordpunct":
        return _WORDPUNCT.findall(text)
    if level == "char":
        return list(" ".join(text.split()))
    raise ConfigError(f"unknown tokenizer '{level}': use one of {', '.join(TOKENIZERS)}")


@dataclass(frozen=True)
class Vocabulary:
    """Index <-> token. Indices 0-3 are <pad>, <unk>, <bos>, <eos>; rarer tokens than the cap map to <unk>."""

    tokens: tuple[str, ...]
    level: str = "word"
    lowercase: bool = True

    @classmethod
    def build(cls, sentences: list[str], level: str = "word", max_size: int = 10000, min_count: int = 1,
              lowercase: bool = True) -> Vocabulary:
        """The `max_size` most frequent tokens seen at least `min_count` times (specials included in the cap)."""
        if max_size <= len(SPECIALS):
            raise ConfigError(f"--max-vocab must exceed {len(SPECIALS)} (the special tokens), got {max_size}")
        counts = Counter(t for s in sentences for t in tokenize(s, level, lowercase))
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls(SPECIALS + tuple(ranked[:max_size - len(SPECIALS)]), level, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, sentences: list[str], max_len: int) -> tuple[torch.Tensor, int]:
        """(N, max_len) int64 ids, each sentence's tokens then <eos>, padded with 0; and how many
        sentences were cut to fit max_len (the cut ones keep their first max_len - 1 tokens)."""
        index, ids, cut = self.index, torch.zeros(len(sentences), max_len, dtype=torch.long), 0
        for row, sentence in enumerate(sentences):
            tokens = [index.get(t, UNK) for t in tokenize(sentence, self.level, self.lowercase)]
            cut += len(tokens) >= max_len
            tokens = tokens[:max_len - 1] + [EOS]
            ids[row, :len(tokens)] = torch.tensor(tokens)
        return ids, cut

    def decode(self, ids) -> str:
        """Tokens up to the first <eos>, joined (by spaces for word levels)."""
        words = []
        for i in (ids.tolist() if torch.is_tensor(ids) else ids):
            if i in (EOS, PAD):
                break
            if i != BOS:
                words.append(self.tokens[i])
        return ("" if self.level == "char" else " ").join(words)

    def to_json(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase, "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(tuple(data["tokens"]), data["level"], data["lowercase"])


# Batches per window of the shuffled order that batch_order sorts by length: wide enough that batches
# hold sentences of nearly one length (94% real tokens on PTB against 44% for random batches), narrow
# enough that each window is still a random draw of the corpus.
LENGTH_WINDOW = 50


class TokenBatches:
    """Padded sentences (N, T) for the Trainer: `[index]` returns those rows trimmed to the longest
    one, so a batch of short sentences costs no padding. With `by_length`, the Trainer's batches group
    sentences of similar length (`batch_order`)."""

    def __init__(self, ids: torch.Tensor, by_length: bool = False):
        self.ids, self.by_length = ids, by_length
        self.lengths = (ids != PAD).sum(1)

    def batch_order(self, order: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """The Trainer's shuffled `order` regrouped, when by_length, so that each batch holds sentences of
        similar length and the recurrent networks run over little padding: every LENGTH_WINDOW batches of
        `order` are sorted by length and cut into batches, and the full batches are shuffled (a short last
        batch stays last, where the Trainer expects it)."""
        if not self.by_length:
            return order
        windows = order.split(batch_size * LENGTH_WINDOW)
        grouped = torch.cat([w[self.lengths[w].argsort(stable=True)] for w in windows])
        full = len(order) // batch_size * batch_size
        batches = grouped[:full].view(-1, batch_size)[torch.randperm(full // batch_size, generator=generator)]
        return torch.cat([batches.flatten(), grouped[full:]])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index) -> torch.Tensor:
        return self.ids[index][:, :int(self.lengths[index].max())]

    def batches(self, batch_size: int):
        """Consecutive trimmed batches, in order."""
        for start in range(0, len(self), batch_size):
            yield self[torch.arange(start, min(start + batch_size, len(self)))]


def read_sentences(path: str | Path, column: str | None = None) -> list[str]:
    """One sentence per line of a text file, or the named column of a .csv/.tsv file; blank lines dropped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: pass a text file with one sentence per line, or a CSV with --column")
    if path.suffix.lower() in (".csv", ".tsv") or column is not None:
        rows = _read_table(path)
        if column is None or column not in rows[0]:
            raise ConfigError(f"{path} is a table: name its text column with --column (one of {', '.join(rows[0])})")
        sentences = [row[column] for row in rows]
    else:
        sentences = read_text(path).splitlines()
    sentences = [s.strip() for s in sentences if s.strip()]
    if not sentences:
        raise DataError(f"{path} holds no sentences: expected one sentence per line")
    return sentences


def read_labelled(path: str | Path, text_column: str | None = None,
                  label_column: str | None = None) -> tuple[list[str], list[str]]:
    """(sentences, labels) from lines 'sentence<TAB>label', or from two named columns of a CSV/TSV."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: pass lines 'sentence<TAB>label' or a CSV with --text-column/--label-column")
    if text_column is not None or label_column is not None:
        rows = _read_table(path)
        missing = [c for c in (text_column, label_column) if c is None or c not in rows[0]]
        if missing:
            raise ConfigError(f"{path}: give both --text-column and --label-column from {', '.join(rows[0])}")
        pairs = [(row[text_column], row[label_column]) for row in rows]
    else:
        pairs = []
        for number, line in enumerate(read_text(path).splitlines(), 1):
            if line.strip():
                if "\t" not in line:
                    raise DataError(f"{path} line {number} has no tab: expected 'sentence<TAB>label'")
                pairs.append(tuple(part.strip() for part in line.rsplit("\t", 1)))
    pairs = [(s, y) for s, y in pairs if s.strip() and y.strip()]
    if len({y for _, y in pairs}) < 2:
        raise DataError(f"{path} needs at least two distinct labels to train a classifier")
    return [s for s, _ in pairs], [y for _, y in pairs]


def read_text(path: Path) -> str:
    """A text file as UTF-8. Bytes that are not UTF-8 become U+FFFD (the token stays, as <unk> would), with a
    one-line warning saying how many lines hold them, so that a Latin-1 corpus is not taken in silently."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        lines = sum("\ufffd" in line for line in text.splitlines())
        warnings.warn(f"{path} is not UTF-8: {lines} line(s) hold bytes that became U+FFFD; convert it "
                      "(e.g. iconv -f latin1 -t utf-8)", stacklevel=3)
        return text


def _read_table(path: Path) -> list[dict]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = list(csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter))
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    return rows


def save_vocabulary(path: str | Path, vocabulary: Vocabulary) -> None:
    from ..io import write_json

    write_json(path, vocabulary.to_json())


def load_vocabulary(path: str | Path) -> Vocabulary:
    from ..checkpoint import read_json

    try:
        return Vocabulary.from_json(read_json(path))
    except (KeyError, TypeError):
        raise DataError(f"{path} is not a vaekit vocabulary: the model folder is damaged; refit") from None

