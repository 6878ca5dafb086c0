"""`vaekit export`: the flags of exporting a run's encoder and decoder for serving without vaekit, one call of
vaekit.apps.export.export."""

from __future__ import annotations

from ..apps import export
from .flags import add_parameter, command_maker

EXAMPLES = {
    "export": "vaekit export runs/mlp --format onnx -o exported/mlp   # encoder.onnx, decoder.onnx, export.json\n"
              "  vaekit export runs/mlp --format exported-program -o exported/mlp-pt2   # encoder.pt2, decoder.pt2",
}


def add_commands(subparsers) -> None:
    command = command_maker(subparsers, EXAMPLES)
    p = command("export", "the encoder and decoder as ONNX files or torch.export programs, to serve without vaekit")
    p.add_argument("run", help="run directory written by 'vaekit train'")
    p.add_argument("-o", "--out", required=True, help="folder to write: new or empty (see --overwrite)")
    add_parameter(p, export.export, "format", choices=tuple(export.FORMATS),
                  help="onnx (onnxruntime or any ONNX runtime) or exported-program (torch.export .pt2 files)")
    add_parameter(p, export.export, "opset", help="ONNX opset of --format onnx")
    add_parameter(p, export.export, "overwrite", help="write into a folder that holds other files, replacing the "
                                                      "files of the same names")
    p.set_defaults(handler=lambda a: export.export(a.run, a.out, a.format, a.opset, a.overwrite))
