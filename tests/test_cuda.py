"""The same library on a CUDA device: training, precision, compile, resume, checkpoints moving between
devices, and the models whose other tests pin the CPU. Skipped where no GPU is present (CI); the rest of
the suite runs on CUDA too when one is, since its device default is 'auto'."""

import math

import pytest
import torch

from vaekit.apps import images
from vaekit.data.splits import load_splits
from vaekit.apps import text as text_app
from vaekit.cli import main
from vaekit.config import ModelConfig, TrainConfig
from vaekit.semisupervised import UNLABELLED, LabelledData, LabelledVAE
from vaekit.text.model import evaluate_text, load_text_model
from vaekit.training import Trainer
from vaekit.vae import build_vae

from test_training import assert_resume_is_exact

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TINY = dict(data="digits", hidden=(64,), latent_dim=4, batch_size=64, conv_channels=(8, 16), progress=False)


def _on_cuda(module) -> bool:
    return all(p.device.type == "cuda" for p in module.parameters())


@pytest.mark.parametrize("network, likelihood", [("mlp", "bernoulli"), ("conv", "bernoulli"), ("mlp", "gaussian")])
def test_a_run_trained_on_cuda_scores_and_decodes_the_same_on_cpu(tmp_path, network, likelihood):
    run = images.train(tmp_path / "r", epochs=2, network=network, likelihood=likelihood, device="cuda", **TINY)
    assert _on_cuda(run.vae) and all(math.isfinite(row["loss"]) for row in run.history)
    result = images.evaluate(tmp_path / "r", k=50)
    assert math.isfinite(result.nll) and result.nll <= result.neg_elbo + 0.5
    on_cpu = images.load_run(tmp_path / "r", device="cpu")
    on_gpu = images.load_run(tmp_path / "r", device="cuda")
    assert _on_cuda(on_gpu.vae) and not _on_cuda(on_cpu.vae)
    z = torch.randn(16, 4)
    with torch.no_grad():
        # cuDNN convolutions run in TF32 by default: agreement to about 1e-3, not bit for bit
        torch.testing.assert_close(on_gpu.vae.decode_mean(z.cuda()).cpu(), on_cpu.vae.decode_mean(z),
                                   rtol=2e-3, atol=2e-3)
    assert on_gpu.vae.sample(9).device.type == "cuda"
    # CPU tensors and a CPU generator work with a model on the GPU, the same draws as on the CPU
    x = torch.rand(8, *on_cpu.model.data_shape)
    assert on_gpu.vae.elbo(x).total().device.type == "cuda"
    draws = [run.vae.sample(4, generator=torch.Generator().manual_seed(0)).cpu() for run in (on_gpu, on_cpu)]
    torch.testing.assert_close(*draws, rtol=2e-3, atol=2e-3)


def test_bf16_compile_and_importance_weighted_training_on_cuda(tmp_path):
    run = images.train(tmp_path / "r", epochs=3, network="mlp", precision="bf16", compile=True, iw_samples=5,
                     binarize="dynamic", device="cuda", **TINY)
    losses = [row["loss"] for row in run.history]
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
    x = load_splits(run.data, run.train.seed).x_test[:64].cuda()
    with torch.no_grad():
        iwae = run.vae.log_likelihood(x, k=5000, chunk_size=512)
        elbo = run.vae.elbo(x).total()
    assert iwae.device.type == "cuda" and torch.isfinite(iwae).all()
    assert iwae.mean() >= elbo.mean()


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_resume_on_cuda_ends_where_an_uninterrupted_run_does(tmp_path, monkeypatch, network):
    assert_resume_is_exact(tmp_path, monkeypatch, epochs=3, die_after=1, binarize="dynamic", device="cuda",
                           deterministic=True, **dict(TINY, network=network))


def test_a_cpu_run_resumes_on_cuda(tmp_path):
    images.train(tmp_path / "r", epochs=1, network="mlp", device="cpu", **TINY)
    resumed = images.train(tmp_path / "r", epochs=2, resume=True, progress=False, device="cuda")
    assert len(resumed.history) == 2 and _on_cuda(resumed.vae)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_sentence_vae_fits_scores_and_decodes_on_cuda(tmp_path, cell):
    sentences = [f"the {thing} was {word}" for thing in ("film", "plot", "cast") for word in ("good", "bad", "dull")]
    model = text_app.fit(sentences * 8, tmp_path / "m", log=lambda line: None, epochs=2, embed_dim=16, hidden=24,
                         latent_dim=4, cell=cell, dropout=0.1, precision="bf16", progress=False, device="cuda")
    assert model.device.type == "cuda"
    result = evaluate_text(model.vae, model.encode_text(sentences), k=20)
    assert math.isfinite(result.nll) and result.nll <= result.neg_elbo + 0.5
    for method in ("sample", "greedy", "beam"):
        assert all(isinstance(s, str) for s in text_app.sample(model, 4, method=method))
    assert len(text_app.interpolate(model, sentences[0], sentences[-1], steps=3)) == 3
    assert load_text_model(tmp_path / "m", device="cuda").device.type == "cuda"


