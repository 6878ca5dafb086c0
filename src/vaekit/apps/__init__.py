"""Applications: one module per use, its Python API (no argparse): a trained VAE composed with a data adapter.
Each use's flags live in vaekit.cli.<use>; apps import torch inside their functions, so the CLI reads their
signatures for --help without it."""
