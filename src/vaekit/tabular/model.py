"""TabularVAE: a fitted TableTransformer + a core VAE with a MixedLikelihood, in the style of SDV's
synthesizers: `TabularVAE(epochs=100).fit(df)`, `.sample(n)`, `.sample(n, conditions={...})`,
`.encode(df)` / `.decode(z)` for record compression, `.save(dir)` / `TabularVAE.load(dir)`.

A model directory holds config.json, transformer.json and model.safetensors (no pickle).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import TrainConfig, check_count, from_dict, route, to_dict
from ..errors import CheckpointError, ConfigError, DataError
from .config import TRAIN_DEFAULTS, TabularConfig

KIND = "tabular"  # config.json's kind (vaekit.saved)
FORMAT_VERSION = 1  # vaekit 0.1.0 wrote {"format": "vaekit.tabular/1"} instead of kind and version
TRANSFORMER_FILE = "transformer.json"
def split_options(options: dict) -> tuple[TabularConfig, TrainConfig]:
    """Keyword options -> (TabularConfig, TrainConfig); an unknown name is a ConfigError."""
    return route(options, TabularConfig(), TrainConfig(**TRAIN_DEFAULTS))


class TabularVAE:
    """A VAE for mixed-type tables. Options are TabularConfig and TrainConfig fields
    (e.g. `TabularVAE(epochs=50, latent_dim=16, normalization="standard")`); categorical/continuous/
    datetime name columns whose detected kind is overridden; na_values are the strings that mark a missing cell in
    its tables (saved with the model: `read` applies them to new tables, `write` marks missing cells with the first).
    Continuous columns get mode-specific normalization by default (`normalization="modes"`, TVAE's
    preprocessing); "standard" is the option."""

    def __init__(self, categorical=(), continuous=(), datetime=(), na_values=(), **options):
        self.config, self.train_config = split_options(options)
        self.overrides = dict(categorical=tuple(categorical), continuous=tuple(continuous), datetime=tuple(datetime))
        self.na_values = tuple(na_values)  # the strings that marked a missing cell in the fitted table: saved
        self.transformer = None
        self.vae = None
        self.history: list[dict] = []
        self.fit_seconds = 0.0

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, df) -> "TabularVAE":
        """Fit the transformer and train the VAE on every row of df (a pandas DataFrame)."""
        import torch

        from ..limits import build_within_memory
        from ..training import Trainer
        from ..data.tables import TableTransformer

        started = time.perf_counter()
        torch.manual_seed(self.train_config.seed)
        self.transformer = TableTransformer.fit(df, normalization=self.config.normalization,
                                                max_categories=self.config.max_categories,
                                                max_integer_levels=self.config.max_integer_levels,
                                                seed=self.train_config.seed, **self.overrides)
        x = torch.from_numpy(self.transformer.transform(df))  # (N, D)
        self.vae = build_within_memory(self._build, "a model of these sizes", "lower --latent-dim or --hidden")
        self.history = Trainer(self.vae, self.train_config).fit(x)
        self.vae.eval()
        self.fit_seconds = time.perf_counter() - started
        return self

    def _build(self):
        from ..likelihoods.mixed import MixedLikelihood
        from ..networks import MLP
        from ..priors import StandardNormal
        from ..vae import VAE

        cfg, width = self.config, self.transformer.width
        return VAE(MLP((width,), cfg.hidden, (2 * cfg.latent_dim,), cfg.activation),
                   MLP((cfg.latent_dim,), tuple(reversed(cfg.hidden)), (width,), cfg.activation),
                   MixedLikelihood(self.transformer.blocks(), cfg.min_scale), StandardNormal(cfg.latent_dim))

    def _fitted(self):
        if self.vae is None:
            raise ConfigError("the model is not fitted: call fit(df) or TabularVAE.load(path) first")
        return self.vae

    # -- tables ----------------------------------------------------------------------------------
    def read(self, path, na_values=()):
        """The table at `path` read as the fitted one was: its saved na_values (and any extra `na_values`) mark
        missing cells."""
        from .io import read_table

        return read_table(path, dict.fromkeys((*self.na_values, *na_values)))

    def write(self, df, path) -> Path:
        """Write df to `path`, a missing cell marked as in the fitted table (its first na_value; else empty)."""
        from .io import write_table

        return write_table(df, path, self.na_values[0] if self.na_values else "")

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, n: int, conditions: dict | None = None, seed: int | None = None, batch_size: int = 10_000,
               max_draws: int = 2_000_000):
        """n synthetic rows as a DataFrame with the input's columns, dtypes and category sets.

        conditions {column: value} on categorical or boolean columns: exact conditional samples by
        rejection, accepting z ~ p(z) with probability p(value | z) and setting the column to value.
        A value so rare that max_draws latent draws give fewer than n rows raises DataError.
        """
        import torch

        from ..limits import check_memory

        vae = self._fitted()
        if n < 1:
            raise ConfigError(f"-n must be positive, got {n}")
        if seed is not None:
            check_count("--seed", seed, 0)
        check_memory(n * (12 * self.transformer.width + 64 * len(self.transformer.columns)), f"-n {n} rows",
                     "ask for fewer")
        device = next(vae.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.train_config.seed if seed is None else seed)
        targets = self._condition_columns(conditions or {})
        kept, have, drawn = [], 0, 0
        with torch.no_grad():
            while have < n:
                if drawn >= max_draws:
                    raise DataError(f"only {have} of {n} rows met {conditions} in {drawn} draws: the value is too rare "
                                    "under the model; ask for fewer rows or fit longer")
                m = batch_size if targets else min(batch_size, n - have)
                z = torch.randn(m, vae.latent_dim, generator=generator, device=device)  # (m, latent)
                px = vae.decode(z)
                rows = px.sample(generator=generator)  # (m, D)
                if targets:
                    mean = px.mean  # (m, D) probabilities of the one-hot and flag entries
                    prob = torch.ones(m, device=device)
                    for column, state in targets:
                        prob = prob * (mean[:, column] if state else 1 - mean[:, column])  # p(values | z)
                    rows = rows[torch.rand(m, generator=generator, device=device) < prob]
                    for column, state in targets:
                        rows[:, self._block_of(column)] = 0.0
                        rows[:, column] = state
                kept.append(rows)
                have += len(rows)
                drawn += m
        return self.transformer.inverse_transform(torch.cat(kept)[:n].cpu().numpy())

    def _condition_columns(self, conditions: dict) -> list[tuple[int, float]]:
        """(row-layout index, 0 or 1) of the flag or chosen category entry each condition fixes;
        for a categorical, fixing its chosen entry to 1 also zeroes the rest of the block."""
        from ..data.tables import python_scalar

        by_name, start = {}, 0
        for column in self.transformer.columns:
            by_name[column.name] = (column, start)
            start += sum(w for _, w in column.blocks())
        allowed = [c.name for c in self.transformer.columns if c.kind in ("categorical", "boolean")]
        targets = []
        for name, value in conditions.items():
            if name not in allowed:
                raise ConfigError(f"cannot condition on '{name}': conditions name categorical or boolean columns "
                                  f"({', '.join(allowed) or 'this table has none'})")
            column, first = by_name[name]
            if column.kind == "boolean":
                targets.append((first, float(_as_bool(value))))
                continue
            labels = [str(c) for c in column.categories]
            value = python_scalar(value)
            if value in column.categories:
                index = column.categories.index(value)
            elif str(value) in labels:
                index = labels.index(str(value))
            else:
                raise DataError(f"'{value}' is not a category of '{name}': use one of {', '.join(labels[:20])}")
            targets.append((first + index, 1.0))
        return targets

    def _block_of(self, index: int) -> slice:
        """The slice of the row layout holding the block that contains entry `index`."""
        start = 0
        for _, width in self.transformer.blocks():
            if start <= index < start + width:
                return slice(start, start + width)
            start += width
        raise IndexError(index)

    # -- compression -----------------------------------------------------------------------------
    def encode(self, df, batch_size: int = 10_000) -> np.ndarray:
        """Latent codes E[z|x] of the rows, (N, latent_dim) float32."""
        import torch

        vae = self._fitted()
        x = torch.from_numpy(self.transformer.transform(df))
        with torch.no_grad():
            return torch.cat([vae.encode(x[i:i + batch_size]).mean for i in range(0, len(x), batch_size)]).cpu().numpy()

    def decode(self, z: np.ndarray):
        """The most likely row for each code z (N, latent_dim): Gaussian means, argmax categories."""
        import torch

        vae = self._fitted()
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != vae.latent_dim:
            raise DataError(f"codes have shape {z.shape} but the model needs (N, {vae.latent_dim})")
        if not np.isfinite(z).all():
            raise DataError(f"the codes hold {int((~np.isfinite(z)).sum())} NaN or infinite values: pass codes "
                            "written by 'vaekit tabular encode'")
        with torch.no_grad():
            return self.transformer.inverse_transform(vae.decode_mean(torch.from_numpy(z)).cpu().numpy())

    # -- saving ----------------------------------------------------------------------------------
    def save(self, path) -> Path:
        from ..checkpoint import CONFIG_FILE, MODEL_FILE, save_tensors
        from ..io import write_json

        vae, path = self._fitted(), Path(path)
        write_json(path / TRANSFORMER_FILE, self.transformer.to_dict())
        save_tensors(path / MODEL_FILE, vae.state_dict())
        write_json(path / CONFIG_FILE, {"kind": KIND, "format_version": FORMAT_VERSION, "model": to_dict(self.config),
                                        "train": to_dict(self.train_config), "overrides": self.overrides,
                                        "na_values": list(self.na_values),
                                        "fit_seconds": self.fit_seconds, "history": self.history})
        return path

    @classmethod
    def load(cls, path, device: str = "auto") -> "TabularVAE":
        """A saved model on `device` ('auto': the GPU where there is one, as fit chooses; the same
        seed samples the same rows as the fitted model on the same device)."""
        from ..checkpoint import MODEL_FILE, load_weights, read_json
        from ..saved import read_config
        from ..devices import select_device
        from ..data.tables import TableTransformer

        path = Path(path)
        config = read_config(path, KIND, FORMAT_VERSION)
        self = cls.__new__(cls)
        self.config = from_dict(TabularConfig, config["model"])
        self.train_config = from_dict(TrainConfig, config["train"])
        self.overrides = config.get("overrides", {})
        self.na_values = tuple(config.get("na_values", ()))  # vaekit 0.1.0 did not save them
        self.history, self.fit_seconds = config.get("history", []), config.get("fit_seconds", 0.0)
        self.transformer = TableTransformer.from_dict(read_json(path / TRANSFORMER_FILE))
        self.vae = self._build()
        load_weights(self.vae, path / MODEL_FILE)
        self.vae.to(select_device(device)).eval()
        return self


def _as_bool(value) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise DataError(f"'{value}' is not a boolean: use true or false")
        return value.lower() in ("true", "1")
    return bool(value)

