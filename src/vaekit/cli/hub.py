"""`vaekit card`: the flags of writing a saved folder's model card, one call of vaekit.apps.hub.write_card."""

from __future__ import annotations

from ..apps import hub
from .flags import command_maker

EXAMPLES = {
    "card": "vaekit card runs/mlp   # writes runs/mlp/README.md; then: huggingface-cli upload OWNER/NAME runs/mlp",
}


def add_commands(subparsers) -> None:
    command = command_maker(subparsers, EXAMPLES)
    p = command("card", "write FOLDER/README.md, the model card the Hugging Face Hub shows for a saved model")
    p.add_argument("folder", help="a folder vaekit saved (any kind)")
    p.set_defaults(handler=lambda a: hub.write_card(a.folder))