def test_semi_supervised_training_on_cuda():
    x, labels = torch.rand(96, 6), torch.full((96,), UNLABELLED)
    labels[:12] = torch.arange(12) % 3
    model = LabelledVAE(build_vae(ModelConfig(data_shape=(6,), hidden=(8,), latent_dim=2)), 3, label_weight=5.0)
    history = Trainer(model, TrainConfig(epochs=2, batch_size=32, progress=False, device="cuda")).fit(
        LabelledData(x, labels, per_batch=4))
    assert _on_cuda(model) and all(math.isfinite(row["loss"]) for row in history)
    with torch.inference_mode():
        assert model.predict_proba(x[:5].cuda()).shape == (5, 3)


def test_cli_trains_and_samples_on_cuda(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--hidden", "32", "--latent-dim", "3", "--epochs", "1",
                 "--device", "cuda", "--precision", "bf16", "--out", str(run)]) == 0
    assert main(["sample", str(run), "-n", "16", "-o", str(tmp_path / "s.png")]) == 0
    assert main(["eval", str(run), "--k", "20"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0 and (run / "eval-k20.json").is_file()


def test_batches_read_by_a_dataloader_come_pinned_and_reach_the_gpu_without_a_pageable_copy():
    from vaekit.batches import epoch_batches
    from vaekit.devices import synchronize, to_device

    rows = torch.rand(40, 6)
    reader = type("Rows", (), {"__len__": lambda self: len(rows), "__getitem__": lambda self, i: rows[i]})()
    order = torch.randperm(40)
    pinned = [b for b, _, _ in epoch_batches(reader, order, 16, 0, lambda i: (i, len(i)), 0, 0, pin_memory=True)]
    assert all(b.is_pinned() for b in pinned) and torch.equal(torch.cat(pinned), rows[order])
    on_gpu = to_device(rows, torch.device("cuda"))
    synchronize(on_gpu.device)
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), rows)


def test_an_epoch_on_cuda_is_timed_after_its_steps_have_run(monkeypatch):
    from vaekit import training

    calls = []
    monkeypatch.setattr(training, "synchronize", lambda device: calls.append(device.type))
    vae = build_vae(ModelConfig(data_shape=(8,), hidden=(16,), latent_dim=2))
    Trainer(vae, TrainConfig(epochs=2, batch_size=16, device="cuda", progress=False)).fit(torch.rand(64, 8))
    assert calls == ["cuda", "cuda"]


@pytest.mark.parametrize("bottleneck", ["vq", "fsq"])
def test_a_quantized_vae_trains_on_cuda(bottleneck):
    vae = build_vae(ModelConfig(data_shape=(8,), hidden=(16,), latent_dim=4, bottleneck=bottleneck, codebook_size=64,
                                code_dim=2, fsq_levels=(4, 3)))
    history = Trainer(vae, TrainConfig(epochs=2, batch_size=16, device="cuda", progress=False)).fit(torch.rand(64, 8))
    assert all(math.isfinite(row["loss"]) for row in history) and 0 < history[-1]["codebook_usage"] <= 1


def test_vq_dead_codes_restart_onto_batch_vectors_on_cuda():
    from vaekit.bottlenecks import VectorQuantizer

    torch.manual_seed(0)
    vq = VectorQuantizer(latent_dim=2, codebook_size=4, code_dim=2, decay=0.5).cuda()
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [50.0, 50.0], [-50.0, -50.0]]))
    vq.embed_sum.copy_(vq.embed)
    vq.initialized.fill_(True)
    h = torch.cat([torch.full((8, 2), 1.0), torch.full((8, 2), 4.0)]).cuda()  # codes 0 and 1 take them all
    for _ in range(30):
        vq(h)
    # codes 2 and 3, far from every vector, died and were moved onto the batch's vectors without a host read
    assert ((vq.embed[:, None] - h[None, [0, -1]]).norm(dim=-1).min(1).values < 1e-2).all()
