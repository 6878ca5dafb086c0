"""User-item interactions: read a log (CSV/TSV/Parquet/DataFrame), turn it into a sparse
users x items matrix, split it by the strong-generalization protocol of Liang et al. (2018),
and serve dense batches of sparse rows to the Trainer.

The users x items matrix is a scipy CSR matrix throughout; only batches of rows are densified.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from vaekit.errors import ConfigError, DataError
from vaekit.data.readers import is_number

# Column names recognised (lower case, without '_', '-' or spaces), in order of preference.
USER_COLUMNS = ("userid", "user", "uid", "customerid", "visitorid", "listenerid", "reviewerid", "u")
ITEM_COLUMNS = ("itemid", "item", "movieid", "artistid", "trackid", "songid", "productid", "bookid", "asin",
                "isbn", "sid", "iid", "movie", "artist", "track", "song", "product", "i")
RATING_COLUMNS = ("rating", "weight", "playcount", "plays", "count", "listencount", "score", "value", "clicks",
                  "quantity", "r")
WEIGHTINGS = ("binary", "count", "log")
# Files of item titles found beside an interaction log: MovieLens' movies.csv (movieId,title,genres), Last.fm's
# artists.dat (id, name, ...), MovieLens-100K's u.item
ITEM_FILES = ("movies.csv", "artists.dat", "items.csv", "movies.dat", "u.item")
TITLE_COLUMNS = ("title", "name", "itemname", "moviename", "artistname", "artist")
ROLE_TRAIN, ROLE_VAL, ROLE_TEST = 0, 1, 2


@dataclass(frozen=True)
class Interactions:
    """A users x items matrix (scipy CSR, float32) with the user's own ids for rows and columns."""

    matrix: sparse.csr_matrix
    users: np.ndarray  # (n_users,) str ids
    items: np.ndarray  # (n_items,) str ids


@dataclass(frozen=True)
class StrongSplit:
    """Strong generalization: `role` puts each user in train/val/test (0/1/2); for val and test
    users, `heldout` marks the stored entries to predict (the rest is folded in)."""

    role: np.ndarray  # (n_users,) int8
    heldout: np.ndarray  # (nnz,) bool, aligned with matrix.data

    def rows(self, matrix: sparse.csr_matrix, role: int, part: str = "all") -> sparse.csr_matrix:
        """The rows of users with `role`; part 'foldin' or 'heldout' keeps only those entries."""
        keep = {"all": None, "foldin": ~self.heldout, "heldout": self.heldout}[part]
        m = matrix if keep is None else sparse.csr_matrix((matrix.data * keep, matrix.indices, matrix.indptr),
                                                          shape=matrix.shape)
        m = m[np.flatnonzero(self.role == role)]
        m.eliminate_zeros()
        return m


class SparseRows:
    """Rows of a CSR matrix as a Trainer dataset: len() users, [index_tensor] -> (batch, items) float32."""

    def __init__(self, matrix: sparse.csr_matrix):
        self.matrix = sparse.csr_matrix(matrix, dtype=np.float32)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        rows = np.asarray(index.cpu() if torch.is_tensor(index) else index)
        return torch.from_numpy(self.matrix[rows].toarray())


