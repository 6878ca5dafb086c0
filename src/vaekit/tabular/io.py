"""Reading and writing tables (CSV, TSV, Parquet) as pandas DataFrames; writes are atomic."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import DataError, optional_import

SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def _pandas():
    return optional_import("pandas", "tables", "pandas")


def read_table(path, na_values=None):
    """A DataFrame from a .csv/.tsv (header row; extra na_values such as ['?'] mark missing cells) or .parquet."""
    pd, path = _pandas(), Path(path)
    if not path.exists():
        raise DataError(f"{path} not found: pass the path of a .csv or .parquet table")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown table format '{suffix}': use {', '.join(SUFFIXES)}")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", skipinitialspace=True,
                           na_values=list(na_values or []))
    except ImportError as err:
        raise DataError(f"reading Parquet needs pyarrow ({err}): pip install pyarrow, or use CSV") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read {path}: {str(err).splitlines()[0]}") from None


def write_table(df, path, na_rep: str = "") -> Path:
    """Write df to .csv/.tsv/.parquet by its suffix, atomically; `na_rep` marks a missing cell in a CSV/TSV."""
    from ..io import atomic_write

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown table format '{suffix}': use {', '.join(SUFFIXES)}")
    if suffix in (".parquet", ".pq"):
        buffer = io.BytesIO()
        try:
            df.to_parquet(buffer, index=False)
        except ImportError as err:
            raise DataError(f"writing Parquet needs pyarrow ({err}): pip install pyarrow, or use .csv") from None
        atomic_write(path, buffer.getvalue())
    else:
        atomic_write(path, df.to_csv(index=False, sep="\t" if suffix == ".tsv" else ",", na_rep=na_rep))
    return path
