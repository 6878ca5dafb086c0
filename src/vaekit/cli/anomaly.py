"""`vaekit anomaly fit|score|evaluate`: the flags of the anomaly detector, each verb one function of
vaekit.apps.anomaly_files; fit's flags are made from VAEAnomalyDetector's fields."""

from __future__ import annotations

from ..apps import anomaly_files as files
from ..apps.anomaly import SCORES, VAEAnomalyDetector
from ..config import add_arguments, options_from
from .flags import add_overwrite, add_parameter, add_verbs

EXAMPLES = {
    "fit": "vaekit anomaly fit normal.csv -o det/ --epochs 50\n"
           "  vaekit anomaly fit train.csv --label-column y --normal-label 0 -o det/   # normal rows only",
    "score": "vaekit anomaly score det/ new.csv -o scores.csv --chunk-rows 50000",
    "evaluate": "vaekit anomaly evaluate det/ test.csv --label-column y -o det/evaluation",
}


def add_commands(subparsers) -> None:
    verb = add_verbs(subparsers, "anomaly", "VAE anomaly detection: fit, score, evaluate",
                     "Flag rows a VAE trained on normal data explains badly.", EXAMPLES)

    def labels(p, function):
        p.add_argument("--label-column", help="name (or 0-based index without a header) of the label column")
        add_parameter(p, function, "normal_label", help="label value of normal rows (default: 0); others are "
                      "anomalies")

    def scoring(p, function):
        add_parameter(p, function, "chunk_rows", help="rows read and scored at a time")
        add_parameter(p, function, "score", choices=SCORES, help="score kind (default: the one chosen at fit time)")

    p = verb("fit", "train a detector on normal data (.csv/.csv.gz, .npy/.npz or an image folder)")
    p.add_argument("data")
    p.add_argument("-o", "--out", required=True, help="folder to write the detector to")
    labels(p, files.fit_file)
    add_overwrite(p, files.fit_file)
    add_arguments(p, VAEAnomalyDetector)
    p.set_defaults(handler=lambda a: files.fit_file(a.data, a.out, a.label_column, a.normal_label, a.overwrite,
                                                    **options_from(a, VAEAnomalyDetector)))

    p = verb("score", "write a CSV with a score and a 0/1 flag per row, streaming the input in chunks")
    p.add_argument("detector")
    p.add_argument("data")
    p.add_argument("-o", "--out", required=True, help="output CSV")
    p.add_argument("--label-column", help="a column to skip when scoring (e.g. the label)")
    scoring(p, files.score_file)
    p.set_defaults(handler=lambda a: files.score_file(a.detector, a.data, a.out, a.chunk_rows, a.label_column,
                                                      a.score))

    p = verb("evaluate", "ROC-AUC, average precision, precision/recall/F1 at the threshold, ROC and histogram PNGs")
    p.add_argument("detector")
    p.add_argument("data")
    labels(p, files.evaluate_file)
    p.add_argument("-o", "--out", help="output folder (default: DETECTOR/evaluation)")
    scoring(p, files.evaluate_file)
    p.set_defaults(handler=_evaluate)


def _evaluate(args):
    metrics, paths = files.evaluate_file(args.detector, args.data, args.label_column, args.normal_label, args.out,
                                         args.chunk_rows, args.score)
    print(f"rows {metrics.n}, anomalies {metrics.anomalies}: ROC-AUC {metrics.roc_auc:.4f}, average precision "
          f"{metrics.average_precision:.4f}; at threshold {metrics.threshold:.4g}: precision {metrics.precision:.3f}, "
          f"recall {metrics.recall:.3f}, F1 {metrics.f1:.3f}")
    return paths
