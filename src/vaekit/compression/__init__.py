"""The parts of compression with a trained VAE (its API is vaekit.apps.compression): the bits-back coder
(BB-ANS) in `bbans` with its config in `config`, lossy latent codes in `lossy`, and the file format in
`container`; docs/compression.md has both. Needs the `compression` extra (constriction).
"""
