"""The parts of compression with a trained VAE (its API is vaekit.apps.compression): the bits-back coder
(BB-ANS) in `bbans` with its config in `config`, lossy latent codes in `lossy`, a VQ or FSQ run's codes under its
code prior in `codes`, and the file format in
`container`; docs/compression.md describes them. Needs the `compression` extra (constriction).
"""
