"""Quantized bottlenecks: VQ with an EMA codebook and FSQ, as parts of the one VAE."""

import math

import pytest
import torch

from vaekit.bottlenecks import FiniteScalarQuantizer, UniformCodes, VectorQuantizer
from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.vae import build_vae


def test_vq_picks_the_nearest_code_and_passes_gradients_straight_through():
    vq = VectorQuantizer(latent_dim=4, codebook_size=3, code_dim=2).eval()
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]))
    h = torch.tensor([[0.9, 1.2, -1.5, 0.1]], requires_grad=True)
    qz = vq(h)
    assert qz.codes.tolist() == [[1, 2]]
    torch.testing.assert_close(qz.mean, torch.tensor([[1.0, 1.0, -2.0, 0.0]]))
    torch.testing.assert_close(qz.penalty, 0.25 * torch.tensor([0.01 + 0.04 + 0.25 + 0.01]))
    (qz.rsample().sum() + qz.penalty.sum()).backward()  # the code's gradient passes to h; commitment pulls h to it
    torch.testing.assert_close(h.grad, torch.ones_like(h) + 0.25 * 2 * (h - qz.mean).detach())


def test_vq_codebook_follows_its_vectors_and_dead_codes_restart():
    torch.manual_seed(0)
    vq = VectorQuantizer(latent_dim=2, codebook_size=4, code_dim=2, decay=0.5)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [50.0, 50.0], [-50.0, -50.0]]))
    vq.embed_sum.copy_(vq.embed)
    vq.initialized.fill_(True)  # keep this codebook (a fresh one starts on the first batch's vectors)
    h = torch.cat([torch.full((8, 2), 1.0), torch.full((8, 2), 4.0)])  # code 0 and code 1 each take 8
    for _ in range(30):
        qz = vq(h)
    torch.testing.assert_close(qz.mean, h, atol=1e-2, rtol=0)  # each cluster's code sits at its vectors
    # codes 2 and 3, far from every vector, died and restarted onto the batch's vectors
    assert ((vq.embed[:, None] - h[None, [0, -1]]).norm(dim=-1).min(1).values < 1e-2).all()
    stats = vq.epoch_statistics()
    assert 0.5 <= stats["codebook_usage"] <= 1.0 and 1.9 < stats["perplexity"] <= 4
    assert vq.epoch_statistics() == {}  # counted afresh


def test_vq_codebook_starts_on_the_first_batch():
    vq = VectorQuantizer(latent_dim=4, codebook_size=6, code_dim=2)
    h = torch.randn(10, 4) + 10  # far from the N(0, 1) codes it was made with
    vq(h)
    assert bool(vq.initialized) and (vq.embed - 10).abs().max() < 6  # placed on the batch, then one EMA step
    before = vq.embed.clone()
    vq.eval()(h + 100)  # evaluation moves nothing
    torch.testing.assert_close(vq.embed, before)


def test_fsq_rounds_onto_its_grid_and_indexes_every_code():
    fsq = FiniteScalarQuantizer(latent_dim=3, levels=(8, 5, 3))
    h = torch.randn(20000, 3, generator=torch.Generator().manual_seed(0)) * 2
    qz = fsq(h)
    assert qz.codes.min() >= 0 and qz.codes.max() < 8 * 5 * 3
    assert len(torch.unique(qz.codes)) == 120  # every code of the grid is reachable
    for i, levels in enumerate((8, 5, 3)):
        assert len(torch.unique(qz.mean[:, i])) == levels
    torch.testing.assert_close(fsq.lookup(qz.codes), qz.mean)


def test_uniform_codes_keep_the_elbo_honest():
    vq = VectorQuantizer(latent_dim=8, codebook_size=16, code_dim=4)
    prior = UniformCodes(vq)
    qz = vq.eval()(torch.randn(5, 8))
    torch.testing.assert_close(prior.kl(qz), torch.full((5,), 2 * math.log(16)))
    torch.testing.assert_close(prior.log_prob(qz.mean), torch.full((5,), -2 * math.log(16)))
    assert prior.sample(3).shape == (3, 8)
    assert torch.isin(prior.sample(50).view(-1, 4), vq.embed).all()


