"""Samplers fitted after training (gmm, two-stage) and their wiring: `vaekit sample --from`, `vaekit eval --samples`
and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vaekit.apps import images, sampling
from vaekit import samplers
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.errors import ConfigError
from vaekit.samplers import GaussianMixture, fit_gmm, fit_two_stage

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # a second stage as small as the test's latents need
        patch.setattr(samplers, "TWO_STAGE", TrainConfig(epochs=2, batch_size=256, progress=False))
        patch.setattr(samplers, "TWO_STAGE_HIDDEN", (32,))
        yield images.train(tmp_path_factory.mktemp("samplers") / "run", data="digits", hidden=(32,), latent_dim=3,
                           epochs=2, progress=False)


def _two_clusters(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    side = torch.where(torch.arange(n) % 2 == 0, -4.0, 4.0)  # the clusters' centres on the first axis
    return torch.randn(n, 2, generator=generator) * torch.tensor([0.5, 1.0]) + torch.stack([side, 0 * side], 1)


def test_the_mixture_picks_k_by_heldout_bic_and_its_tensors_reproduce_sklearn():
    mixture = pytest.importorskip("sklearn.mixture")
    fit = fit_gmm(_two_clusters(2000, 0), _two_clusters(500, 1), components=(1, 2, 5))
    assert fit.details["components"] == 2 and set(fit.details["bic"]) == {1, 2, 5}
    assert fit.details["bic"][2] < fit.details["bic"][1]
    reference = mixture.GaussianMixture(2, covariance_type="full", reg_covar=1e-5, random_state=0)
    reference.fit(_two_clusters(2000, 0).double().numpy())
    z = _two_clusters(50, 2)
    assert np.allclose(fit.sampler.log_prob(z).numpy(), reference.score_samples(z.double().numpy()), atol=1e-4)
    draws = fit.sampler.sample(20000, torch.Generator().manual_seed(0))
    assert draws.shape == (20000, 2)
    assert torch.allclose(draws.mean(0), torch.zeros(2), atol=0.1)
    assert torch.allclose(draws[:, 0].abs().mean(), torch.tensor(4.0), atol=0.1)
    assert torch.allclose(draws.std(0), torch.tensor([(16 + 0.25) ** 0.5, 1.0]), atol=0.05)


def test_an_empty_mixture_takes_a_fitted_ones_state():
    fit = fit_gmm(_two_clusters(400, 0), _two_clusters(100, 1), components=(2,))
    empty = GaussianMixture.empty(2, 2)
    empty.load_state_dict(fit.sampler.state_dict())
    z = _two_clusters(10, 3)
    assert torch.equal(empty.log_prob(z), fit.sampler.log_prob(z))


def test_the_two_stage_sampler_learns_where_the_latents_are():
    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0)) * 0.3 + torch.tensor([3.0, -2.0])
    fit = fit_two_stage(z[:800], z[800:], TrainConfig(epochs=20, batch_size=32, lr=3e-3, progress=False),
                        hidden=(64,))
    draws = fit.sampler.sample(2000, torch.Generator().manual_seed(0))
    assert draws.shape == (2000, 2) and fit.details["epochs"] == 20
    assert torch.allclose(draws.mean(0), torch.tensor([3.0, -2.0]), atol=0.3)


@pytest.mark.parametrize("name", ["gmm", "two-stage"])
def test_a_sampler_is_fitted_once_saved_in_the_run_and_refitted_when_the_model_changes(run, name):
    fit = images.fit_sampler(run, name)
    files = sorted(p.name for p in (run.path / "samplers").iterdir() if p.name.startswith(name))
    assert files == [f"{name}.json", f"{name}.safetensors"]
    described = json.loads((run.path / "samplers" / f"{name}.json").read_text())
    assert described["kind"] == "sampler" and described["format_version"] == sampling.SAMPLER_FORMAT
    loaded = images.fit_sampler(images.load_run(run.path), name)
    assert loaded.seconds == fit.seconds  # read back, not fitted again
    draw = [f.sampler.sample(5, torch.Generator().manual_seed(1)) for f in (fit, loaded)]
    assert torch.allclose(*draw)
    model = run.path / "model.safetensors"
    saved = model.read_bytes()
    try:
        model.write_bytes(saved + b" ")  # another model: the saved sampler no longer fits it
        assert images.fit_sampler(run, name).seconds != fit.seconds
    finally:
        model.write_bytes(saved)
        images.fit_sampler(run, name, refit=True)


def test_sample_from_a_fitted_sampler_on_the_command_line(run, tmp_path):
    for name in sampling.SAMPLERS:
        assert main(["sample", str(run.path), "--from", name, "-n", "6", "-o", str(tmp_path / f"{name}.npy")]) == 0
        samples = np.load(tmp_path / f"{name}.npy")
        assert samples.shape == (6, 1, 8, 8) and np.isfinite(samples).all()
    again = images.sample(run, 6, tmp_path / "again.npy", sampler="gmm")
    assert np.array_equal(np.load(again), np.load(tmp_path / "gmm.npy"))


def test_eval_with_samples_writes_the_scores_and_the_report_shows_them_beside_the_nll(run, capsys):
    assert main(["eval", str(run.path), "--k", "2", "--samples", "100", "--from", "gmm"]) == 0
    printed = capsys.readouterr().out
    assert "frechet_distance" in printed and "precision" in printed
    quality = json.loads((run.path / "eval-k2.json").read_text())["sample_quality"]
    assert quality["sampler"] == "gmm" and quality["n_samples"] == 100 and quality["frechet_distance"] > 0
    assert 0 <= quality["precision"] <= 1 and 0 <= quality["recall"] <= 1 and quality["inception_fid"] is None
    assert (run.path / "nearest.png").stat().st_size > 0
    page = images.report(run).read_text()
    assert page.index("NLL, importance weighted") < page.index("Fréchet distance") < page.index("bits/dim")
    assert "Memorisation check" in page


def test_wrong_sampler_uses_are_one_line_errors(run, tmp_path):
    with pytest.raises(ConfigError, match="add --samples"):
        images.evaluate(run, k=2, sampler="gmm")
    with pytest.raises(ConfigError, match="prior is not fitted"):
        images.fit_sampler(run, "prior")
    with pytest.raises(ConfigError, match="at most"):
        images.evaluate(run, k=2, samples=10 ** 9)
    labelled = images.train(tmp_path / "cvae", data="digits", hidden=(16,), latent_dim=2, epochs=1,
                            condition="label", progress=False)
    with pytest.raises(ConfigError, match="use --from prior"):
        images.sample(labelled, 4, tmp_path / "s.png", sampler="gmm")
    with pytest.raises(ConfigError, match="unconditional"):
        images.evaluate(labelled, k=2, samples=10)


def _random_inception(path) -> None:
    """torch-fidelity's Inception-v3 with its random initial weights, saved as a weights file at `path`."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    with pytest.MonkeyPatch.context() as patch:  # its constructor always loads weights: from a file or the web
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: None)
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        network = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(network.state_dict(), path)


def test_eval_scores_inception_fid_from_local_weights_only_and_refuses_other_files_in_one_line(run, tmp_path, capsys):
    pytest.importorskip("torch_fidelity")
    weights = tmp_path / "inception.pth"
    _random_inception(weights)
    command = ["eval", str(run.path), "--k", "2", "--limit", "10", "--samples", "4", "--inception-weights"]
    assert main([*command, str(weights)]) == 0
    fid = json.loads((run.path / "eval-k2-limit10.json").read_text())["sample_quality"]["inception_fid"]
    assert np.isfinite(fid) and fid >= 0
    (tmp_path / "text.pth").write_text("not weights")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    for bad, message in (("missing.pth", "not found"), ("text.pth", "is not a file of PyTorch weights"),
                         ("other.pth", "not Inception-v3's")):
        capsys.readouterr()
        assert main([*command, str(tmp_path / bad)]) != 0
        printed = capsys.readouterr().err.strip()
        assert message in printed and len(printed.splitlines()) == 1 and "Traceback" not in printed
