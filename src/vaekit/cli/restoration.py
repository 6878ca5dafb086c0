"""`vaekit denoise`, `vaekit superres`, `vaekit restore-eval`: the flags of image restoration, each command one
call of vaekit.apps.restoration."""

from __future__ import annotations

from ..apps import images, restoration
from .flags import add_parameter, command_maker
from .images import add_data_flags

EXAMPLES = {
    "denoise": "vaekit train --condition noisy --corrupt gaussian:0.3 --network conv --epochs 10 --out runs/dvae\n"
               "  vaekit denoise runs/dvae noisy.png -o clean/            # also a .npy or a folder of images",
    "superres": "vaekit train --condition lowres:2 --network conv --epochs 10 --out runs/sr2\n"
                "  vaekit superres runs/sr2 low.png -o high.png --samples 8",
    "restore-eval": "vaekit restore-eval runs/dvae --levels 0.1,0.2,0.3,0.5 --limit 1000\n"
                    "  vaekit restore-eval runs/sr2 -o runs/sr2/restore   # super-resolution: vs bicubic",
}


def add_commands(subparsers) -> None:
    command = command_maker(subparsers, EXAMPLES)

    p = command("denoise", "denoise images with a trained VAE (best: one trained with --condition noisy --corrupt)")
    p.add_argument("run")
    p.add_argument("source", help="a .png/.jpg image, a quoted glob of them ('scans/*.png'), a .npy array "
                   "(N, C, H, W) or a folder of images")
    p.add_argument("-o", "--out", required=True, help="folder to write the denoised images to")
    add_parameter(p, restoration.denoise_files, "samples", type=int,
                  help="average this many draws: posterior draws for a plain or --corrupt run (default 0: decode "
                       "E[z|x]), prior draws for a --condition noisy run (default 8)")
    p.set_defaults(handler=lambda a: tuple(restoration.denoise_files(a.run, a.source, a.out, a.samples)))

    p = command("superres", "super-resolve images with a --condition lowres:F run: draws, mean, uncertainty")
    p.add_argument("run")
    p.add_argument("source", help="a low-resolution .png/.jpg, a quoted glob of them, a .npy array or a folder "
                   "of images")
    p.add_argument("-o", "--out", required=True, help="output .png (or .npy); OUT_uncertainty and OUT_samples beside it")
    add_parameter(p, restoration.superres_files, "samples", help="plausible high-resolution draws")
    add_parameter(p, restoration.superres_files, "seed", help="seed of the draws")
    p.set_defaults(handler=lambda a: tuple(restoration.superres_files(a.run, a.source, a.out, a.samples, a.seed)))

    p = command("restore-eval", "PSNR/SSIM of denoising or super-resolution on test images, with grids")
    p.add_argument("run")
    add_parameter(p, restoration.restore_eval, "levels", type=str, help="noise levels to test")
    add_parameter(p, restoration.restore_eval, "limit", help="test images to use")
    add_parameter(p, restoration.restore_eval, "samples", help="super-resolution draws averaged")
    p.add_argument("-o", "--out", help="output folder (default: RUN/restore)")
    add_data_flags(p)
    p.set_defaults(handler=_restore_eval)


def _restore_eval(args):
    run = images.as_run(args.run)
    rows = restoration.restore_eval(run, args.levels, args.limit, args.out, args.samples, args.data, args.data_dir)
    print(restoration.format_table(rows))
    return images.output_path(run, args.out, "restore", None) / "restore_eval.json"
