"""Configs: flags generated from the fields (one default, shown in --help), options routed to the config
that owns them, and a config that holds another stored as one flat JSON object."""

import argparse
from dataclasses import dataclass

import pytest

from vaekit.config import (ModelConfig, TrainConfig, add_arguments, from_dict, option, option_names, options_from, route,
                           to_dict)
from vaekit.errors import ConfigError


@dataclass(frozen=True)
class Fitter:
    width: int = option(8, "units per layer")
    steps: int | None = option(None, "steps; unset: as many as the data asks")
    kind: str = option("a", "which kind", choices=("a", "b"))
    random_state: int = option(0, "the seed", flag="seed")
    internal: float = option(0.5, "not a flag", cli=False)
    train: TrainConfig = option(TrainConfig(epochs=100), "its training options", cli=False)

    def validate(self) -> None:
        if self.width < 1:
            raise ConfigError("--width must be positive")
        self.train.validate()


def _parser(*adders) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for add in adders:
        add(parser)
    return parser


def test_flags_parse_their_types_and_stay_out_unless_given():
    parser = _parser(lambda p: add_arguments(p, Fitter))
    args = parser.parse_args(["--width", "3", "--steps", "7", "--kind", "b", "--seed", "4"])
    assert options_from(args, Fitter) == {"width": 3, "steps": 7, "kind": "b", "random_state": 4}
    assert options_from(parser.parse_args([]), Fitter) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--internal", "1"])


def test_help_shows_the_default_of_the_base_a_use_trains_with():
    parser = _parser(lambda p: add_arguments(p, TrainConfig, base=TrainConfig(batch_size=64), only=("batch_size",)))
    text = parser.format_help()
    assert "--batch-size" in text and "(default: 64)" in text and "--epochs" not in text


def test_options_reach_the_config_that_owns_them_or_name_the_valid_ones():
    model, train = route({"latent_dim": 3, "epochs": 2, "hidden": [4, 4]}, ModelConfig(), TrainConfig(batch_size=7))
    assert (model.latent_dim, model.hidden, train.epochs, train.batch_size) == (3, (4, 4), 2, 7)
    fitter, train = route({"width": 4, "lr": 0.01}, Fitter(), TrainConfig())
    assert (fitter.width, fitter.train.lr, fitter.train.epochs) == (4, 0.01, 100)  # the first owner takes it
    assert train == TrainConfig()
    with pytest.raises(ConfigError, match="unknown option 'depth': valid options are .*width"):
        route({"depth": 3}, Fitter())
    with pytest.raises(ConfigError, match="--epochs"):
        route({"epochs": 0}, Fitter())


def test_a_held_config_is_stored_flat_and_read_back():
    config = route({"epochs": 5, "width": 2}, Fitter())[0]
    data = to_dict(config)
    assert data["epochs"] == 5 and "train" not in data and set(data) == option_names(Fitter)
    assert from_dict(Fitter, data) == config
    assert from_dict(Fitter, {"width": 2, "epochs": 5}).train == TrainConfig(epochs=5)  # the rest: the held default
    with pytest.raises(ConfigError, match="another vaekit version"):
        from_dict(Fitter, {"depth": 1})
