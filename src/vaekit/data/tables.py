"""TableTransformer: a fitted, JSON-saved map between a pandas DataFrame and float rows for the VAE.

Per column kind (detected, or overridden):
- continuous / integer / datetime: standardized, one Gaussian value; or, with
  normalization="modes", mode-specific normalization (Xu et al. 2019, CTGAN sec. 4.2): a Gaussian
  mixture per column, the row's most likely mode as a one-hot block and its value in that mode's
  standard units (one mode, i.e. standardized, where one Gaussian explains the column as well by BIC).
  TabularVAE's default is "modes"; this low-level fit's is "standard". On the way back: rounding for
  integers and clipping to the fitted range.
- categorical (strings, codes, pandas categories; missing is its own category): one one-hot block.
  With max_integer_levels > 0, an integer column with at most that many distinct values is
  categorical too (a rating's exact levels, not a rounded Gaussian).
- boolean: one 0/1 value.
- constant (a single value or all missing): no block; reproduced as is on the way back.
A numeric column with missing values gets a 0/1 missing flag; the missing cells are filled with the
column mean before normalization. Every block is listed by `blocks()` for `MixedLikelihood`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError, DataError

NORMALIZATIONS = ("modes", "standard")  # of continuous columns; TabularVAE's default first
FORMAT = "vaekit.tabular.transformer/1"
FLOAT32_MAX = 3.4028234663852886e38
KINDS = ("continuous", "integer", "datetime", "categorical", "boolean", "constant")
NUMERIC = ("continuous", "integer", "datetime")
JUNK_SHARE = 0.9  # an object column whose non-missing cells parse as numbers this often is numeric with junk


def check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"--normalization must be {' or '.join(NORMALIZATIONS)}, got '{normalization}'")


@dataclass
class Column:
    """One fitted column. Numbers are in the column's own units (datetime: ns since the epoch)."""

    name: str
    kind: str
    dtype: str  # the input dtype, restored on the way back
    has_missing: bool = False
    categories: list = field(default_factory=list)  # categorical: the values (None = missing)
    value: object = None  # constant: the value (None = all missing)
    mean: float = 0.0
    std: float = 1.0
    low: float = 0.0  # fitted range, for clipping
    high: float = 0.0
    modes: list = field(default_factory=list)  # [(weight, mean, std), ...] with normalization="modes"
    step: float = 0.0  # values are multiples of this (integer: 1; datetime: the coarsest of day, h, min, s, ns)

    def blocks(self) -> list[tuple[str, int]]:
        if self.kind in NUMERIC:
            value = [("gaussian", 1)] + ([("categorical", len(self.modes))] if len(self.modes) > 1 else [])
            return value + ([("bernoulli", 1)] if self.has_missing else [])
        return {"categorical": [("categorical", len(self.categories))], "boolean": [("bernoulli", 1)]}.get(self.kind, [])


def python_scalar(value):
    """A JSON-able Python scalar from a pandas/numpy cell; missing becomes None."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def numeric_values(series, name: str):
    """The column as float64 (datetimes as ns); junk text raises DataError."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        ns = series.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
        ns[series.isna().to_numpy()] = np.nan
        return pd.Series(ns, index=series.index)
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    values = pd.to_numeric(series, errors="coerce")
    junk = values.isna() & series.notna()
    if junk.any():
        examples = ", ".join(repr(v) for v in series[junk].astype(str).unique()[:3])
        raise DataError(f"column '{name}' is numeric but {int(junk.sum())} cells are not numbers (e.g. {examples}): "
                        f"clean them, or treat it as categorical with --categorical {name}")
    values = values.astype("float64")
    extreme = values.abs() > FLOAT32_MAX  # infinities too
    if extreme.any():
        row = values.index[extreme.to_numpy()][0]
        raise DataError(f"column '{name}' holds {values[row]:g} (row {row}), beyond the float32 range (+-3.4e38) the "
                        "model computes in: fix or drop such cells")
    return values


