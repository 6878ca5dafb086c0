"""benchmarks/variants.py (issue 42): the options a `train` command hands vaekit.train, checked without training."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # the checkout's benchmarks/ package, wherever pytest starts

from benchmarks import variants  # noqa: E402


def options(*words: str) -> dict:
    return variants.train_options(variants.build_parser().parse_args(["train", *words]))


def test_flow_steps_replaces_the_flow_variants_two():
    assert options("--variant", "iaf")["flow_steps"] == 2
    assert options("--variant", "iaf", "--flow-steps", "4")["flow_steps"] == 4
    assert options("--variant", "planar", "--flow-steps", "3")["flow_steps"] == 3


def test_flow_steps_zero_reaches_the_configs_own_check_instead_of_meaning_the_default():
    assert options("--variant", "iaf", "--flow-steps", "0")["flow_steps"] == 0


def test_precision_overrides_the_recipe_and_the_budget_is_minutes_or_epochs():
    hour = options("--variant", "vamp")
    assert (hour["precision"], hour["prior"], hour["time_limit"]) == ("bf16", "vamp", 60.0)
    assert options("--variant", "vamp", "--precision", "fp32")["precision"] == "fp32"
    assert options("--variant", "standard", "--epochs", "3")["epochs"] == 3
    assert "time_limit" not in options("--variant", "standard", "--epochs", "3")


def test_flow_steps_with_a_variant_without_a_flow_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["variants.py", "train", "--variant", "vamp", "--flow-steps", "4"])
    with pytest.raises(SystemExit) as stopped:
        variants.main()
    assert stopped.value.code == 2
    assert "variant 'vamp' has no flow" in capsys.readouterr().err
