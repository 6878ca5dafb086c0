"""The files of `vaekit text`: what its verbs read from the command line and write (sentences, embeddings,
predictions, evaluations), each around one function of vaekit.apps.text."""

from __future__ import annotations

from pathlib import Path

from ..saved import check_output_file
from .text import Classification, Predictions, as_model, classify, embed, evaluate, predict, sentences_from


def read_inputs(arguments: list[str]) -> list[str]:
    """Sentences given on a command line: the arguments themselves, or the lines of the one file named."""
    if len(arguments) == 1 and Path(arguments[0]).is_dir():
        from ..errors import DataError

        raise DataError(f"{arguments[0]} is a folder: pass sentences in quotes, or one text file")
    return sentences_from(arguments[0]) if len(arguments) == 1 and Path(arguments[0]).is_file() else list(arguments)


def write_sentences(sentences: list[str], out: str | Path) -> Path:
    """One sentence per line into the text file `out`."""
    from ..io import atomic_write

    atomic_write(check_output_file(out), "\n".join(sentences) + "\n")
    return Path(out)


def _default_out(model, out: str | Path | None, name: str) -> Path:
    return check_output_file(Path(out) if out is not None else as_model(model).path / name)


def embed_file(model, corpus, out: str | Path | None = None, column: str | None = None) -> Path:
    """Latent means of the sentences of `corpus` into `out`: .npy, or .csv with a header z0,z1,...
    (default: MODEL/embeddings.npy)."""
    import io

    import numpy as np

    from ..io import atomic_write

    model = as_model(model)
    out = _default_out(model, out, "embeddings.npy")
    features = embed(model, corpus, column)
    buffer = io.BytesIO()
    if out.suffix == ".csv":
        np.savetxt(buffer, features, delimiter=",", fmt="%.6g",
                   header=",".join(f"z{i}" for i in range(features.shape[1])), comments="")
    else:
        np.save(buffer, features)
    atomic_write(out, buffer.getvalue())
    return out


def classify_file(model, labelled, predict=None, out: str | Path | None = None,
                  **options) -> tuple[Classification, Path | None]:
    """`classify` (`options`: its text_column, label_column, unlabelled, self_training, seed), and with
    `predict` the predictions as a CSV of sentence, label into `out` (default: MODEL/predictions.csv).
    Returns the Classification and the CSV's path (None without `predict`)."""
    model = as_model(model)
    out = _default_out(model, out, "predictions.csv")
    result = classify(model, labelled, predict, **options)
    if predict is None:
        return result, None
    return result, _write_csv(out, ["sentence", "label"],
                              zip(sentences_from(predict, options.get("text_column")), result.predictions))


def predict_file(model, sentences, out: str | Path | None = None,
                 column: str | None = None) -> tuple[list[str], Predictions, Path]:
    """`predict`, written as a CSV of sentence, label and one probability per class into `out` (default:
    MODEL/predictions.csv). Returns the sentences, the Predictions and the CSV's path."""
    model = as_model(model)
    out = _default_out(model, out, "predictions.csv")
    sentences = sentences_from(sentences, column)
    result = predict(model, sentences)
    rows = [[s, y, *(f"{p:.4f}" for p in ps)] for s, y, ps in zip(sentences, result.labels, result.probabilities)]
    path = _write_csv(out,
                      ["sentence", "label", *(f"p_{c}" for c in result.classes)], rows)
    return sentences, result, path


def _write_csv(out: Path, header: list[str], rows) -> Path:
    import csv
    import io

    from ..io import atomic_write

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(out, buffer.getvalue())
    return out


def evaluate_file(model, corpus, out: str | Path | None = None, **options):
    """`evaluate` (`options`: its k, column, seed), written as JSON into `out` (default: MODEL/eval.json).
    Returns the TextEvaluation and the path."""
    from ..io import write_json

    model = as_model(model)
    out = _default_out(model, out, "eval.json")
    result = evaluate(model, corpus, **options)
    write_json(out, result.to_dict())
    return result, out
