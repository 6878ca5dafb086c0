"""Compression with a trained VAE: lossless bits-back coding (BB-ANS) and lossy latent codes.

    from vaekit.compression import compress, decompress
    compress("runs/mnist", "t10k-images-idx3-ubyte.gz", "test.vae")        # binary images, lossless
    compress("runs/mnist", images, "test-lossy.vae", lossy_bits=6)          # 6 bits per latent
    decompress("runs/mnist", "test.vae", "restored.npy")

The file format is documented in `container`; the coder in `bbans`; docs/compression.md has both.
Needs the `compression` extra (constriction).
"""

from .api import Compressed, compress, decompress, read_images
from .bbans import BitsBackCoder, CoderConfig

__all__ = ["BitsBackCoder", "CoderConfig", "Compressed", "compress", "decompress", "read_images"]
