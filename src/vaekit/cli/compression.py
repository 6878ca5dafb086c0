"""`vaekit compress` and `vaekit decompress`: the flags of vaekit.apps.compression, one API function each.
The API (torch, constriction) is imported when a command runs; the coder's flags come from its light config."""

from __future__ import annotations

import argparse

from ..compression.config import CoderConfig
from ..config import add_arguments, options_from
from .flags import command_maker

EXAMPLES = {
    "compress": "vaekit compress runs/mnist t10k-images-idx3-ubyte.gz -o test.vae   # binary images, lossless\n"
                "  vaekit compress runs/mnist images.npy -o small.vae --lossy-bits 6     # lossy latent code\n"
                "  vaekit compress runs/mnist images.npy -o smaller.vae --lossy-bits 6 --entropy-code",
    "decompress": "vaekit decompress runs/mnist test.vae -o restored.npy",
}


def add_commands(subparsers) -> None:
    command = command_maker(subparsers, EXAMPLES)
    p = command("compress", "compress images with a trained VAE (bits-back ANS, or lossy latent codes)")
    p.add_argument("run", help="run directory written by 'vaekit train'")
    p.add_argument("data", help="images: IDX file (.gz ok), .npy/.npz, or a folder of PNG/JPEG")
    p.add_argument("-o", "--out", required=True, help="output .vae file")
    p.add_argument("--lossy-bits", type=int, help="store B bits per informative latent per image instead of "
                   "coding losslessly")
    p.add_argument("--entropy-code", action="store_true", help="lossy: ANS-code the latent indices with a Gaussian "
                   "model of the latent means fitted to these images (saves bits where the means don't fill the prior)")
    add_arguments(p, CoderConfig)
    p.set_defaults(handler=_compress)

    p = command("decompress", "decode a .vae file with the run that compressed it")
    p.add_argument("run", help="run directory the file was compressed with")
    p.add_argument("file", help=".vae file written by 'vaekit compress'")
    p.add_argument("-o", "--out", required=True, help="output .npy")
    p.set_defaults(handler=_decompress)


def _compress(args: argparse.Namespace):
    from ..apps import compression

    result = compression.compress(args.run, args.data, args.out, args.lossy_bits,
                                  CoderConfig(**options_from(args, CoderConfig)), entropy_code=args.entropy_code)
    print(f"{result.n} images, {result.bytes} bytes: {result.bits_per_dim:.4f} bits/dim, "
          f"{8 * result.bytes / result.n:.1f} bits per image")
    return result.path


def _decompress(args: argparse.Namespace):
    from ..apps import compression

    return compression.decompress(args.run, args.file, args.out)
