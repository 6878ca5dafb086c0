"""TabularConfig and the tabular training defaults; imports neither numpy nor torch (fast CLI --help)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_values, option
from ..errors import ConfigError

# Tabular training defaults that differ from TrainConfig's, TVAE's: batch 500, L2 1e-5, and beta 0.5 (TVAE
# weights the reconstruction by loss_factor 2; on wine-white it lifted ML efficacy R^2 from ~0.23 to ~0.27).
TRAIN_DEFAULTS = dict(epochs=100, batch_size=500, weight_decay=1e-5, beta=0.5, progress=False)


@dataclass(frozen=True)
class TabularConfig:
    latent_dim: int = option(32, "size of the latent code per row (the compressed record)")
    hidden: tuple[int, ...] = option((128, 128), "MLP hidden sizes of the encoder (the decoder mirrors them)")
    activation: str = option("relu", "hidden activation: relu, tanh, elu, gelu, leaky_relu")
    normalization: str = option("modes", "continuous columns: modes (mode-specific normalization, TVAE's own: a "
                                "Gaussian mixture per column, one mode when one Gaussian explains the column as "
                                "well), or standard (one mean and scale per column; faster to fit)")
    max_categories: int = option(100, "a categorical column with more distinct values is an error")
    max_integer_levels: int = option(10, "an integer column with at most this many distinct values (a rating, "
                                     "a count of few values) is modelled as categorical over its values; 0: never")
    min_scale: float = option(0.01, "floor of the Gaussian sigma of continuous columns, in standard units")

    def validate(self) -> None:
        check_values(self)
        if not self.min_scale > 0:
            raise ConfigError(f"--min-scale must be positive, got {self.min_scale}")
        if self.latent_dim < 1 or not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"--latent-dim and --hidden must be positive, got {self.latent_dim} and {self.hidden}")
        from ..data.tables import check_normalization  # the transformer's; imports numpy, not at --help

        check_normalization(self.normalization)
        if self.max_categories < 2:
            raise ConfigError(f"--max-categories must be at least 2, got {self.max_categories}")
        if self.max_integer_levels < 0:
            raise ConfigError(f"--max-integer-levels must be 0 (off) or positive, got {self.max_integer_levels}")
