"""`vaekit serve`: the flags of the HTTP API, one call of vaekit.apps.serve.serve; its limits are ServeConfig's
fields."""

from __future__ import annotations

import argparse

from ..apps import serve
from ..apps.serve import ServeConfig
from ..config import add_arguments, from_args
from .flags import add_parameter

EXAMPLE = ("vaekit serve runs/mlp --port 8000            # open http://127.0.0.1:8000/\n"
           "  vaekit serve digits=runs/digits fashion=runs/conv --max-batch 32\n"
           "  curl -s -X POST localhost:8000/decode -H 'content-type: application/json' "
           "-d '{\"model\": \"mlp\", \"z\": [[0, 0]]}'")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("serve", help="HTTP API and browser page for trained runs",
                              description="Serve trained models: JSON endpoints /models /encode /decode /sample "
                                          "/reconstruct /score (core runs), /tabular/sample, /recommend, "
                                          "/text/sample, the OpenAPI schema at /openapi.json, and a page at /.",
                              epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="directory of 'vaekit train', 'vaekit tabular fit', "
                   "'vaekit recommend fit' or 'vaekit text fit' (kind read from its files), or NAME=DIR")
    add_parameter(p, serve.serve, "host", help="address to bind (127.0.0.1: this machine only)")
    add_parameter(p, serve.serve, "port", help="TCP port")
    add_parameter(p, serve.serve, "device", help="cpu, cuda, cuda:N or auto")
    add_arguments(p, ServeConfig)
    add_parameter(p, serve.serve, "access_log", help="log every request")
    p.set_defaults(handler=lambda a: serve.serve(a.runs, a.host, a.port, from_args(ServeConfig, a), a.device,
                                                 a.access_log))
