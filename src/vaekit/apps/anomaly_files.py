"""Files for the anomaly detector: chunked table reading, the CLI verbs as functions
(fit_file, score_file, evaluate_file), metrics and the evaluation plots.

CSV files (optionally gzipped) are read `chunk_rows` rows at a time, so scoring and evaluation
stream files that do not fit in memory; .npy/.npz and image folders are read whole.
Imports stay light (numpy inside the functions): the CLI imports this module for --help.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import check_count
from ..errors import ConfigError, DataError
from ..saved import check_new_folder, check_output_file, check_output_folder, clear_folder
from .anomaly import VAEAnomalyDetector
from .anomaly_data import as_examples

if TYPE_CHECKING:
    import numpy as np


TABLE_SUFFIXES = (".csv", ".csv.gz")


@dataclass(frozen=True)
class Chunk:
    """Rows read from a file: features (n, *data_shape) float32 and raw labels (n,) str or None."""

    x: np.ndarray
    labels: np.ndarray | None



def _label_index(header: list[str] | None, label_column: str | None, path) -> int | None:
    if label_column is None:
        return None
    if header is not None and label_column in header:
        return header.index(label_column)
    if header is None and label_column.lstrip("-").isdigit():
        return int(label_column)
    names = ", ".join(header[:8]) if header else "none (no header row)"
    raise DataError(f"{path} has no label column '{label_column}' (columns: {names}): pass --label-column "
                    "with a column name, or a 0-based index for files without a header")


def _table_chunks(path: Path, chunk_rows: int, label_column: str | None, progress: bool):
    """Yield (header, Chunk) for successive blocks of `chunk_rows` rows of a CSV (optionally gzipped),
    holding only one block in memory. A progress bar follows the bytes read."""
    import csv
    import gzip
    import io
    from itertools import islice

    from ..progress import progress_bar

    raw = open(path, "rb")
    stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
    rows = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    bar = progress_bar(total=path.stat().st_size, desc=f"reading {path.name}", enabled=progress, unit="B",
                       unit_scale=True)
    try:
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path} is empty; pass a CSV file with rows of numbers")
        header = [c.strip() for c in first] if not all(map(_is_number, first)) else None
        label = _label_index(header, label_column, path)
        pending = [] if header else [first]
        line = 1 + (header is not None)
        while block := pending + list(islice(rows, chunk_rows - len(pending))):
            pending = []
            yield header, _parse_block(block, label, header, path, line)
            line += len(block)
            bar.update(raw.tell() - bar.n)
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise DataError(f"cannot read {path} ({err}): save it as a UTF-8 CSV file (gzip allowed)") from None
    finally:
        bar.close()
        raw.close()


def _parse_block(block: list[list[str]], label: int | None, header, path, first_line: int) -> Chunk:
    import numpy as np
    labels = None
    if label is not None:
        labels = np.array([row[label].strip() if len(row) > label else "" for row in block])
        block = [row[:label] + row[label + 1:] for row in block]
    try:
        x = np.array(block, dtype=np.float32)
    except ValueError:
        raise _bad_cell(block, header, label, path, first_line) from None
    if x.ndim != 2:
        raise DataError(f"{path} has rows of different lengths near line {first_line}; make every row the same length")
    return Chunk(x, labels)


def _bad_cell(block, header, label, path, first_line) -> DataError:
    names = [h for i, h in enumerate(header) if i != label] if header else None
    for offset, row in enumerate(block):
        for column, cell in enumerate(row):
            if not _is_number(cell):
                name = repr(names[column]) if names and column < len(names) else column
                return DataError(f"{path} line {first_line + offset} column {name} holds {cell.strip()!r}, not a "
                                 "number: the anomaly detector reads numeric tables; drop or one-hot encode that column")
    return DataError(f"{path} near line {first_line} has rows of different lengths; make every row the same length")


def read_chunks(path, chunk_rows: int = 10000, label_column: str | None = None, progress: bool = False):
    """Yield (column names or None, Chunk) from a CSV (streamed in `chunk_rows` blocks), .npy/.npz
    (one block; labels from the file's `y`) or an image folder (one block, labels = class index)."""
    import numpy as np

    from ..data.readers import read_arrays, read_image_folder

    check_count("--chunk-rows", chunk_rows)
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file or folder {path}; check the path")
    if path.name.lower().endswith(TABLE_SUFFIXES):
        yield from _table_chunks(path, chunk_rows, label_column, progress)
        return
    x, y = read_image_folder(path)[:2] if path.is_dir() else read_arrays(path)
    yield None, Chunk(as_examples(x, str(path)), None if y is None else np.asarray(y).astype(str))


def is_anomaly(labels: np.ndarray, normal_label: str) -> np.ndarray:
    """0/1 ground truth from raw labels: anything other than `normal_label` is an anomaly."""
    import numpy as np
    normal = np.char.strip(labels.astype(str)) == normal_label
    if _is_number(normal_label):
        numbers = np.array([float(v) if _is_number(v) else np.nan for v in labels])
        normal |= numbers == float(normal_label)
    return (~normal).astype(np.int64)


def fit_file(data, out, label_column: str | None = None, normal_label: str | None = None, overwrite: bool = False,
             **params) -> Path:
    """Fit a VAEAnomalyDetector on a file and save it to `out` (a folder holding a saved model is refused unless
    `overwrite`). With `label_column`, only the rows labelled `normal_label` (default "0") are used (and the
    label column is dropped). Returns `out`."""
    import numpy as np

    if normal_label is not None and label_column is None:
        raise ConfigError("--normal-label picks the normal rows by their label: add --label-column")
    normal_label = "0" if normal_label is None else normal_label
    check_new_folder(out, overwrite)
    header, parts = None, []
    for header, chunk in read_chunks(data, label_column=label_column):
        parts.append(chunk.x if chunk.labels is None or label_column is None
                     else chunk.x[is_anomaly(chunk.labels, normal_label) == 0])
    x = np.concatenate(parts)
    if len(x) < 2:
        raise DataError(f"{data} has {len(x)} normal rows; fitting needs at least 2 (check --normal-label)")
    detector = VAEAnomalyDetector(**params).fit(x)
    if header is not None:
        label = _label_index(header, label_column, data)
        detector.feature_names_ = [h for i, h in enumerate(header) if i != label]
    clear_folder(out, overwrite)
    return detector.save(out)


def _scored_chunks(detector: VAEAnomalyDetector, data, chunk_rows: int, label_column: str | None,
                   score: str | None, progress: bool):
    """Yield (Chunk, scores) over a file, checking its columns against those seen at fit time."""
    expected = getattr(detector, "feature_names_", None)
    for header, chunk in read_chunks(data, chunk_rows, label_column, progress):
        names = header and [h for i, h in enumerate(header) if i != _label_index(header, label_column, data)]
        if expected and names and names != expected:
            raise DataError(f"{data} has columns {names[:5]}... but the detector was fitted on {expected[:5]}...: "
                            "pass a file with the same columns in the same order")
        yield chunk, detector.decision_function(chunk.x, score)


def score_file(detector_dir, data, out, chunk_rows: int = 10000, label_column: str | None = None,
               score: str | None = None, progress: bool = True) -> Path:
    """Write `out` (CSV: row, score, anomaly 0/1) for every row of `data`, streaming it in chunks of
    `chunk_rows` rows so the input never has to fit in memory."""
    from ..io import atomic_open

    out = check_output_file(out)
    detector = VAEAnomalyDetector.load(detector_dir)
    next(read_chunks(data, chunk_rows, label_column), None)  # the file's mistakes before the output is opened
    with atomic_open(out, "w") as f:
        f.write("row,score,anomaly\n")
        row = 0
        for chunk, scores in _scored_chunks(detector, data, chunk_rows, label_column, score, progress):
            flags = scores > detector.threshold_
            f.writelines(f"{row + i},{s:.6g},{int(a)}\n" for i, (s, a) in enumerate(zip(scores, flags)))
            row += len(scores)
    return out


@dataclass(frozen=True)
class AnomalyMetrics:
    """Ranking quality (ROC-AUC, average precision) and the quality of the 0/1 flags at the threshold."""

    n: int
    anomalies: int
    roc_auc: float
    average_precision: float
    threshold: float
    precision: float
    recall: float
    f1: float


def anomaly_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> AnomalyMetrics:
    """Metrics of scores (higher = more anomalous) against 0/1 labels y (1 = anomaly)."""
    import numpy as np

    from ..errors import optional_import

    sk = optional_import("sklearn.metrics", "anomaly evaluation", "scikit-learn")

    if len(np.unique(y)) < 2:
        raise DataError("the labels hold only one class: evaluation needs normal and anomalous rows "
                        "(check --label-column and --normal-label)")
    p, r, f1, _ = sk.precision_recall_fscore_support(y, scores > threshold, average="binary", zero_division=0)
    return AnomalyMetrics(len(y), int(y.sum()), float(sk.roc_auc_score(y, scores)),
                          float(sk.average_precision_score(y, scores)), float(threshold), float(p), float(r), float(f1))


def save_evaluation_plots(out_dir: Path, y: np.ndarray, scores: np.ndarray, metrics: AnomalyMetrics) -> tuple[Path, Path]:
    """roc.png (ROC curve with its AUC) and scores.png (score histograms of normal and anomalous rows,
    with the threshold)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from ..plotting import save_figure

    fpr, tpr, _ = roc_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"VAE (AUC {metrics.roc_auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    roc = save_figure(out_dir / "roc.png", fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    low, q25, q75, high = np.quantile(scores, [0.001, 0.25, 0.75, 0.995])
    high = max(high, metrics.threshold)
    shift, xlabel = 0.0, "anomaly score (clipped to the 0.1-99.5% range)"
    if high - q75 > 20 * (q75 - q25):  # heavy tail: log-spaced bins over score - min + 1
        shift, xlabel = 1 - low, "anomaly score - min + 1 (log scale, clipped to the 0.1-99.5% range)"
        bins = np.geomspace(1, high + shift, 60)
        ax.set_xscale("log")
    else:
        bins = np.linspace(low, high, 60)
    for label, name in ((0, "normal"), (1, "anomaly")):
        part = scores[y == label]
        ax.hist(np.clip(part + shift, bins[0], bins[-1]), bins, alpha=0.6, weights=np.full(len(part), 1 / len(part)),
                label=name)
    ax.axvline(metrics.threshold + shift, color="k", ls="--", label="threshold")
    ax.set(xlabel=xlabel, ylabel="share of the group's rows", title="Scores")
    ax.legend()
    return roc, save_figure(out_dir / "scores.png", fig)


def evaluate_file(detector_dir, data, label_column: str | None = None, normal_label: str | None = None, out=None,
                  chunk_rows: int = 10000, score: str | None = None, progress: bool = True):
    """Score a labelled file (streamed) and write metrics.json, roc.png and scores.png to `out`
    (default: detector_dir/evaluation); rows labelled `normal_label` (default "0") are normal. Returns
    (AnomalyMetrics, paths written)."""
    from dataclasses import asdict

    import numpy as np

    from ..io import write_json

    out = check_output_folder(out if out else Path(detector_dir) / "evaluation")
    detector = VAEAnomalyDetector.load(detector_dir)
    ys, all_scores = [], []
    for chunk, scores in _scored_chunks(detector, data, chunk_rows, label_column, score, progress):
        if chunk.labels is None:
            raise DataError(f"{data} has no labels: pass --label-column NAME (a CSV column; .npz files use 'y')")
        ys.append(is_anomaly(chunk.labels, "0" if normal_label is None else normal_label))
        all_scores.append(scores)
    y, scores = np.concatenate(ys), np.concatenate(all_scores)
    metrics = anomaly_metrics(y, scores, detector.threshold_)
    write_json(out / "metrics.json", {**asdict(metrics), "score": score or detector.score, "data": str(data)})
    return metrics, (out / "metrics.json", *save_evaluation_plots(out, y, scores, metrics))


def _is_number(cell: str) -> bool:
    from ..data.readers import is_number

    return is_number(cell)
