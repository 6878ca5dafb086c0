"""The quality report of synthetic rows against real ones (scores in [0, 1], higher is better,
except where noted), in the spirit of SDMetrics' QualityReport:

- column shapes: 1 - KS statistic (continuous), 1 - total variation distance (categorical); averaged.
- column pair trends: 1 - |r_real - r_synthetic| / 2 for continuous pairs (Pearson), and
  1 - TVD of the joint contingency table for the other pairs (continuous columns binned at the real
  data's deciles); averaged.
- ML efficacy (needs a held-out real table): a gradient-boosted model trained on synthetic rows and
  on real rows, both tested on the held-out rows (macro F1 for a categorical target, R^2 otherwise).
- privacy (needs held-out rows): distance to the closest real training record (DCR, mean
  per-column distance: |a - b| / range for numbers, 0/1 for categories) of synthetic rows and of
  held-out rows; copying the training set drives the synthetic DCR towards 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, optional_import
from ..data.tables import NUMERIC, numeric_values, detect_kind

BINS = 10


@dataclass(frozen=True)
class Quality:
    column_shapes: float
    column_pair_trends: float
    per_column: dict  # column -> shape score
    ml_efficacy: dict | None = None  # target, task, metric, real, synthetic
    privacy: dict | None = None  # dcr_synthetic, dcr_holdout (medians), ratio, share_closer_than_holdout_median, exact_copies

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """A markdown table of the headline scores."""
        rows = [("column shapes", f"{self.column_shapes:.3f}"), ("column pair trends", f"{self.column_pair_trends:.3f}")]
        if self.ml_efficacy:
            m = self.ml_efficacy
            rows.append((f"ML efficacy ({m['metric']} on '{m['target']}'): synthetic / real",
                         f"{m['synthetic']:.3f} / {m['real']:.3f}"))
        if self.privacy:
            p = self.privacy
            rows.append(("DCR median: synthetic / held-out real", f"{p['dcr_synthetic']:.4f} / {p['dcr_holdout']:.4f}"))
            rows.append(("share of synthetic rows nearer to train than the median held-out row",
                         f"{p['share_closer_than_holdout_median']:.3f}"))
        return "\n".join(["| score | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows])


class _Columns:
    """Column kinds of the real table and shared encodings (numbers as float, categories as codes)."""

    def __init__(self, real, synthetic):
        missing = [c for c in real.columns if c not in synthetic.columns]
        if missing:
            raise DataError(f"the synthetic table lacks column(s) {', '.join(map(str, missing))}: "
                            "sample it from a model fit on this real table")
        if len(real) == 0 or len(synthetic) == 0:
            raise DataError(f"cannot compare an empty table ({len(real)} real rows, {len(synthetic)} synthetic rows)")
        kinds = {c: detect_kind(real[c], str(c)) for c in real.columns}
        self.numeric = [c for c, k in kinds.items() if k in NUMERIC]
        self.categorical = [c for c, k in kinds.items() if k in ("categorical", "boolean")]
        self.labels = {c: sorted(_as_labels(real[c]).unique()) for c in self.categorical}

    def numbers(self, df, c) -> np.ndarray:
        return numeric_values(df[c], str(c)).to_numpy()

    def codes(self, df, c) -> np.ndarray:
        """Category codes by the real table's labels; unseen synthetic labels get len(labels)."""
        index = {v: i for i, v in enumerate(self.labels[c])}
        return np.array([index.get(v, len(index)) for v in _as_labels(df[c])])


def _as_labels(series):
    """Cells as strings, missing as '<missing>' (so a CSV round trip does not change a category)."""
    return series.astype(object).where(series.notna(), "<missing>").astype(str)


def _tvd(a: np.ndarray, b: np.ndarray, size: int) -> float:
    pa, pb = (np.bincount(x, minlength=size) / len(x) for x in (a, b))
    return 0.5 * float(np.abs(pa - pb).sum())


