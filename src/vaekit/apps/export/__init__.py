"""Export a trained VAE for serving without vaekit (`vaekit export`): its encoder, x -> q(z|x)'s loc and
scale, and its decoder, z -> E[x|z] and p(x|z)'s parameters (and an M2 run's classifier, x -> q(y|x)), as ONNX
files or torch.export programs (.pt2), each with a dynamic batch dimension, beside export.json, which says what
each graph takes and returns.

Both formats are a torch.export trace of the modules in graphs.py; an ONNX file is that program
translated by torch's own exporter (torch.onnx.export with dynamo=True, which needs onnxscript;
the TorchScript exporter is deprecated since torch 2.9). docs/export.md shows how to serve them.
"""

from __future__ import annotations

from pathlib import Path

from ... import __version__
from ...config import to_dict
from ...errors import ConfigError, optional_import
from ...io import atomic_open, atomic_write, write_json

FORMATS = {"onnx": ".onnx", "exported-program": ".pt2"}  # format -> the graphs' file suffix
OPSET = 20  # the opset torch's exporter writes natively (others go through ONNX's version converter);
# onnxruntime runs it from 1.17
MANIFEST = "export.json"
MANIFEST_VERSION = 1  # export.json's layout
EXAMPLE_BATCH = 2  # rows of the inputs traced; 1 would fix the batch dimension


def export(run, out_dir: str | Path, format: str = "onnx", opset: int = OPSET, overwrite: bool = False) -> Path:
    """Write `run`'s encoder and decoder to `out_dir` as `encoder.onnx` and `decoder.onnx` (format 'onnx',
    ONNX opset `opset`) or `encoder.pt2` and `decoder.pt2` (format 'exported-program', torch.export programs:
    `torch.export.load(path).module()`), and `export.json` describing them. Returns export.json's path.

    run: a vaekit.Run or the folder of one (`vaekit train`; an audio model's core run too).
    Encoder: x (batch, *data_shape) float32 -> loc, scale (batch, latent_dim). Decoder: z (batch, latent_dim)
    -> mean (E[x|z]) and the likelihood's parameters, each (batch, *data_shape): probs and logits (bernoulli),
    loc and scale (gaussian, discretized_logistic). A conditional run's graphs take a second input,
    `condition`: the features its condition makes of c (one-hot labels, the low-resolution or noisy image).
    A semi-supervised run (`--semi-supervised`) adds `classifier.onnx` (or .pt2): x -> q(y|x)'s probs and logits,
    each (batch, n_classes), which says the label its encoder and decoder take.
    A non-empty `out_dir` is refused unless `overwrite`, which replaces the files of the same names.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format '{format}': use one of {', '.join(FORMATS)}")
    if format == "onnx":
        optional_import("onnxscript", "vaekit export --format onnx", "'vaekit[export]'")
        newest = optional_import("onnx", "vaekit export --format onnx", "'vaekit[export]'").defs.onnx_opset_version()
        if not isinstance(opset, int) or not 7 <= opset <= newest:
            raise ConfigError(f"--opset must be an ONNX opset from 7 to {newest} (this onnx's newest), got {opset!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file: export writes a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"{out_dir} is not empty: choose a new folder or pass --overwrite (overwrite=True)")
    import torch

    from .graphs import ClassifierGraph, DecoderGraph, EncoderGraph, plain_copy

    run = _exportable(run)
    variant = {"--prior": run.model.prior, "--posterior": run.model.posterior,
               "--stochastic-layers": run.model.stochastic_layers}
    if variant != {"--prior": "standard_normal", "--posterior": "gaussian", "--stochastic-layers": 1}:
        named = " ".join(f"{flag} {value}" for flag, value in variant.items())
        raise ConfigError(f"vaekit export writes a diagonal Gaussian encoder and a decoder for z ~ N(0, I); this run has "
                          f"{named}, parts the graphs would leave out: use `vaekit serve` for it")
    vae = plain_copy(run.vae, run.model)
    condition = {} if vae.condition is None else {"condition": torch.zeros(EXAMPLE_BATCH, *vae.condition.feature_shape)}
    graphs = {"encoder": (EncoderGraph(vae), {"x": torch.zeros(EXAMPLE_BATCH, *run.model.data_shape), **condition}),
              "decoder": (DecoderGraph(vae), {"z": torch.zeros(EXAMPLE_BATCH, vae.latent_dim), **condition})}
    if vae.classifier is not None:
        graphs["classifier"] = (ClassifierGraph(vae), {"x": torch.zeros(EXAMPLE_BATCH, *run.model.data_shape)})
    manifest = {"kind": "export", "format_version": MANIFEST_VERSION, "format": format,
                "opset": opset if format == "onnx" else None, "graphs": {},
                "run": {"path": None if run.path is None else str(run.path), "model": to_dict(run.model)},
                "vaekit_version": __version__, "torch_version": torch.__version__}
    with torch.no_grad():
        for name, (graph, inputs) in graphs.items():
            path = out_dir / f"{name}{FORMATS[format]}"
            outputs = graph.outputs(**inputs)
            _write(graph, inputs, list(outputs), path, format, opset)
            manifest["graphs"][name] = {"file": path.name, "inputs": _describe(inputs), "outputs": _describe(outputs)}
    write_json(out_dir / MANIFEST, manifest)
    return out_dir / MANIFEST


def _exportable(run):
    """The Run itself, or the core run saved in the folder `run`; a folder of another kind is a ConfigError."""
    from ..images import Run, load_run
    from ...saved import EXTENDS, KINDS, saved_kind

    if isinstance(run, Run):
        return run
    kind = saved_kind(run)
    if "core" not in (kind, EXTENDS.get(kind)):
        raise ConfigError(f"{run} is {KINDS[kind].noun}: vaekit export takes a core VAE run (written by "
                          f"`{KINDS['core'].fit}`)")
    return load_run(run, device="cpu")


def _write(graph, inputs: dict, output_names: list[str], path: Path, format: str, opset: int) -> None:
    """Trace `graph` on `inputs` with a dynamic batch dimension and write it to `path` in `format`."""
    import torch

    batch = {0: torch.export.Dim("batch")}
    program = torch.export.export(graph, (), kwargs=inputs, dynamic_shapes={name: batch for name in inputs})
    if format == "exported-program":
        with atomic_open(path) as f:
            torch.export.save(program, f)
        return
    onnx = torch.onnx.export(program, (), kwargs=inputs, dynamo=True, opset_version=opset, input_names=list(inputs),
                             output_names=output_names, verbose=False)
    atomic_write(path, onnx.model_proto.SerializeToString())


def _describe(tensors: dict) -> list[dict]:
    """Name, shape (the batch dimension as "batch") and dtype of each tensor, for export.json."""
    return [{"name": name, "shape": ["batch", *t.shape[1:]], "dtype": str(t.dtype).removeprefix("torch.")}
            for name, t in tensors.items()]
