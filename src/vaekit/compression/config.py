"""The bits-back coder's config (no torch import: the CLI builds its flags from it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_count, check_values, option
from ..errors import ConfigError


@dataclass(frozen=True)
class CoderConfig:
    """Latent discretization of the bits-back coder (stored in each file's header)."""

    step_log2: int = option(10, "lossless: latent bucket width 2^-N in z units, fine enough to track posteriors "
                                "with std ~0.01")
    z_max: float = option(8.0, "latents are clipped to [-z_max, z_max] (8 prior standard deviations)", cli=False)
    seed: int = option(0, "seed of the initial random words the first image's bits back are drawn from", cli=False)

    @property
    def step(self) -> float:
        return 2.0 ** -self.step_log2

    @property
    def max_symbol(self) -> int:
        return int(round(self.z_max / self.step))

    def validate(self) -> None:
        check_values(self)
        check_count("the coder's seed", self.seed, 0)
        if not 1 <= self.step_log2 <= 14:
            raise ConfigError(f"step_log2 must be in 1..14, got {self.step_log2}")
        if not 0 < self.z_max <= 32:
            raise ConfigError(f"z_max must be in (0, 32], got {self.z_max}")