def _discrete(cols: _Columns, real, df, c) -> tuple[np.ndarray, int]:
    """Codes of a column for contingency tables: categories, or the real deciles (+ a missing bin)."""
    if c in cols.categorical:
        return cols.codes(df, c), len(cols.labels[c]) + 1
    edges = np.unique(np.nanquantile(cols.numbers(real, c), np.linspace(0, 1, BINS + 1)[1:-1]))
    values = cols.numbers(df, c)
    return np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values)), len(edges) + 2


def quality_report(real, synthetic, holdout=None, target: str | None = None, out_dir=None, seed: int = 0,
                   max_privacy_rows: int = 2000, name: str | None = None, progress: bool = False) -> Quality:
    """Score synthetic against real (DataFrames); holdout (real rows unseen in fitting) enables ML
    efficacy and privacy. With out_dir, writes quality.json, marginals.png and correlations.png, whose title line
    names the tables as `name` says (e.g. 'synthetic.csv vs adult.csv'). `progress` shows a bar with an ETA over
    the report's steps on a terminal."""
    from scipy.stats import ks_2samp

    from ..progress import progress_bar

    cols = _Columns(real, synthetic)
    steps = 2 + (2 if holdout is not None else 0) + (out_dir is not None)
    bar = progress_bar(total=steps, desc="quality report", enabled=progress, unit="step")
    per_column = {}
    for c in cols.numeric:
        r, s = cols.numbers(real, c), cols.numbers(synthetic, c)
        r, s = r[~np.isnan(r)], s[~np.isnan(s)]
        per_column[str(c)] = 1.0 - float(ks_2samp(r, s).statistic) if len(r) and len(s) else 0.0
    for c in cols.categorical:
        per_column[str(c)] = 1.0 - _tvd(cols.codes(real, c), cols.codes(synthetic, c), len(cols.labels[c]) + 1)
    bar.update()
    pairs = []
    used = cols.numeric + cols.categorical
    discrete = {c: (_discrete(cols, real, real, c), _discrete(cols, real, synthetic, c)) for c in used}
    for i, a in enumerate(used):
        for b in used[i + 1:]:
            if a in cols.numeric and b in cols.numeric:
                pairs.append(1.0 - abs(_pearson(cols, real, a, b) - _pearson(cols, synthetic, a, b)) / 2)
                continue
            (ra, na), (sa, _) = discrete[a]
            (rb, nb), (sb, _) = discrete[b]
            pairs.append(1.0 - _tvd(ra * nb + rb, sa * nb + sb, na * nb))
    bar.update()
    efficacy = privacy = None
    if holdout is not None:
        efficacy = _ml_efficacy(cols, real, synthetic, holdout, target, seed)
        bar.update()
        privacy = _privacy(cols, real, synthetic, holdout, seed, max_privacy_rows)
        bar.update()
    quality = Quality(float(np.mean(list(per_column.values()))) if per_column else float("nan"),
                      float(np.mean(pairs)) if pairs else float("nan"), per_column, efficacy, privacy)
    if out_dir is not None:
        from ..io import write_json

        write_json(Path(out_dir) / "quality.json", quality.to_dict())
        rows = f"{len(real):,} real and {len(synthetic):,} synthetic rows" + (f" ({name})" if name else "")
        save_marginals(Path(out_dir) / "marginals.png", cols, real, synthetic,
                       caption=f"real vs synthetic marginals | {rows}")
        save_correlations(Path(out_dir) / "correlations.png", cols, real, synthetic,
                          caption=f"correlations of the numeric columns | {rows}")
        bar.update()
    bar.close()
    return quality


def _pearson(cols: _Columns, df, a, b) -> float:
    x, y = cols.numbers(df, a), cols.numbers(df, b)
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 2 or x[ok].std() == 0 or y[ok].std() == 0:
        return 0.0
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _features(cols: _Columns, df, columns) -> np.ndarray:
    return np.stack([cols.numbers(df, c) if c in cols.numeric else cols.codes(df, c).astype(float)
                     for c in columns], axis=1)


