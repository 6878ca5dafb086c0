"""report.html: one page with a run's configuration, metrics, curves and pictures."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from .io import atomic_write

PICTURES = (("curves.png", "Training curves"), ("samples.png", "Samples from the prior"),
            ("reconstructions.png", "Test images (odd rows) and their reconstructions (even rows)"),
            ("interpolation.png", "Latent interpolations between test images"),
            ("latent_map.png", "Latent map of the test set"), ("sweep.png", "Latent size trade-off"),
            ("nearest.png", "Memorisation check: samples (odd rows) above their nearest training images in pixel "
                            "distance (even rows); copies of training images would show as identical pairs"))

EVAL_LABELS = {"neg_elbo": "-ELBO (nats)", "reconstruction": "reconstruction E[log p(x|z)] (nats)",
               "kl": "KL(q(z|x) || p(z)) (nats)", "nll": "NLL, importance weighted (nats)", "k": "importance samples k",
               "bits_per_dim": "bits/dim", "active_units": "active units", "knn_accuracy": "5-NN accuracy on latent means",
               "n_examples": "test examples"}
QUALITY_LABELS = {"frechet_distance": "Fréchet distance of samples, classifier features (not FID)",
                  "kid": "KID of samples, classifier features", "precision": "precision of samples (k-NN)",
                  "recall": "recall of samples (k-NN)", "n_samples": "samples scored (and test images)",
                  "sampler": "latents of the samples from", "features": "feature classifier (cache folder)",
                  "classifier_accuracy": "feature classifier's test accuracy", "inception_fid": "Inception FID"}


def _evaluation_rows(values: dict):
    """eval.json's rows with labels, the sample-quality ones right after the NLL so the two are read together."""
    quality = values.get("sample_quality") or {}
    for key, value in values.items():
        if key not in ("split", "limit", "sample_quality") and value is not None:
            yield EVAL_LABELS.get(key, key), value
        if key == "nll":
            yield from ((QUALITY_LABELS.get(k, k), v) for k, v in quality.items() if v is not None)


def _table(rows) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.1f}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def protocol(values: dict) -> str:
    """What an evaluation's figures were measured on, from its JSON: split, examples and importance samples."""
    examples = f"the first {values['n_examples']:,}" if values.get("limit") is not None else \
        f"all {values.get('n_examples', 0):,}"
    return f"{values.get('split', 'test')} split, {examples} examples, k = {values.get('k')} importance samples"


def evaluations(folder: Path) -> list[tuple[str, dict]]:
    """(file name, values) of every evaluation JSON in a run folder: eval.json (the main protocol) first."""
    paths = sorted(folder.glob("eval*.json"), key=lambda p: (p.name != "eval.json", p.name))
    return [(p.name, json.loads(p.read_text())) for p in paths]


def write_report(run, notes=()) -> Path:
    """Write run.path/report.html, embedding every picture the run has (the page is self-contained), each
    evaluation headed by its protocol, and `notes` (what is missing and the commands that make it) at the top."""
    path = run.path / "report.html"
    parts = [f"<h1>vaekit run <code>{html.escape(str(run.path))}</code></h1>"]
    if notes:
        parts.append("<ul class='missing'>" + "".join(f"<li>{html.escape(note)}</li>" for note in notes) + "</ul>")
    for name, values in evaluations(run.path):
        parts.append(f"<h2>Evaluation: {html.escape(protocol(values))} <small>({html.escape(name)})</small></h2>"
                     + _table(_evaluation_rows(values)))
    if run.history:
        last = run.history[-1]
        parts.append(f"<h2>Training ({len(run.history)} epoch{'s' if len(run.history) != 1 else ''})</h2>" + _table(last.items()))
    for name, caption in PICTURES:
        picture = run.path / name
        if picture.exists():
            data = base64.b64encode(picture.read_bytes()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{name}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    config = {"model": run.model, "train": run.train, "data": run.data}
    parts.append("<h2>Configuration</h2>" + "".join(
        f"<h3>{key}</h3>" + _table(vars(value).items()) for key, value in config.items()))
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "th{background:#f4f4f4;font-weight:normal}img{max-width:100%}figure{margin:1.5em 0}"
             ".missing{background:#fff8e0;padding:.5em 2em;border:1px solid #e8d9a0}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>vaekit report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write(path, page)
    return path
