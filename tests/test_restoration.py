"""Conditioning in the core (label and low-resolution conditions, Batch/PairedData, corruptions),
its backward compatibility, and the restoration app's commands on tiny real runs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.apps.restoration import denoise, psnr, restore_eval, ssim, superres
from vaekit.cli import main
from vaekit.conditioning import Batch, PairedData, downscale, parse_corruption
from vaekit.config import ModelConfig
from vaekit.data import load_dataset
from vaekit.errors import ConfigError, DataError
from vaekit.apps.images import load_run
from vaekit.vae import build_vae

TINY = ["--data", "digits", "--network", "conv", "--conv-channels", "8,16", "--latent-dim", "4", "--epochs", "2"]


def _tiny_vae(network="conv", condition="none", shape=(1, 8, 8), n_classes=0):
    torch.manual_seed(0)
    return build_vae(ModelConfig(network=network, hidden=(16,), conv_channels=(4, 8), latent_dim=3,
                                 data_shape=shape, condition=condition, n_classes=n_classes))


# -- the core mechanism -----------------------------------------------------------------------------
@pytest.mark.parametrize("network,shape,expected", [
    ("mlp", (1, 6, 6), [-130.7437, 26.531, 25.1502, -127.5225, 35.9361, 90.3792]),
    ("conv", (1, 8, 8), [-222.1495, 44.538, 44.3669, -222.0106, 64.3367, 160.8394]),
])
def test_unconditional_numbers_are_unchanged(network, shape, expected):
    """Golden numbers computed with the core before conditioning was added (same seeds)."""
    vae = _tiny_vae(network, shape=shape)
    assert vae.condition is None
    x = torch.rand(5, *shape)
    torch.manual_seed(1)
    with torch.no_grad():
        values = (vae.elbo(x, n_samples=2).total().sum(), vae.loss(x, beta=0.5, free_bits=0.1).loss,
                  vae.loss(x, iw_samples=3).loss, vae.log_likelihood(x, k=7).sum(),
                  vae.sample(2, generator=torch.Generator().manual_seed(3)).sum(), vae.reconstruct(x).sum())
    assert [round(float(v), 4) for v in values] == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("network", ["mlp", "conv"])
@pytest.mark.parametrize("condition", ["label", "lowres:2"])
def test_conditional_vae_shapes_and_contract(network, condition):
    vae = _tiny_vae(network, condition, n_classes=10)
    x = torch.rand(6, 1, 8, 8)
    c = torch.arange(6) % 10 if condition == "label" else downscale(x, 2)
    assert tuple(vae.condition.from_data(x, np.arange(6)).shape) == tuple(c.shape)
    qz = vae.encode(x, c)
    assert qz.batch_shape == (6,) and qz.event_shape == (3,)
    px = vae.decode(qz.rsample((4,)), c)  # (k, batch, latent) with batch conditions
    assert px.batch_shape == (4, 6) and px.log_prob(x).shape == (4, 6)
    assert vae.decode_mean(qz.mean, c).shape == x.shape
    assert vae.elbo(Batch(x, c)).kl.shape == (6,)
    assert vae.log_likelihood(x, k=5, c=c).shape == (6,)
    assert vae.sample(6, c=c).shape == x.shape and vae.sample(3, c=c[:1]).shape == (3, 1, 8, 8)
    loss = vae.loss(Batch(x, c), beta=0.5)
    loss.loss.backward()
    assert torch.isfinite(loss.loss) and vae.condition is not None
    with pytest.raises(ConfigError, match="conditional"):
        vae.encode(x)
    with pytest.raises(ConfigError, match="unconditional"):
        _tiny_vae(network).decode(qz.mean, c)


def test_label_conditional_samples_depend_on_the_label():
    vae = _tiny_vae("conv", "label", n_classes=10)
    draws = [vae.sample(4, generator=torch.Generator().manual_seed(0), c=torch.full((4,), k)) for k in (2, 3)]
    assert not torch.allclose(draws[0], draws[1])
    again = vae.sample(4, generator=torch.Generator().manual_seed(0), c=torch.full((4,), 2))
    assert torch.equal(draws[0], again)
    with pytest.raises(DataError):
        vae.sample(2, c=torch.tensor([0, 10]))


def test_denoising_target_is_what_the_likelihood_scores():
    vae = _tiny_vae("mlp", shape=(1, 6, 6))
    x, clean = torch.rand(4, 1, 6, 6), torch.rand(4, 1, 6, 6)
    torch.manual_seed(0)
    a = vae.elbo(Batch(x, target=clean))
    torch.manual_seed(0)
    b = vae.elbo(x, target=clean)
    torch.manual_seed(0)
    plain = vae.elbo(x)
    assert torch.equal(a.reconstruction, b.reconstruction) and torch.equal(a.kl, plain.kl)
    assert not torch.allclose(a.reconstruction, plain.reconstruction)


def test_corruptions_and_paired_data():
    x = torch.full((200, 1, 10, 10), 0.5)
    g = torch.Generator().manual_seed(0)
    assert abs(float(parse_corruption("gaussian:0.1")(x, g).std()) - 0.1) < 0.005
    masked = parse_corruption("mask:0.25")(x, g)
    assert abs(float((masked == 0).float().mean()) - 0.25) < 0.01
    salted = parse_corruption("salt-pepper:0.2")(x, g)
    assert set(salted.unique().tolist()) == {0.0, 0.5, 1.0}
    assert abs(float((salted != 0.5).float().mean()) - 0.2) < 0.01
    for bad in ("blur:1", "gaussian:x", "mask:2"):
        with pytest.raises(ConfigError):
            parse_corruption(bad)
    data = PairedData(x, torch.arange(200), parse_corruption("mask:0.5"))
    batch = data[torch.tensor([3, 4])]
    assert torch.equal(batch.target, x[3:5]) and torch.equal(batch.c, torch.tensor([3, 4]))
    assert not torch.equal(batch.x, data[torch.tensor([3, 4])].x)  # fresh noise on every read
    fixed = data.fixed(1)
    assert torch.equal(fixed[:2].x, fixed[:2].x) and len(fixed[:2]) == 2
    with pytest.raises(DataError):
        PairedData(x, torch.arange(3))


def test_conditional_denoising_data_puts_the_noise_in_the_condition():
    x = torch.rand(50, 1, 6, 6)
    data = PairedData(x, corruption=parse_corruption("gaussian:0.3"), corrupt_condition=True)
    batch = data[torch.tensor([1, 2])]
    assert torch.equal(batch.x, x[1:3]) and batch.target is None  # the encoder and the likelihood see clean x
    assert batch.c.shape == batch.x.shape and not torch.equal(batch.c, batch.x)
    assert not torch.equal(batch.c, data[torch.tensor([1, 2])].c)  # fresh noise on every read
    fixed = data.fixed(3)
    assert torch.equal(fixed[:4].c, data.fixed(3)[:4].c) and torch.equal(fixed[:4].x, x[:4])
    vae = _tiny_vae("conv", "noisy", shape=(1, 6, 6))
    assert vae.condition.from_data(x) is None
    assert vae.elbo(batch).kl.shape == (2,) and vae.decode_mean(torch.zeros(2, 3), batch.c).shape == (2, 1, 6, 6)
    with pytest.raises(ConfigError, match="--corrupt"):
        PairedData(x, corrupt_condition=True)


def test_psnr_and_ssim_closed_forms():
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(psnr(x + 0.1, x), torch.full((3,), 20.0), atol=1e-4)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    assert float(ssim(x, torch.rand(3, 1, 28, 28)).mean()) < 0.2
    metrics = pytest.importorskip("skimage.metrics")
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    expected = [metrics.structural_similarity(a[0].numpy(), b[0].numpy(), gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=1) for a, b in zip(y, x)]
    assert ssim(y, x).tolist() == pytest.approx(expected, abs=1e-5)


# -- real runs through the CLI ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("restoration")
    for name, flags in (("dvae", ["--corrupt", "gaussian:0.3"]), ("sr", ["--condition", "lowres:2"]),
                        ("cvae", ["--condition", "label"]),
                        ("cdvae", ["--condition", "noisy", "--corrupt", "gaussian:0.3", "--epochs", "5", "--lr", "3e-3",
                                   "--batch-size", "32"])):
        assert main(["train", *TINY, *flags, "--out", str(root / name)]) == 0
    return root


def test_saved_configs_rebuild_the_conditional_models(runs):
    assert json.loads((runs / "dvae" / "config.json").read_text())["data"]["corrupt"] == "gaussian:0.3"
    cvae = load_run(runs / "cvae")
    assert cvae.model.condition == "label" and cvae.model.n_classes == 10
    assert load_run(runs / "sr").vae.condition.feature_shape == (1, 4, 4)
    assert load_run(runs / "cdvae").vae.condition.feature_shape == (1, 8, 8)


def test_sample_by_label(runs, tmp_path, capsys):
    for label in (3, 7):
        assert main(["sample", str(runs / "cvae"), "-n", "8", "--label", str(label),
                     "-o", str(tmp_path / f"{label}.npy")]) == 0
    three, seven = (np.load(tmp_path / f"{k}.npy") for k in (3, 7))
    assert three.shape == (8, 1, 8, 8) and not np.allclose(three, seven)
    assert main(["sample", str(runs / "cvae"), "-n", "20", "-o", str(tmp_path / "grid.png")]) == 0
    assert main(["eval", str(runs / "cvae"), "--k", "3", "--limit", "20"]) == 0
    assert main(["reconstruct", str(runs / "sr"), "-n", "4", "-o", str(tmp_path / "r.png")]) == 0
    capsys.readouterr()
    for argv, message in ((["sample", str(runs / "cvae"), "--label", "10"], "--label must be in"),
                          (["sample", str(runs / "dvae"), "--label", "1"], "--condition label"),
                          (["sample", str(runs / "sr")], "superres"),
                          (["sample", str(runs / "cdvae")], "denoise")):
        assert main(argv) == 2 and message in capsys.readouterr().err


def test_denoise_command_on_png_npy_and_folder(runs, tmp_path):
    clean = load_run(runs / "dvae")
    folder = tmp_path / "noisy"
    folder.mkdir()
    noisy = (np.random.default_rng(0).random((2, 1, 8, 8)) * 255).astype(np.uint8)
    for i, image in enumerate(noisy):
        Image.fromarray(image[0]).save(folder / f"n{i}.png")
    np.save(tmp_path / "noisy.npy", noisy.astype(np.float32) / 255)
    assert main(["denoise", str(runs / "dvae"), str(folder / "n0.png"), "-o", str(tmp_path / "a")]) == 0
    assert main(["denoise", str(runs / "dvae"), str(folder), "-o", str(tmp_path / "b"), "--samples", "4"]) == 0
    assert main(["denoise", str(runs / "dvae"), str(tmp_path / "noisy.npy"), "-o", str(tmp_path / "c")]) == 0
    assert Image.open(tmp_path / "a" / "n0.png").size == (8, 8)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["n0.png", "n1.png"]
    out = np.load(tmp_path / "c" / "noisy_denoised.npy")
    assert out.shape == (2, 1, 8, 8) and 0 <= out.min() and out.max() <= 1
    x = torch.as_tensor(noisy / 255, dtype=torch.float32)
    assert torch.allclose(denoise(clean, x), torch.as_tensor(out), atol=1e-5)


def test_denoise_keeps_same_named_images_of_two_folders_apart(runs, tmp_path):
    images = {"a": np.zeros((8, 8), np.uint8), "b": np.full((8, 8), 255, np.uint8)}
    for folder, pixels in images.items():
        (tmp_path / "scans" / folder).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "scans" / folder / "001.png")
    pattern = str(tmp_path / "scans" / "*" / "*.png")
    assert main(["denoise", str(runs / "dvae"), pattern, "-o", str(tmp_path / "clean")]) == 0
    written = sorted(p.relative_to(tmp_path / "clean").as_posix() for p in (tmp_path / "clean").rglob("*.png"))
    assert written == ["a/001.png", "b/001.png"]
    x = torch.as_tensor(np.stack([images["a"], images["b"]])[:, None] / 255, dtype=torch.float32)
    expected = (denoise(load_run(runs / "dvae"), x).numpy() * 255).round()
    for i, folder in enumerate(images):
        np.testing.assert_allclose(np.asarray(Image.open(tmp_path / "clean" / folder / "001.png")), expected[i, 0],
                                   atol=1)


def test_conditional_denoising_run_removes_noise(runs, tmp_path, capsys):
    """A `--condition noisy` run decodes E[x | z, x_noisy] averaged over prior draws; on held-out
    digits its output is nearer the clean images than the noisy input is."""
    run = load_run(runs / "cdvae")
    clean = torch.as_tensor(load_dataset("digits").x_test[:100])
    noisy = parse_corruption("gaussian:0.3")(clean, torch.Generator().manual_seed(0))
    out = denoise(run, noisy)
    assert out.shape == clean.shape
    torch.testing.assert_close(out, denoise(run, noisy, samples=8))  # 8 draws by default (bit-equal on a CPU)
    assert float(psnr(out, clean).mean()) > float(psnr(noisy, clean).mean()) + 1
    np.save(tmp_path / "noisy.npy", noisy[:3].numpy())
    assert main(["denoise", str(runs / "cdvae"), str(tmp_path / "noisy.npy"), "-o", str(tmp_path / "d")]) == 0
    assert torch.allclose(torch.as_tensor(np.load(tmp_path / "d" / "noisy_denoised.npy")), denoise(run, noisy[:3]),
                          atol=1e-5)
    assert main(["restore-eval", str(runs / "cdvae"), "--levels", "0.3", "--limit", "30"]) == 0
    assert "gaussian:0.3" in capsys.readouterr().out


def test_superres_command_gives_draws_mean_and_uncertainty(runs, tmp_path):
    Image.fromarray((np.random.default_rng(0).random((4, 4)) * 255).astype(np.uint8)).save(tmp_path / "low.png")
    assert main(["superres", str(runs / "sr"), str(tmp_path / "low.png"), "-o", str(tmp_path / "high.png"),
                 "--samples", "5"]) == 0
    assert Image.open(tmp_path / "high.png").size == (8, 8)
    assert (tmp_path / "high_uncertainty.png").exists() and (tmp_path / "high_samples.png").exists()
    draws, mean, std = superres(load_run(runs / "sr"), torch.rand(3, 1, 4, 4), samples=5)
    assert draws.shape == (5, 3, 1, 8, 8) and torch.allclose(mean, draws.mean(0)) and float(std.max()) > 0


def test_restore_eval_for_denoising_and_superres(runs, tmp_path, capsys):
    assert main(["restore-eval", str(runs / "dvae"), "--levels", "0.2,0.5", "--limit", "30"]) == 0
    table = capsys.readouterr().out
    assert "gaussian:0.2" in table and "PSNR" in table
    rows = json.loads((runs / "dvae" / "restore" / "restore_eval.json").read_text())["rows"]
    assert [(r["setting"], r["method"]) for r in rows] == [("gaussian:0.2", "input"), ("gaussian:0.2", "vae"),
                                                           ("gaussian:0.5", "input"), ("gaussian:0.5", "vae")]
    assert (runs / "dvae" / "restore" / "grid_gaussian_0.5.png").exists()
    rows = restore_eval(load_run(runs / "sr"), limit=30, out=tmp_path / "sr", samples=2)
    assert {r["method"] for r in rows} == {"nearest", "bilinear", "bicubic", "vae"}
    assert all(np.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1 for r in rows)


def test_user_mistakes_are_one_line_errors(runs, tmp_path, capsys):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "wrong.png")
    (tmp_path / "bad.txt").write_text("x")
    cases = [
        (["superres", str(runs / "dvae"), str(tmp_path / "wrong.png"), "-o", str(tmp_path / "h.png")], "lowres"),
        (["superres", str(runs / "sr"), str(tmp_path / "wrong.png"), "-o", str(tmp_path / "h.png")], "resize"),
        (["denoise", str(runs / "dvae"), str(tmp_path / "wrong.png"), "-o", str(tmp_path / "d")], "resize"),
        (["denoise", str(runs / "dvae"), str(tmp_path / "bad.txt"), "-o", str(tmp_path / "d")], "cannot read"),
        (["denoise", str(runs / "sr"), str(tmp_path / "wrong.png"), "-o", str(tmp_path / "d")], "unconditional"),
        (["restore-eval", str(runs / "cvae")], "restore-eval needs"),
        (["restore-eval", str(runs / "dvae"), "--levels", "a,b"], "--levels"),
        (["train", *TINY, "--corrupt", "blur:2", "--out", str(tmp_path / "x")], "--corrupt"),
        (["train", *TINY, "--condition", "lowres:9", "--out", str(tmp_path / "y")], "lowres:9"),
        (["train", *TINY, "--condition", "colour", "--out", str(tmp_path / "z")], "--condition"),
        (["train", *TINY, "--condition", "noisy", "--out", str(tmp_path / "w")], "needs --corrupt"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("vaekit: error: ") and "\n" not in err and message in err, (argv, err)
    assert not (tmp_path / "w").exists()  # the refused noisy run wrote nothing
    with pytest.raises(DataError, match="labelled"):
        from vaekit.apps import images as api
        api.train(None, data=np.random.default_rng(0).random((40, 1, 8, 8)), condition="label", epochs=1,
                  progress=False)