def _ml_efficacy(cols: _Columns, real, synthetic, holdout, target, seed: int) -> dict:
    optional_import("sklearn", "the machine-learning efficacy score", "scikit-learn")
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score

    target = target if target is not None else real.columns[-1]
    if target not in cols.numeric + cols.categorical:
        raise DataError(f"target '{target}' is not a modelled column: use one of "
                        f"{', '.join(map(str, cols.numeric + cols.categorical))}")
    features = [c for c in cols.numeric + cols.categorical if c != target]
    is_cat = np.array([c in cols.categorical for c in features])
    classify = target in cols.categorical
    unmatched = _unmatched_labels(cols, holdout, target) if classify else {}

    def fit_score(train) -> float:
        x, x_test = _features(cols, train, features), _features(cols, holdout, features)
        if classify:
            y, y_test = cols.codes(train, target), cols.codes(holdout, target)
            if len(np.unique(y)) < 2:
                return 0.0
            model = HistGradientBoostingClassifier(categorical_features=is_cat, random_state=seed)
            return float(f1_score(y_test, model.fit(x, y).predict(x_test), average="macro"))
        y, y_test = cols.numbers(train, target), cols.numbers(holdout, target)
        ok = ~np.isnan(y)
        model = HistGradientBoostingRegressor(categorical_features=is_cat, random_state=seed)
        test_ok = ~np.isnan(y_test)
        return float(r2_score(y_test[test_ok], model.fit(x[ok], y[ok]).predict(x_test[test_ok])))

    return {"target": str(target), "task": "classification" if classify else "regression",
            "metric": "macro F1" if classify else "R2", "real": fit_score(real), "synthetic": fit_score(synthetic),
            **({"unmatched_holdout_labels": unmatched} if unmatched else {})}


def _unmatched_labels(cols: _Columns, holdout, target) -> dict[str, int]:
    """{label: rows} of the held-out target labels the real table never has, with one warning naming them: no model
    trained on the real labels can predict them, so F1 falls towards 0 however good the synthetic rows are."""
    labels = _as_labels(holdout[target])
    counts = labels[~labels.isin(cols.labels[target])].value_counts()
    if len(counts):
        import warnings

        shown = ", ".join(f"'{label}' ({n} rows)" for label, n in counts.head(5).items())
        known = ", ".join(f"'{label}'" for label in cols.labels[target][:5])
        warnings.warn(f"{int(counts.sum())} of {len(labels)} held-out rows have a '{target}' label the real table "
                      f"lacks: {shown}; the real table's are {known}: make the labels match (UCI's adult.test "
                      "writes '<=50K.' with a full stop) or the F1 score counts them all wrong", stacklevel=3)
    return {str(label): int(n) for label, n in counts.items()}


def _dcr_space(cols: _Columns, real, df) -> tuple[np.ndarray, np.ndarray]:
    """(numbers scaled by the real range, with missing flags; one-hot categories) of each row."""
    numbers, one_hot = [np.zeros((len(df), 0))], [np.zeros((len(df), 0))]
    for c in cols.numeric:
        r = cols.numbers(real, c)
        low, span = np.nanmin(r), (np.nanmax(r) - np.nanmin(r)) or 1.0
        v = (cols.numbers(df, c) - low) / span
        numbers += [np.nan_to_num(v, nan=0.0)[:, None], np.isnan(v)[:, None].astype(float)]
    for c in cols.categorical:
        one_hot.append(np.eye(len(cols.labels[c]) + 1)[cols.codes(df, c)])
    return np.concatenate(numbers, axis=1), np.concatenate(one_hot, axis=1)


def _nearest(query: tuple, reference: tuple, n_columns: int, chunk: int = 512) -> np.ndarray:
    """Distance to the closest reference row: mean over columns of |a - b| (numbers) or a != b (categories);
    category mismatches are counted as n_categorical - one_hot_a . one_hot_b (a matrix product)."""
    import torch

    (qn, qc), (rn, rc) = ([torch.from_numpy(a).float() for a in pair] for pair in (query, reference))
    out = []
    for i in range(0, len(qn), chunk):
        q_cat = qc[i:i + chunk]  # (chunk, one-hot width)
        d = torch.cdist(qn[i:i + chunk], rn, p=1) + q_cat.sum(1, keepdim=True) - q_cat @ rc.T  # (chunk, n_ref)
        out.append(d.min(1).values / max(1, n_columns))
    return torch.cat(out).numpy()


