"""benchmarks/recommend.py (issue 47): key=value settings are checked as RecommendConfig fields before any data
set loads, so a typo is a one-line usage error instead of a worker's traceback minutes later."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # the checkout's benchmarks/ package, wherever pytest starts

from benchmarks.recommend import recommend_settings  # noqa: E402


def test_python_literals_become_values():
    words = ["hidden=(300,)", "dropout=0.5", "prior_weights=(0.4,0.5,0.1)", "recvae_layers=3"]
    assert recommend_settings(argparse.ArgumentParser(), words, model="recvae") == {
        "hidden": (300,), "dropout": 0.5, "prior_weights": (0.4, 0.5, 0.1), "recvae_layers": 3}


@pytest.mark.parametrize("word, says", [("latent=3", "unknown option 'latent'"), ("foo", "expected key=value"),
                                         ("latent_dim=abc", "expected key=value"),
                                         ("latent_dim=-3", "must be positive")])
def test_a_bad_setting_is_a_usage_error_naming_it(word, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        recommend_settings(argparse.ArgumentParser(), [word], model="recvae")
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err