# -- reading --------------------------------------------------------------------------------------
def read_table(source, sep: str = "auto") -> tuple[list[str] | None, dict[int, np.ndarray]]:
    """Read a CSV/TSV/.dat file, a Parquet file or a pandas DataFrame into (header or None,
    {column index: array of strings})."""
    if hasattr(source, "columns") and hasattr(source, "__getitem__"):  # a pandas DataFrame
        names = [str(c) for c in source.columns]
        return names, {i: np.asarray(source[c].to_numpy()).astype(str) for i, c in enumerate(source.columns)}
    path = Path(source)
    if not path.is_file():
        raise DataError(f"no such file {path}: pass a CSV/TSV/Parquet file of user, item[, rating] rows")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pandas as pd

            return read_table(pd.read_parquet(path))
        except ImportError:
            raise ConfigError("reading Parquet needs pandas and pyarrow: pip install 'vaekit[recommend]'") from None
    from .readers import read_bytes

    text = read_bytes(path).decode("utf-8-sig", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty: it needs user, item[, rating] rows")
    delimiter = _sniff(lines[:20]) if sep == "auto" else sep.encode().decode("unicode_escape")
    if len(delimiter) > 1:  # e.g. MovieLens-1M's '::'; csv needs one character
        lines = [line.replace(delimiter, "\x1f") for line in lines]
        delimiter = "\x1f"
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    width = len(rows[0])
    header = rows[0] if not all(is_number(v) for v in rows[0][:2]) else None
    body = rows[1:] if header else rows
    if width < 2 or any(len(r) != width for r in body):
        bad = next((i for i, r in enumerate(body) if len(r) != width), 0)
        raise DataError(f"{path} does not split into >= 2 equal columns with separator {delimiter!r} (row {bad + 1}): "
                        "pass --sep")
    columns = np.array(body, dtype=str).reshape(len(body), width)
    return header, {i: columns[:, i] for i in range(width)}


def read_item_titles(path) -> dict[str, str]:
    """{item id: title} from a file of items (a header naming an id and a title or name column, else the first two
    columns): MovieLens' movies.csv, Last.fm's artists.dat."""
    path = Path(path)
    header, columns = read_table(path, "," if path.suffix.lower() == ".csv" else "auto")
    item = _find_column(header, "auto", (*ITEM_COLUMNS, "id"), "item", 0)
    title = _find_column(header, "auto", TITLE_COLUMNS, "title", 1)
    return dict(zip(columns[item].tolist(), columns[title].tolist()))


def find_item_file(folder) -> Path | None:
    """The first of ITEM_FILES in `folder`, or None."""
    return next((Path(folder) / name for name in ITEM_FILES if (Path(folder) / name).is_file()), None)


def _sniff(lines: list[str]) -> str:
    if all("::" in line for line in lines):
        return "::"
    for candidate in ("\t", ",", ";", "|", " "):
        counts = {line.count(candidate) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return candidate
    raise DataError("cannot tell the field separator of the file: pass --sep (e.g. --sep , or --sep '\\t')")



def _find_column(header: list[str] | None, given: str, known: tuple[str, ...], role: str, default: int | None):
    """Index of a column from a name/index the user gave, else from known names, else `default`."""
    if given not in ("auto", "none"):
        if header and given in header:
            return header.index(given)
        if given.isdigit():
            return int(given)
        raise DataError(f"no column '{given}' for the {role}s; the columns are {header}: pass --{role}-col")
    if given == "none":
        return None
    if header:
        keys = [h.lower().replace("_", "").replace("-", "").replace(" ", "") for h in header]
        for name in known:
            if name in keys:
                return keys.index(name)
        if default is not None and role != "rating":
            raise DataError(f"cannot tell which column holds the {role}s among {header}: pass --{role}-col NAME")
        return None
    return default


def read_interactions(source, sep: str = "auto", user_col: str = "auto", item_col: str = "auto",
                      rating_col: str = "auto", min_rating: float = 0.0, weighting: str = "binary",
                      min_user_count: int = 5, min_item_count: int = 0) -> Interactions:
    """Read an interaction log and build the filtered users x items matrix.

    source: a CSV/TSV/.dat/Parquet path or a pandas DataFrame. Columns are given by name or
    0-based index, or 'auto' (guessed from common names; rating_col='none' ignores ratings).
    weighting: binary (1 per interaction), count (the rating/play count) or log (log(1 + count)).
    Rows with rating < min_rating are dropped; duplicates of a (user, item) pair are summed
    (binary weighting caps them at 1); then items with fewer than min_item_count users and users
    with fewer than min_user_count items are dropped, in that order (as the paper's code).
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown --weighting '{weighting}': use one of {', '.join(WEIGHTINGS)}")
    header, columns = read_table(source, sep)
    user_col = _find_column(header, user_col, USER_COLUMNS, "user", 0)
    item_col = _find_column(header, item_col, ITEM_COLUMNS, "item", 1)
    rating_col = _find_column(header, rating_col, RATING_COLUMNS, "rating", 2 if len(columns) > 2 else None)
    for col in (user_col, item_col, rating_col):
        if col is not None and col not in columns:
            raise DataError(f"column index {col} is out of range: the file has {len(columns)} columns")
    users, items = columns[user_col], columns[item_col]
    if rating_col is not None:
        try:
            ratings = columns[rating_col].astype(np.float64)
        except ValueError:
            raise DataError(f"the rating column {header[rating_col] if header else rating_col} is not numeric: "
                            "pass --rating-col none or the right column") from None
    elif weighting != "binary" or min_rating > 0:
        raise ConfigError("--weighting count/log and --min-rating need a rating column: pass --rating-col")
    else:
        ratings = np.ones(len(users))
    keep = ratings >= min_rating if min_rating > 0 else np.ones(len(users), bool)
    if not np.isfinite(ratings[keep]).all() or (ratings[keep] < 0).any():
        raise DataError("ratings must be finite and non-negative for implicit feedback: set --min-rating or "
                        "--weighting binary")
    users, items, ratings = users[keep], items[keep], ratings[keep]
    user_ids, user_index = np.unique(users, return_inverse=True)
    item_ids, item_index = np.unique(items, return_inverse=True)
    values = {"binary": np.ones_like(ratings), "count": ratings, "log": ratings}[weighting]
    matrix = sparse.csr_matrix((values.astype(np.float32), (user_index, item_index)),
                               shape=(len(user_ids), len(item_ids)))
    matrix.sum_duplicates()
    if weighting == "binary":
        matrix.data[:] = 1.0
    elif weighting == "log":
        matrix.data = np.log1p(matrix.data)
    matrix.eliminate_zeros()
    item_keep = np.flatnonzero(np.diff(matrix.tocsc().indptr) >= max(min_item_count, 1))
    matrix = matrix[:, item_keep]
    user_keep = np.flatnonzero(np.diff(matrix.indptr) >= min_user_count)
    matrix = sparse.csr_matrix(matrix[user_keep])
    if matrix.nnz == 0:
        raise DataError(f"no user has >= {min_user_count} interactions after "
                        "filtering: lower --min-user-count/--min-rating or give more data")
    return Interactions(matrix, user_ids[user_keep], item_ids[item_keep])


# -- the strong-generalization split ----------------------------------------------------------------
def strong_split(data: Interactions, heldout_fraction: float = 0.1, heldout_prop: float = 0.2,
                 seed: int = 0) -> tuple[Interactions, StrongSplit]:
    """Hold out whole users for validation and test (Liang et al. 2018, sec. 4.2).

    A random heldout_fraction of users each go to validation and test; items are restricted to
    those the training users touched; for each held-out user with >= 5 interactions a random
    heldout_prop of them is to be predicted from the rest (fold-in), as the paper's code does.
    Returns the item-restricted data and the split.
    """
    rng = np.random.default_rng(seed)
    n_users = data.matrix.shape[0]
    if n_users < 3:
        raise DataError(f"{n_users} users cannot be split into train, validation and test users: give more data "
                        "or lower --min-user-count")
    n_heldout = max(1, int(round(heldout_fraction * n_users)))
    role = np.full(n_users, ROLE_TRAIN, np.int8)
    order = rng.permutation(n_users)
    role[order[:n_heldout]], role[order[n_heldout:2 * n_heldout]] = ROLE_VAL, ROLE_TEST
    train_items = np.flatnonzero(np.diff(data.matrix[role == ROLE_TRAIN].tocsc().indptr) > 0)
    matrix = sparse.csr_matrix(data.matrix[:, train_items])
    matrix.sort_indices()
    counts = np.diff(matrix.indptr)
    row = np.repeat(np.arange(n_users), counts)  # (nnz,)
    rank = np.empty(matrix.nnz, np.int64)
    by_row = np.lexsort((rng.random(matrix.nnz), row))
    rank[by_row] = np.arange(matrix.nnz) - matrix.indptr[row[by_row]]
    n_out = np.where(counts >= 5, (heldout_prop * counts).astype(np.int64), 0)
    heldout = (rank < n_out[row]) & (role[row] != ROLE_TRAIN)
    restricted = Interactions(matrix, data.users, data.items[train_items])
    return restricted, StrongSplit(role, heldout)