def detect_kind(series, name: str) -> str:
    """The kind of a column from its dtype and values (see the module docstring)."""
    import pandas as pd

    present = series.dropna()
    if len(present) == 0 or (present.nunique() == 1 and len(present) == len(series)):
        return "constant"
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        values = numeric_values(present, name).to_numpy()  # raises on cells the model cannot hold
        return "integer" if np.all(np.mod(values, 1) == 0) else "continuous"
    parsed = pd.to_numeric(present, errors="coerce")
    share = parsed.notna().mean()
    if share == 1:
        return detect_kind(parsed, name)
    if share >= JUNK_SHARE:
        numeric_values(series, name)  # raises, naming the junk
    return "categorical"


class TableTransformer:
    """Fit on a DataFrame, then transform rows to (N, D) float32 and back. Save/load as JSON."""

    def __init__(self, columns: list[Column], normalization: str = "standard", notes: list[str] | None = None):
        self.columns, self.normalization, self.notes = columns, normalization, notes or []

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, df, categorical=(), continuous=(), datetime=(), normalization: str = "standard",
            max_categories: int = 100, max_modes: int = 10, max_integer_levels: int = 0,
            seed: int = 0) -> "TableTransformer":
        """Detect or take each column's kind and fit its encoding.

        categorical/continuous/datetime: column names whose detected kind is overridden.
        normalization: "standard" or "modes" (mode-specific, as TVAE; TabularVAE's default).
        max_categories: a categorical column with more distinct values is an error.
        max_integer_levels: a detected integer column with at most this many distinct values is
        categorical (its exact values and their frequencies, not a rounded Gaussian); 0: never
        (TabularVAE passes its config's, 10 by default).
        """
        import pandas as pd

        check_normalization(normalization)
        if len(df) == 0 or len(df.columns) == 0:
            raise DataError(f"the table is empty ({len(df)} rows, {len(df.columns)} columns): pass a table with data")
        overrides = {**{c: "categorical" for c in categorical}, **{c: "continuous" for c in continuous},
                     **{c: "datetime" for c in datetime}}
        unknown = sorted(set(overrides) - set(map(str, df.columns)))
        if unknown:
            raise ConfigError(f"no column named {', '.join(unknown)}: the columns are {', '.join(map(str, df.columns))}")
        columns, notes = [], []
        for name in df.columns:
            series = df[name]
            kind = overrides.get(str(name)) or detect_kind(series, str(name))
            if str(name) not in overrides and kind == "integer" and series.nunique() <= max_integer_levels:
                kind = "categorical"
                notes.append(f"column '{name}' is an integer with {series.nunique()} distinct values: modelled as "
                             f"categorical (--max-integer-levels {max_integer_levels}; 0 keeps it a rounded number)")
            if kind == "datetime":
                series = pd.to_datetime(series, errors="coerce")
            if kind != "constant" and series.dropna().nunique() <= 1 and not (series.isna().any() and kind == "categorical"):
                kind = "constant" if series.notna().all() or series.isna().all() else "categorical"
            column = Column(str(name), kind, str(df[name].dtype), bool(series.isna().any()))
            if kind == "constant":
                column.value = python_scalar(series.dropna().iloc[0]) if series.notna().any() else None
                notes.append(f"column '{name}' is " + ("all missing" if column.value is None else
                             f"constant ({column.value!r})") + ": it is not modelled and is copied to every row")
            elif kind == "categorical":
                counts = series.value_counts(dropna=False)
                if len(counts) > max_categories:
                    raise DataError(f"column '{name}' has {len(counts)} distinct values, more than --max-categories "
                                    f"{max_categories}: treat it as numeric with --continuous {name}, drop it, "
                                    "or raise --max-categories")
                column.categories = [python_scalar(v) for v in counts.index]
            elif kind in NUMERIC:
                values = numeric_values(series, str(name))
                column.mean, column.std = float(values.mean()), float(values.std(ddof=0)) or 1.0
                column.low, column.high = float(values.min()), float(values.max())
                column.step = _step(values.dropna().to_numpy(), kind)
                if normalization == "modes":
                    column.modes = _fit_modes(values.dropna().to_numpy(), max_modes, seed)
            columns.append(column)
        if all(c.kind == "constant" for c in columns):
            raise DataError("every column is constant or all missing: there is nothing to model")
        return cls(columns, normalization, notes)

    # -- the row layout --------------------------------------------------------------------------
    def blocks(self) -> list[tuple[str, int]]:
        """(kind, width) of each block of a transformed row, for MixedLikelihood."""
        return [block for column in self.columns for block in column.blocks()]

    @property
    def width(self) -> int:
        return sum(w for _, w in self.blocks())

    def transform(self, df) -> np.ndarray:
        """Rows (N, D) float32. Unseen categories, missing columns or junk raise DataError."""
        missing = [c.name for c in self.columns if c.name not in df.columns]
        if missing:
            raise DataError(f"the table lacks column(s) {', '.join(missing)} that the model was fit on")
        if len(df) == 0:
            raise DataError("the table is empty: pass at least one row")
        parts = [_transform_column(c, df[c.name]) for c in self.columns if c.kind != "constant"]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def inverse_transform(self, rows: np.ndarray):
        """A DataFrame with the fitted columns, dtypes and category sets from rows (N, D).

        Categorical and mode blocks take their argmax; missing flags above 0.5 give missing cells."""
        import pandas as pd

        rows = np.asarray(rows, dtype=np.float64)
        out, start = {}, 0
        for column in self.columns:
            width = sum(w for _, w in column.blocks())
            out[column.name] = _inverse_column(column, rows[:, start:start + width], len(rows))
            start += width
        return pd.DataFrame(out)

    # -- saving ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "normalization": self.normalization, "notes": self.notes,
                "columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict) -> "TableTransformer":
        if data.get("format") != FORMAT:
            raise ConfigError(f"transformer format {data.get('format')!r} is not {FORMAT!r}: refit the model")
        return cls([Column(**c) for c in data["columns"]], data["normalization"], data.get("notes", []))