@pytest.mark.parametrize("bottleneck", ["vq", "fsq"])
def test_a_quantized_run_logs_usage_and_loads(tmp_path, bottleneck):
    from vaekit.apps import images

    codes = dict(code_dim=4, codebook_size=32) if bottleneck == "vq" else dict(fsq_levels=(5, 3, 3, 2))
    run = images.train(tmp_path / "run", data="digits", network="mlp", hidden=(16,), latent_dim=8, **codes,
                       bottleneck=bottleneck, epochs=2, progress=False)
    row = run.history[-1]
    assert 0 < row["codebook_usage"] <= 1 and 1 <= row["perplexity"] <= 32 * 2
    loaded = images.load_run(tmp_path / "run", device="cpu")
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(loaded.vae.reconstruct(x), run.vae.cpu().reconstruct(x))
    result = images.evaluate(loaded, k=3, progress=False, limit=20)
    assert result.nll <= result.neg_elbo + 1e-3  # one code per example: the bound is the ELBO itself


@pytest.mark.parametrize("options, message", [
    (dict(bottleneck="vq", latent_dim=20, code_dim=8), "multiple of 8"),
    (dict(bottleneck="fsq", latent_dim=6, fsq_levels=(8, 5, 5, 5)), "multiple of 4"),
    (dict(bottleneck="fsq", latent_dim=4, fsq_levels=(8, 1)), "at least 2"),
    (dict(bottleneck="vq", latent_dim=8, codebook_size=1), "codebook-size"),
])
def test_bad_bottleneck_options(options, message):
    with pytest.raises(ConfigError, match=message):
        build_vae(ModelConfig(network="mlp", data_shape=(6,), **options))


def test_training_counts_each_code_as_bincount_does_and_evaluation_counts_none():
    fsq = FiniteScalarQuantizer(4, (4, 3))  # 12 codes
    codes = torch.randint(12, (50, 2))
    fsq.count(codes)
    fsq.count(codes[:7])
    expected = torch.bincount(codes.flatten(), minlength=12) + torch.bincount(codes[:7].flatten(), minlength=12)
    assert torch.equal(fsq.counts, expected.float())
    fsq.eval()
    fsq.count(codes)
    assert torch.equal(fsq.counts, expected.float())


def test_the_gpu_restart_moves_only_the_dead_codes_onto_batch_vectors():
    vq = VectorQuantizer(latent_dim=4, codebook_size=5, code_dim=2)
    embed, embed_sum, size = vq.embed.clone(), vq.embed_sum.clone(), vq.cluster_size.clone()
    dead = torch.tensor([False, True, False, False, True])
    flat = torch.randn(6, 2) + 100.0
    vq._restart_where(dead, flat)
    assert torch.equal(vq.embed[~dead], embed[~dead]) and torch.equal(vq.embed_sum[~dead], embed_sum[~dead])
    assert all(any(torch.equal(row, vector) for vector in flat) for row in vq.embed[dead])
    assert torch.equal(vq.embed_sum[dead], vq.embed[dead])
    assert vq.cluster_size.tolist() == [size[0].item(), 1.0, size[2].item(), size[3].item(), 1.0]


def test_a_vq_codebook_is_placed_once_by_the_first_training_batch():
    vq = VectorQuantizer(latent_dim=4, codebook_size=3, code_dim=2).train()
    vq(torch.randn(8, 4) + 50.0)
    placed = vq.embed.clone()
    assert bool(vq.initialized) and (placed - 50).abs().max() < 6
    vq.embed_sum.copy_(placed)  # the next step's EMA leaves the codebook where it is, unless it were placed again
    vq.cluster_size.fill_(1.0)
    vq(torch.randn(8, 4) - 50.0)
    assert (vq.embed - 50).abs().max() < 60  # not moved onto the second batch (all near -50)
