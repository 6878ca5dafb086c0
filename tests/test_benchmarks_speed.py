"""benchmarks/speed_cli.py (issue 49): `vaekit train` as a user runs it beside the speed benchmark's peers, tried
on a few images so the harness itself is known to work before a long measurement."""

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import speed, speed_cli  # noqa: E402 (the benchmarks folder beside src/)


@pytest.fixture
def fashion_mnist():
    from vaekit.errors import VaekitError

    try:
        speed.fashion("mlp", 1)
    except VaekitError as err:
        pytest.skip(f"Fashion-MNIST is not here: {err}")


def test_the_harness_runs_the_cli_and_a_peer_and_pairs_their_speeds(fashion_mnist, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    args = argparse.Namespace(reps=1, epochs=2, target_epochs=2, threads=1, target=1000.0, peers="vaekit-cli,plain",
                              limit=300, tag="")
    raw = speed_cli.run(args)
    rows, table = speed_cli.summary(args, raw)
    cli, plain = rows
    assert cli["peer"] == "vaekit-cli" and cli["reps"] == plain["reps"] == 1 and cli["cli_ratio_median"] == 1.0
    assert plain["cli_ratio_median"] == pytest.approx(cli["samples_per_s_median"] / plain["samples_per_s_median"])
    for row in rows:  # both scored after each of their 2 epochs; 1000 nats is reached at once
        assert row["epochs_to_target"] == 1 and 0 < row["seconds_to_target"] < row["train_seconds"]
        assert 100 < row["test_neg_elbo"] < 1000
    assert len(raw["targets"]["vaekit-cli"]["curve"]) == 2
    assert "| vaekit-cli | 1 |" in table and cli["command_seconds"] > 0


def test_a_peer_whose_library_is_missing_is_skipped_with_a_line(monkeypatch, capsys):
    monkeypatch.setitem(speed_cli.NEEDS, "keras", "no_such_module_for_this_test")
    assert speed_cli.available(["vaekit-cli", "keras", "plain"]) == ["vaekit-cli", "plain"]
    assert "keras: no_such_module_for_this_test is not installed here, skipped" in capsys.readouterr().err


def test_epochs_to_target_counts_the_epochs_until_the_score_first_reaches_it():
    assert speed.epochs_to_target([300.0, 250.0, 244.9, 246.0], 245.0) == 3
    assert speed.epochs_to_target([300.0, 250.0], 245.0) is None
