"""The environment variables that turn vaekit's CPU speed paths off (vaekit.accel's docstring lists them)."""

from __future__ import annotations

import os

ACCEL = "VAEKIT_ACCEL"  # 0: accelerate() leaves every model as built
ONEDNN = "VAEKIT_ONEDNN_LINEAR"  # 0: no oneDNN layers (and so no C kernels, which run inside them)
NATIVE = "VAEKIT_NATIVE"  # 0: no C kernels


def switched_on(variable: str) -> bool:
    """False where `variable` is 0, false, no or off; every switch is on by default."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")