def _fit_modes(values: np.ndarray, max_modes: int, seed: int, max_rows: int = 5000) -> list:
    """[(weight, mean, std)] of a Dirichlet-process Gaussian mixture (CTGAN's settings: concentration
    0.001, 100 iterations), modes with weight > 0.005; fitted on at most max_rows values.

    [] (one Gaussian: the column is standardized) when the mixture keeps one mode, or when it does not
    explain the values better than one Gaussian by the Bayesian information criterion: in 100
    iterations the mixture splits even a Gaussian column into up to max_modes overlapping modes.
    """
    from .table_modes import fit_dp_mixture

    rng = np.random.default_rng(seed)
    fit_on = values if len(values) <= max_rows else rng.choice(values, max_rows, replace=False)
    n_components = int(min(max_modes, len(np.unique(fit_on))))
    if n_components < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means may find fewer distinct clusters than asked
        weights, means, variances = fit_dp_mixture(fit_on, n_components, concentration=0.001, max_iter=100,
                                                   seed=seed)
    modes = [(float(w), float(m), float(math.sqrt(v)) or 1.0)
             for w, m, v in zip(weights, means, variances) if w > 0.005]
    if len(modes) < 2:
        return []
    w, m, s = (np.array(v) for v in zip(*modes))
    w = w / w.sum()
    log_mixture = np.logaddexp.reduce(np.log(w) - np.log(s) - 0.5 * ((fit_on[:, None] - m) / s) ** 2, axis=1)
    scale = fit_on.std() or 1.0
    log_single = -np.log(scale) - 0.5 * ((fit_on - fit_on.mean()) / scale) ** 2
    gain = log_mixture.sum() - log_single.sum()  # nats; the 0.5 log(2 pi) terms cancel
    extra_parameters = 3 * (len(modes) - 1)  # a weight, a mean and a scale per further mode
    return modes if gain > 0.5 * extra_parameters * math.log(len(fit_on)) else []


def _step(values: np.ndarray, kind: str) -> float:
    """The rounding step of integer and datetime columns (0: none)."""
    if kind == "integer":
        return 1.0
    if kind == "datetime":
        for unit in (86_400e9, 3_600e9, 60e9, 1e9):
            if np.all(np.mod(values, unit) == 0):
                return unit
        return 1.0
    return 0.0


