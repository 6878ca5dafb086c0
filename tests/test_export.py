"""vaekit export: every network design and core likelihood (and a conditional run of each design), trained for
one epoch, exported in both formats and run in onnxruntime and as a loaded torch.export program at two batch
sizes, agrees with the run as vaekit loads it to 1e-5; what export refuses, it refuses in one line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.apps import images as runs
from vaekit.apps.export import MANIFEST, export
from vaekit.apps.export.graphs import parameters
from vaekit.errors import ConfigError

DOCS = Path(__file__).parents[1] / "docs" / "export.md"
TOLERANCE = 1e-5  # max abs error against eager PyTorch
BATCHES = (1, 7)  # the graphs were traced at 2 rows: both differ from it
# Every likelihood on both designs; a scale the decoder predicts doubles the networks' output, so it runs on
# both, while a fixed or learned scale lives in the likelihood alone and runs on one (the file stays within a
# minute: the discretized logistic's mean, a sum over 255 levels, is a graph of ~1,000 nodes to trace).
CASES = [("mlp", "bernoulli", "learned", "none"), ("mlp", "gaussian", "learned", "none"),
         ("mlp", "gaussian", "0.1", "none"), ("mlp", "gaussian", "decoder", "none"),
         ("mlp", "discretized_logistic", "learned", "none"),
         ("conv", "bernoulli", "learned", "none"), ("conv", "gaussian", "decoder", "none"),
         ("conv", "discretized_logistic", "decoder", "none"),
         ("mlp", "gaussian", "learned", "label"), ("conv", "bernoulli", "learned", "lowres:2")]


def _train(path, likelihood="bernoulli", scale="learned", design="mlp", condition="none"):
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 24)
    return runs.train(path, data=(x, y), network=design, likelihood=likelihood, gaussian_scale=scale,
                      condition=condition, epochs=1, batch_size=8, hidden=(16,), conv_channels=(4, 8), latent_dim=3,
                      progress=False)


def _reference(vae, inputs: dict, c) -> dict[str, dict[str, torch.Tensor]]:
    """What each graph should return, by vaekit's own eager API on the run as loaded."""
    with torch.no_grad():
        px = vae.decode(inputs["z"], c)
        return {"encoder": parameters(vae.encode(inputs["x"], c)),
                "decoder": {"mean": vae.decode_mean(inputs["z"], c), **parameters(px)}}


def _worst(outputs: dict[str, np.ndarray], expected: dict[str, torch.Tensor]) -> float:
    assert list(outputs) == list(expected)
    for name, value in outputs.items():
        assert value.shape == tuple(expected[name].shape), name
    return max(float(np.abs(value - expected[name].numpy()).max()) for name, value in outputs.items())


@pytest.mark.parametrize("design, likelihood, scale, condition", CASES)
def test_exported_graphs_compute_what_the_run_computes(tmp_path, design, likelihood, scale, condition):
    ort = pytest.importorskip("onnxruntime", reason="the ONNX files run in onnxruntime: pip install 'vaekit[export]'")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'vaekit[export]'")
    _train(tmp_path / "run", likelihood, scale, design, condition)
    run = runs.load_run(tmp_path / "run", device="cpu")  # as users load it: vaekit's CPU paths where they apply
    onnx_files = json.loads(export(tmp_path / "run", tmp_path / "onnx").read_text())
    programs = json.loads(export(tmp_path / "run", tmp_path / "pt2", format="exported-program").read_text())
    assert onnx_files["opset"] == 20 and programs["opset"] is None
    sessions = {name: ort.InferenceSession(str(tmp_path / "onnx" / graph["file"]))
                for name, graph in onnx_files["graphs"].items()}
    modules = {name: torch.export.load(tmp_path / "pt2" / graph["file"]).module()
               for name, graph in programs["graphs"].items()}
    generator = torch.Generator().manual_seed(1)
    for n in BATCHES:
        inputs = {"x": torch.rand(n, 1, 8, 8, generator=generator), "z": torch.randn(n, 3, generator=generator)}
        c = {"none": None, "label": torch.arange(n) % 3, "lowres:2": torch.rand(n, 1, 4, 4, generator=generator)}
        c = c[condition]
        condition_input = {} if c is None else {"condition": run.vae.features(c)}
        expected = _reference(run.vae, inputs, c)
        for name, session in sessions.items():
            graph = onnx_files["graphs"][name]
            feeds = {spec["name"]: (inputs | condition_input)[spec["name"]].numpy() for spec in graph["inputs"]}
            assert [i.name for i in session.get_inputs()] == list(feeds)
            results = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
            assert [o["name"] for o in graph["outputs"]] == list(results)
            assert _worst(results, expected[name]) <= TOLERANCE, (name, n)
            with torch.no_grad():
                returned = modules[name](**{key: torch.from_numpy(value) for key, value in feeds.items()})
            assert _worst(dict(zip(results, (t.numpy() for t in returned))), expected[name]) <= TOLERANCE, (name, n)


