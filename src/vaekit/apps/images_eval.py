"""An image run's figures: the API behind `vaekit eval` (re-exported by vaekit.apps.images).

torch and the core are imported inside the functions, as in every app: the CLI reads their signatures for --help.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import check_count
from ..errors import ConfigError, DataError
from ..io import atomic_write, write_json
from ..tracking import follow_up
from .images_run import Run, as_run, output_path, run_splits

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..evaluation import Evaluation
    from ..sample_quality import SampleQuality


EVAL_K = 1000  # the main protocol's importance samples: eval.json holds the whole test split at this k


def eval_file(split: str = "test", k: int = EVAL_K, limit: int | None = None) -> str:
    """The name of the JSON an evaluation of this protocol writes into its run: eval.json for the main protocol
    (the whole test split, k = EVAL_K), eval_val.json for the validation split, and the protocol in the name for any
    other k or a limit (eval-k50-limit500.json), so that a quick look never replaces the main figures."""
    name = "eval" if split == "test" else f"eval_{split}"
    return name + (f"-k{k}" if k != EVAL_K else "") + (f"-limit{limit}" if limit is not None else "") + ".json"


def evaluate(run: Run | str | Path, split: str = "test", k: int = EVAL_K, data: str | None = None,
             data_dir: str | None = None, progress: bool = True, limit: int | None = None, samples: int = 0,
             sampler: str = "prior", inception_weights: str | None = None,
             disentanglement: bool = False) -> Evaluation:
    """Evaluate a run on a split (`vaekit eval`); writes eval.json into the run directory for the main protocol,
    else a file named by its protocol beside it (see `eval_file`).
    `limit` evaluates only the first `limit` examples of the split (a quick look). `samples` > 0 also measures the
    quality of that many samples (latents from `sampler`) against as many test images (apps.sampling.sample_quality),
    with Inception FID when `inception_weights` names a local weights file. `disentanglement` adds MIG, SAP, DCI and
    the FactorVAE score of the latent means on the test split of data with known factors (shapes), and MIG over the
    whole posterior (Chen et al.'s estimator) where q(z|x) is a diagonal Gaussian."""
    from ..data.splits import model_data
    from ..evaluation import evaluate as evaluate_model

    from ..evaluation import check_importance_samples

    check_importance_samples(k)
    if limit is not None:
        check_count("--limit", limit)
    if samples:
        from .sampling import check_quality_options

        check_quality_options(samples, sampler)
    elif inception_weights is not None or sampler != "prior":
        raise ConfigError("--from and --inception-weights choose how samples are scored: add --samples N (e.g. 10000)")
    run = as_run(run)
    if samples:
        from .sampling import check_unconditional

        check_unconditional(run)
    splits = run_splits(run, data, data_dir)
    x = {"test": splits.x_test, "val": splits.x_val, "train": splits.x_train}.get(split)
    if x is None:
        raise ConfigError(f"unknown split '{split}': use test, val or train")
    if len(x) == 0:
        raise DataError(f"the {split} split is empty: choose another --split")
    if disentanglement and (splits.factors_test is None or split != "test"):
        raise DataError(f"--disentanglement needs the test split of data with known factors (--data shapes); "
                        f"this is the {split} split of {run.data.data if data is None else data}")
    y = {"test": splits.y_test, "train": splits.y_train}.get(split)
    if limit is not None:
        x, y = x[:limit], None if y is None else y[:limit]
    y_train = None if splits.y_train is None else splits.y_train[:10000]
    x_train = model_data(run.vae, run.data, splits.x_train[:10000], y_train, run.train.seed) if y is not None else None
    x = model_data(run.vae, run.data, x, y, run.train.seed)
    result = evaluate_model(run.vae, x, k=k, y=y, x_train=x_train, y_train=y_train, progress=progress,
                            seed=run.train.seed)
    if disentanglement:
        result = dataclasses.replace(result, disentanglement=_disentanglement(run, x, splits.factors_test[:len(x)]))
    if samples:
        from .sampling import sample_quality

        quality = sample_quality(run, splits, samples, sampler, inception_weights, seed=run.train.seed)
        result = dataclasses.replace(result, sample_quality=quality)
    if run.path is not None:
        written = run.path / eval_file(split, k, limit)
        write_json(written, {"split": split, "limit": limit, **result.to_dict()})
        follow_up(run.path, result.to_dict(), [written], prefix=f"{split}_")
    return result


def _disentanglement(run: Run, x, factors: np.ndarray) -> dict:
    from ..disentanglement import disentanglement
    from ..evaluation import diagonal_posterior, latent_means

    posterior = diagonal_posterior(run.vae, x)  # None leaves mig_posterior None: it needs a diagonal Gaussian q(z|x)
    codes, scale = (latent_means(run.vae, x), None) if posterior is None else posterior
    return disentanglement(codes.float().cpu().numpy(), factors, seed=run.train.seed,
                           scale=None if scale is None else scale.float().cpu().numpy()).to_dict()


def sample_quality(run: Run | str | Path, n: int = 1000, sampler: str = "prior", inception_weights: str | None = None,
                   seed: int = 0, picture: bool = True) -> SampleQuality:
    """Fréchet distance, KID and precision/recall of n samples against n test images, in the features of a classifier
    fitted to the dataset (cached), as `vaekit eval --samples` measures them; with `picture`, RUN/nearest.png."""
    from .sampling import check_quality_options, sample_quality as measure

    check_quality_options(n, sampler)
    run = as_run(run)
    return measure(run, run_splits(run), n, sampler, inception_weights, seed, picture)


@dataclass(frozen=True)
class Classification:
    """What `classify` found: the accuracy (None for data without labels) over n_examples, and the CSV written."""

    accuracy: float | None
    n_examples: int
    path: Path


@dataclass(frozen=True)
class ClassPredictions:
    """q(y|x) of a semi-supervised run for each input row: the class it finds most probable and every class's
    probability."""

    probabilities: torch.Tensor  # (N, classes) on the CPU, rows sum to 1
    predicted: torch.Tensor  # (N,) int64, argmax_y q(y|x)
    confidence: torch.Tensor  # (N,) q(predicted|x)


def predict_classes(run: Run | str | Path, x: torch.Tensor) -> ClassPredictions:
    """The classes a semi-supervised run's classifier q(y|x) gives the rows of x (N, *data_shape), as `vaekit
    classify` writes them; a run trained without --semi-supervised is a ConfigError saying so."""
    from ..evaluation import class_probabilities

    run = _with_classifier(run)
    probabilities = class_probabilities(run.vae, x).cpu()
    confidence, predicted = probabilities.max(-1)
    return ClassPredictions(probabilities, predicted, confidence)


def _with_classifier(run: Run | str | Path) -> Run:
    run = as_run(run)
    if run.vae.classifier is None:
        raise ConfigError(f"{run.path} has no classifier: classify takes a run trained with --semi-supervised")
    return run


def classify(run: Run | str | Path, data: str | None = None, data_dir: str | None = None, split: str = "test",
             out: str | Path | None = None) -> Classification:
    """Labels of a split from a semi-supervised run's classifier q(y|x) (`vaekit classify`): a CSV with each row's
    index, predicted class, its probability and the true label where known (default RUN/predictions_SPLIT.csv), and
    the accuracy where the data has labels."""
    from ..evaluation import classifier_accuracy

    run = _with_classifier(run)
    path = output_path(run, out, f"predictions_{split}.csv", (".csv",))
    splits = run_splits(run, data, data_dir)
    if split not in ("test", "train"):
        raise ConfigError(f"unknown split '{split}': use test or train")
    x, y = (splits.x_test, splits.y_test) if split == "test" else (splits.x_train, splits.y_train)
    if len(x) == 0:
        raise DataError(f"the {split} split is empty: choose another --split")
    found = predict_classes(run, x)
    header = "row,predicted,probability" + (",label" if y is not None else "")
    lines = [f"{i},{int(label)},{float(p):.6g}" + (f",{int(y[i])}" if y is not None else "")
             for i, (label, p) in enumerate(zip(found.predicted, found.confidence))]
    atomic_write(path, "\n".join([header, *lines]) + "\n")
    accuracy = None if y is None else classifier_accuracy(found.probabilities, y)
    return Classification(accuracy, len(x), path)