def _privacy(cols: _Columns, real, synthetic, holdout, seed: int, max_rows: int) -> dict:
    rng = np.random.default_rng(seed)

    def some(df, n):
        return df.iloc[rng.choice(len(df), min(n, len(df)), replace=False)]

    train = _dcr_space(cols, real, real)
    syn = _dcr_space(cols, real, some(synthetic, max_rows))  # ([rows, numbers], [rows, one-hot])
    held = _dcr_space(cols, real, some(holdout, max_rows))
    n = len(cols.numeric) + len(cols.categorical)
    to_train_syn, to_train_held = _nearest(syn, train, n), _nearest(held, train, n)
    dcr_syn, dcr_held = float(np.median(to_train_syn)), float(np.median(to_train_held))
    # About 0.5 when synthetic rows are as far from the training rows as unseen real rows are; 1 when copied.
    share = float(np.mean(to_train_syn < dcr_held))
    return {"dcr_synthetic": dcr_syn, "dcr_holdout": dcr_held, "ratio": dcr_syn / dcr_held if dcr_held else float("nan"),
            "share_closer_than_holdout_median": share, "exact_copies": float(np.mean(to_train_syn == 0))}


def save_marginals(path, cols: _Columns, real, synthetic, max_columns: int = 16, top: int = 10, caption: str = ""):
    """Real vs synthetic histograms (numbers) and bar charts (top categories), one panel per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import save_figure

    shown = (cols.numeric + cols.categorical)[:max_columns]
    n_cols = min(4, len(shown))
    n_rows = -(-len(shown) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.6 * n_rows), squeeze=False)
    for ax, c in zip(axes.flat, shown):
        if c in cols.numeric:
            r, s = cols.numbers(real, c), cols.numbers(synthetic, c)
            bins = np.histogram_bin_edges(r[~np.isnan(r)], bins=30)
            ax.hist(r[~np.isnan(r)], bins=bins, density=True, alpha=0.5, label="real")
            ax.hist(np.clip(s[~np.isnan(s)], bins[0], bins[-1]), bins=bins, density=True, alpha=0.5, label="synthetic")
        else:
            size = len(cols.labels[c]) + 1
            pr, ps = (np.bincount(cols.codes(df, c), minlength=size) / len(df) for df in (real, synthetic))
            order = np.argsort(-pr)[:top]
            x = np.arange(len(order))
            ax.bar(x - 0.2, pr[order], 0.4, label="real")
            ax.bar(x + 0.2, ps[order], 0.4, label="synthetic")
            names = cols.labels[c] + ["<unseen>"]
            ax.set_xticks(x, [names[i][:10] for i in order], rotation=60, fontsize=6)
        ax.set_title(str(c), fontsize=9)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(path, fig, caption or "real vs synthetic marginals")


def save_correlations(path, cols: _Columns, real, synthetic, caption: str = ""):
    """Pearson correlation matrices of the numeric columns: real, synthetic, |difference|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import save_figure

    names = cols.numeric
    if len(names) < 2:
        return None
    mats = [np.array([[_pearson(cols, df, a, b) if a != b else 1.0 for b in names] for a in names])
            for df in (real, synthetic)]
    fig, axes = plt.subplots(1, 3, figsize=(4.2 * 3, 4))
    for ax, mat, title, cmap, lim in zip(axes, [*mats, np.abs(mats[0] - mats[1])],
                                         ["real", "synthetic", "|real - synthetic|"],
                                         ["coolwarm", "coolwarm", "viridis"], [(-1, 1), (-1, 1), (0, 1)]):
        im = ax.imshow(mat, cmap=cmap, vmin=lim[0], vmax=lim[1])
        ax.set_xticks(range(len(names)), [str(n)[:12] for n in names], rotation=70, fontsize=7)
        ax.set_yticks(range(len(names)), [str(n)[:12] for n in names], fontsize=7)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(path, fig, caption or "correlations of the numeric columns")
