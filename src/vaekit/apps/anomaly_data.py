"""Data for the anomaly detector: per-column scaling of numeric tables, array checks, and the rows of
mixed-type tables (through the tabular app's TableTransformer). numpy only at import time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DataError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Standardizer:
    """x -> (x - mean) / scale per feature, fitted on training data; scale 1 where a feature is constant.
    Identity (mean 0, scale 1) for images. Saved as plain JSON lists."""

    mean: np.ndarray  # (*data_shape,)
    scale: np.ndarray  # (*data_shape,)

    @classmethod
    def fit(cls, x: np.ndarray, robust: bool = False) -> Standardizer:
        """x (N, D): per-column mean and standard deviation, or (robust) median and IQR / 1.349 (the
        standard deviation of a normal), falling back to the standard deviation where the IQR is 0."""
        import numpy as np
        mean, std = x.mean(0), x.std(0)
        if robust:
            q25, mean, q75 = np.quantile(x, [0.25, 0.5, 0.75], axis=0)
            std = np.where(q75 - q25 > 1e-12, (q75 - q25) / 1.349, std)
        return cls(mean.astype(np.float32), np.where(std > 1e-12, std, 1.0).astype(np.float32))

    @classmethod
    def identity(cls, data_shape: tuple[int, ...]) -> Standardizer:
        import numpy as np
        return cls(np.zeros(data_shape, np.float32), np.ones(data_shape, np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        import numpy as np
        return ((x - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        import numpy as np
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["scale"], np.float32))


def as_examples(x, source: str = "X") -> np.ndarray:
    """float32 (N, D) tables or (N, C, H, W) images from an array-like; uint8 images scaled by 1/255.
    DataError for other shapes, non-numeric or non-finite values."""
    import numpy as np

    from ..data.datasets import as_features

    x = np.asarray(x)
    if x.ndim == 1:
        raise DataError(f"{source} has shape {x.shape}; pass a 2-D array (N, D), e.g. x.reshape(-1, 1)")
    if len(x) == 0:
        raise DataError(f"{source} has no rows; pass at least one example")
    return as_features(x, source)


def is_mixed_table(X) -> bool:
    """True for a pandas DataFrame with a non-numeric (categorical, string, boolean, datetime) column."""
    dtypes = getattr(X, "dtypes", None)
    return dtypes is not None and hasattr(X, "columns") and any(
        getattr(t, "kind", "O") not in "iuf" for t in dtypes)


def mixed_rows(transformer, X) -> tuple[np.ndarray, np.ndarray]:
    """Transform a DataFrame X with a fitted TableTransformer: rows (N, D) float32 and a flag per row (N,)
    bool. A category (or a constant column's value) unseen at fit time has probability 0 under the
    model: such cells are replaced by a known value for the transform and their rows flagged, to be
    scored as the most anomalous."""
    import numpy as np

    from ..data.tables import python_scalar

    if not hasattr(X, "columns"):
        raise DataError("this detector was fitted on a mixed-type table: pass a pandas DataFrame "
                        "with the same columns")
    unseen, fixed = np.zeros(len(X), bool), {}
    for column in transformer.columns:
        if column.name not in X.columns or column.kind not in ("categorical", "constant"):
            continue
        cells = [python_scalar(v) for v in X[column.name]]
        known = set(column.categories) if column.kind == "categorical" else {column.value}
        bad = np.array([v not in known for v in cells], bool)
        if bad.any():
            fixed[column.name] = X[column.name].astype(object).where(~bad, next(iter(known)))
            unseen |= bad
    return transformer.transform(X.assign(**fixed) if fixed else X), unseen