def _mode_of(column: Column, values: np.ndarray) -> np.ndarray:
    """Index of the most probable mode of each value (N,)."""
    w, m, s = (np.array(v) for v in zip(*column.modes))
    log_post = np.log(w) - np.log(s) - 0.5 * ((values[:, None] - m) / s) ** 2
    return log_post.argmax(1)


def _transform_column(column: Column, series) -> np.ndarray:
    import pandas as pd

    n = len(series)
    if column.kind == "categorical":
        index = {v: i for i, v in enumerate(column.categories)}
        present, uniques = pd.factorize(series, use_na_sentinel=False)  # (N,) into the distinct cells
        cells = [python_scalar(v) for v in uniques]
        codes = np.array([index.get(v, -1) for v in cells], dtype=np.int64).reshape(-1)[present]
        if (codes < 0).any():
            unseen = sorted({repr(v) for v in cells if index.get(v, -1) < 0})
            raise DataError(f"column '{column.name}' has values unseen when the model was fit: "
                            f"{', '.join(unseen[:5])}: map them to known categories or refit on data that has them")
        return np.eye(len(column.categories))[codes]
    if column.kind == "boolean":
        if series.isna().any():
            raise DataError(f"column '{column.name}' has missing values but had none when the model was fit: "
                            "fill them, or refit on data with missing values")
        return series.astype(bool).to_numpy(dtype=np.float64)[:, None]
    if column.kind == "datetime":
        series = pd.to_datetime(series, errors="coerce")
    values = numeric_values(series, column.name).to_numpy()
    missing = np.isnan(values)
    if missing.any() and not column.has_missing:
        raise DataError(f"column '{column.name}' has missing values but had none when the model was fit: "
                        "fill them, or refit on data with missing values")
    values = np.where(missing, column.mean, values)
    if column.modes:
        mode = _mode_of(column, values)
        _, m, s = (np.array(v) for v in zip(*column.modes))
        parts = [((values - m[mode]) / s[mode])[:, None], np.eye(len(column.modes))[mode]]
    else:
        parts = [((values - column.mean) / column.std)[:, None]]
    if column.has_missing:
        parts.append(missing.astype(np.float64)[:, None])
    return np.concatenate(parts, axis=1).reshape(n, -1)


def _inverse_column(column: Column, block: np.ndarray, n: int):
    import pandas as pd

    if column.kind == "constant":
        return pd.Series([column.value] * n, dtype=column.dtype if column.value is not None else "object")
    if column.kind == "categorical":
        values = pd.Series([column.categories[i] for i in block.argmax(1)], dtype="object")
        return _restore_dtype(values, column.dtype)
    if column.kind == "boolean":
        return pd.Series(block[:, 0] > 0.5)
    if column.modes:
        _, m, s = (np.array(v) for v in zip(*column.modes))
        mode = block[:, 1:1 + len(column.modes)].argmax(1)
        values = block[:, 0] * s[mode] + m[mode]
    else:
        values = block[:, 0] * column.std + column.mean
    values = np.clip(values, column.low, column.high)
    if column.step:
        values = np.round(values / column.step) * column.step
    missing = block[:, -1] > 0.5 if column.has_missing else np.zeros(n, dtype=bool)
    if column.kind == "datetime":
        series = pd.Series(pd.to_datetime(np.where(missing, np.nan, values)))
        # pandas 3 parses to microseconds where pandas 2 used nanoseconds: give back the input's resolution
        return _restore_dtype(series, column.dtype) if column.dtype.startswith("datetime64") else series
    series = pd.Series(np.where(missing, np.nan, values))
    if column.kind == "integer":
        series = series.astype("Int64") if missing.any() or column.has_missing else series.astype("int64")
    return _restore_dtype(series, column.dtype)


def _restore_dtype(series, dtype: str):
    """Cast back to the input dtype where that loses nothing (int32, float32, category, string)."""
    if dtype == "object" or (series.isna().any() and dtype.startswith(("int", "uint", "bool"))):
        return series
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):
        return series