def test_the_manifest_says_what_each_graph_takes_and_returns(tmp_path):
    run = _train(tmp_path / "run", "gaussian", "decoder", "conv")
    manifest = json.loads(export(run, tmp_path / "out", format="exported-program").read_text())
    assert manifest["kind"] == "export" and manifest["format"] == "exported-program"
    assert manifest["run"]["model"]["likelihood"] == "gaussian" and manifest["run"]["model"]["data_shape"] == [1, 8, 8]
    assert manifest["vaekit_version"] and manifest["torch_version"] == torch.__version__
    encoder, decoder = manifest["graphs"]["encoder"], manifest["graphs"]["decoder"]
    assert encoder["inputs"] == [{"name": "x", "shape": ["batch", 1, 8, 8], "dtype": "float32"}]
    assert [o["name"] for o in encoder["outputs"]] == ["loc", "scale"]
    assert decoder["inputs"] == [{"name": "z", "shape": ["batch", 3], "dtype": "float32"}]
    assert [(o["name"], o["shape"]) for o in decoder["outputs"]] == [
        (name, ["batch", 1, 8, 8]) for name in ("mean", "loc", "scale")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decoder.pt2", "encoder.pt2", MANIFEST]


def test_a_semi_supervised_run_exports_its_classifier_beside_its_label_conditional_graphs(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the ONNX files run in onnxruntime: pip install 'vaekit[export]'")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'vaekit[export]'")
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 1, 8, 8), dtype=np.float32), np.arange(24) % 3
    runs.train(tmp_path / "run", data=(x, y), semi_supervised=True, network="mlp", epochs=1, batch_size=8,
               hidden=(16,), latent_dim=3, progress=False)
    run = runs.load_run(tmp_path / "run", device="cpu")
    onnx_files = json.loads(export(run, tmp_path / "onnx").read_text())
    programs = json.loads(export(run, tmp_path / "pt2", format="exported-program").read_text())
    graphs = programs["graphs"]
    assert list(graphs) == ["encoder", "decoder", "classifier"] and graphs == onnx_files["graphs"] | {
        name: graph | {"file": graph["file"].replace(".onnx", ".pt2")} for name, graph in onnx_files["graphs"].items()}
    assert graphs["encoder"]["inputs"][1] == {"name": "condition", "shape": ["batch", 3], "dtype": "float32"}
    assert graphs["classifier"]["inputs"] == [{"name": "x", "shape": ["batch", 1, 8, 8], "dtype": "float32"}]
    assert [(o["name"], o["shape"]) for o in graphs["classifier"]["outputs"]] == [("probs", ["batch", 3]),
                                                                                ("logits", ["batch", 3])]
    rows = torch.rand(BATCHES[1], 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = parameters(run.vae.classify(rows))
        returned = torch.export.load(tmp_path / "pt2" / "classifier.pt2").module()(x=rows)
    session = ort.InferenceSession(str(tmp_path / "onnx" / "classifier.onnx"))
    for outputs in (dict(zip(expected, (t.numpy() for t in returned))),
                    dict(zip(expected, session.run(None, {"x": rows.numpy()})))):
        assert _worst(outputs, expected) <= TOLERANCE


def test_a_folder_that_holds_files_is_replaced_only_when_asked(tmp_path):
    run = _train(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="out is not empty: choose a new folder or pass --overwrite"):
        export(run, out, format="exported-program")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    export(run, out, format="exported-program", overwrite=True)
    assert (out / MANIFEST).is_file() and (out / "notes.txt").read_text() == "mine"


def test_other_kinds_and_formats_are_one_line_config_errors(tmp_path):
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "config.json").write_text(json.dumps({"kind": "tabular", "format_version": 1}))
    with pytest.raises(ConfigError) as error:
        export(tmp_path / "table", tmp_path / "out")
    assert str(error.value) == (f"{tmp_path / 'table'} is a tabular model: vaekit export takes a core VAE run "
                                "(written by `vaekit train`)")
    with pytest.raises(ConfigError, match="unknown export format 'tflite': use one of onnx, exported-program"):
        export(tmp_path / "table", tmp_path / "out", format="tflite")
    assert not (tmp_path / "out").exists()


def test_onnx_files_carry_the_opset_asked_for(tmp_path):
    onnx = pytest.importorskip("onnx", reason="pip install 'vaekit[export]'")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'vaekit[export]'")
    run = _train(tmp_path / "run")
    manifest = json.loads(export(run, tmp_path / "out", opset=18).read_text())
    assert manifest["opset"] == 18
    for graph in manifest["graphs"].values():
        model = onnx.load(tmp_path / "out" / graph["file"])
        assert {o.domain: o.version for o in model.opset_import}[""] == 18


def test_the_docs_export_a_run_and_serve_its_decoder_without_torch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the ONNX files run in onnxruntime: pip install 'vaekit[export]'")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'vaekit[export]'")
    monkeypatch.chdir(tmp_path)
    _train(tmp_path / "runs" / "digits")  # the run the page exports: random 8x8 images stand in for the digits
    exporting, serving = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    exec(compile(exporting, str(DOCS), "exec"), {})
    check = "\nimport sys\nassert 'torch' not in sys.modules and 'vaekit' not in sys.modules, 'imported torch'\n"
    subprocess.run([sys.executable, "-c", serving + check], check=True, cwd=tmp_path)
    assert (tmp_path / "samples.pgm").read_bytes().startswith(b"P5 64 64 255\n")
