"""Mixed-type tables from files: the API behind `vaekit tabular fit|sample|encode|decode|evaluate`, one
function per verb. Each reads its tables, calls one method of vaekit.tabular.TabularVAE (or quality_report)
and writes the result; pandas and torch are imported inside the functions."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import ConfigError, DataError
from ..io import atomic_write
from ..saved import check_new_folder, check_output_file, check_output_folder, clear_folder


def fit_file(data, out, categorical=(), continuous=(), datetime=(), na_values=(), progress: bool = True,
             overwrite: bool = False, **options):
    """Fit a TabularVAE on the table `data` (.csv/.tsv/.parquet; `na_values` mark missing cells, and are saved
    with the model for every later command that reads or writes its tables) and save it to
    `out` (a folder holding a saved model is refused unless `overwrite`). categorical/continuous/datetime name
    columns whose detected kind is overridden; `options` are TabularConfig and TrainConfig fields. Returns the
    fitted TabularVAE."""
    from ..tabular import TabularVAE

    model = TabularVAE(categorical=categorical, continuous=continuous, datetime=datetime, na_values=na_values,
                       progress=progress, **options)
    table = model.read(data)
    check_new_folder(out, overwrite)
    model.fit(table)
    clear_folder(out, overwrite)
    model.save(out)
    return model


def conditions(items: list[str]) -> dict[str, str]:
    """{column: value} from 'COL=VALUE' strings (the value may hold '=')."""
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--condition '{item}' is not COL=VALUE: write e.g. --condition 'income=>50K'")
    return dict(item.split("=", 1) for item in items)


def sample_file(model, out, n: int = 1000, conditions: dict | None = None, seed: int = 0) -> Path:
    """n synthetic rows from the model folder `model` into the table `out`; `conditions` {column: value}
    keep only rows with those categorical/boolean values."""
    from ..tabular import TabularVAE
    from ..tabular.io import SUFFIXES

    model = TabularVAE.load(model)
    out = check_output_file(out, SUFFIXES)
    return model.write(model.sample(n, conditions, seed=seed), out)


def encode_file(model, data, out, na_values=()) -> Path:
    """The latent codes E[z|x] of the rows of `data` (the compressed records), N x latent_dim, into `out`
    (.npy, or .csv). The model's saved na_values mark missing cells, and `na_values` more."""
    import numpy as np

    from ..tabular import TabularVAE

    model = TabularVAE.load(model)
    check_output_file(out)
    codes = model.encode(model.read(data, na_values))
    buffer = io.BytesIO()
    if str(out).endswith(".csv"):
        np.savetxt(buffer, codes, delimiter=",", fmt="%.7g")
    else:
        np.save(buffer, codes)
    atomic_write(out, buffer.getvalue())
    return Path(out)


def decode_file(model, codes, out) -> Path:
    """The most likely rows for the latent codes in `codes` (.npy or .csv written by `encode_file`) into `out`."""
    import numpy as np

    from ..tabular import TabularVAE
    from ..tabular.io import SUFFIXES

    model = TabularVAE.load(model)
    out = check_output_file(out, SUFFIXES)
    try:
        z = np.loadtxt(codes, delimiter=",", ndmin=2) if str(codes).endswith(".csv") else np.load(codes)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read codes from {codes} ({str(err).splitlines()[0]}): "
                        "pass a .npy or .csv written by 'vaekit tabular encode'") from None
    return model.write(model.decode(z), out)


def evaluate_files(real, synthetic, holdout=None, target: str | None = None, out="quality", na_values=(),
                   model=None, progress: bool = True):
    """The quality report of the synthetic table against the real one (with `holdout`, real rows unseen in
    fitting: ML efficacy and privacy too), written into the folder `out`. `na_values` mark missing cells, and so do
    those saved with `model` (the fitted model's folder), when given; `progress`: a bar with an ETA on a terminal.
    Returns the Quality and the paths written."""
    from ..tabular import TabularVAE, quality_report, read_table

    if target is not None and holdout is None:
        raise ConfigError("--target names the column ML efficacy predicts, which needs --holdout rows")
    out = check_output_folder(out)
    if model is not None:
        na_values = (*TabularVAE.load(model, device="cpu").na_values, *na_values)
    name = f"{Path(synthetic).name} vs {Path(real).name}"  # the pictures' title line
    real, synthetic = read_table(real, na_values), read_table(synthetic, na_values)
    holdout = read_table(holdout, na_values) if holdout else None
    if holdout is not None and set(holdout.columns) != set(real.columns):
        raise DataError(f"--holdout has columns {sorted(map(str, holdout.columns))[:5]}, the real table "
                        f"{sorted(map(str, real.columns))[:5]}: pass held-out rows of the real table")
    quality = quality_report(real, synthetic, holdout, target, out_dir=out, name=name, progress=progress)
    out = Path(out)
    return quality, tuple(str(out / name) for name in ("quality.json", "marginals.png", "correlations.png")
                          if (out / name).exists())
