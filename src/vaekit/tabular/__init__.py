"""Mixed-type tables: a fitted transformer (vaekit.data.tables), a VAE with a mixed likelihood, and a quality report.

`TabularVAE(...).fit(df)`, `.sample(n)`, `.encode(df)`, `.decode(z)`; `quality_report(real, synthetic)`.
Needs pandas (`pip install 'vaekit[tabular]'`).
"""

_LAZY = {"TabularVAE": ".model", "TabularConfig": ".config", "TableTransformer": "..data.tables", "Quality": ".quality",
         "quality_report": ".quality", "read_table": ".io", "write_table": ".io"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    # Lazy, so that the CLI can read TabularConfig without importing numpy.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'vaekit.tabular' has no attribute '{name}'")
