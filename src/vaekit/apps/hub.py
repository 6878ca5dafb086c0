"""Model folders the Hugging Face Hub understands: `save_pretrained`, `from_pretrained` and the model card.

Every folder vaekit saves already has the Hub's layout, config.json beside model.safetensors (its config.json
also names its `kind` and `format_version`, vaekit.saved), so no mixin is needed: `save_pretrained` saves a
model as its kind does and adds README.md, a model card the Hub shows; `from_pretrained` is `vaekit.load`,
which takes a local folder or a Hub id "owner/name" (downloaded with huggingface_hub, the `hub` extra).
Upload a folder with `huggingface-cli upload owner/name FOLDER`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from .images import CURVES_FILE

CARD_FILE = "README.md"
EVAL_FILE = "eval.json"
SAMPLES_FILE = "samples.png"
SHOWN = (EVAL_FILE, SAMPLES_FILE, CURVES_FILE)  # what a core run's card shows, copied beside it when present


def save_pretrained(model, folder: str | Path, overwrite: bool = False) -> Path:
    """Save `model` in `folder` with a model card (README.md): a core vaekit.Run as `apps.images.save` does,
    with its eval.json, samples.png and curves.png copied from its run folder when there; a TabularVAE,
    TextModel or VAEAnomalyDetector by its own `save`. A folder that holds a saved model is refused unless
    `overwrite`."""
    from ..saved import check_new_folder, clear_folder
    from .images import Run, save

    if isinstance(model, Run):
        folder = save(model, folder, overwrite)
        for name in SHOWN:
            if model.path is not None and (model.path / name).is_file() and model.path.resolve() != folder.resolve():
                shutil.copyfile(model.path / name, folder / name)
    elif callable(getattr(model, "save", None)):
        folder = check_new_folder(folder, overwrite)
        clear_folder(folder, overwrite)
        model.save(folder)
    else:
        raise ConfigError(f"save_pretrained saves a vaekit model (a Run, TabularVAE, TextModel or "
                          f"VAEAnomalyDetector), got {type(model).__name__}: save it with its fit command and "
                          "write its card with `vaekit card FOLDER`")
    return write_card(folder)


def from_pretrained(name_or_path: str | Path, device: str = "auto"):
    """The model saved in a local folder or on the Hugging Face Hub ("owner/name"): `vaekit.load`."""
    from .registry import load

    return load(name_or_path, device)


def write_card(folder: str | Path) -> Path:
    """Write README.md, the model card of the saved folder `folder` (any kind): what it is, how to load it, its
    data and configuration, and its evaluation, sample grid and curves where the folder has them
    (`vaekit card`). Returns the card's path."""
    from ..checkpoint import CONFIG_FILE, read_json, read_jsonl
    from ..data.splits import IN_MEMORY
    from ..io import atomic_write
    from ..saved import KINDS, saved_config, saved_kind
    from ..training import METRICS_FILE

    folder = Path(folder)
    config = saved_config(folder)
    kind = saved_kind(folder, config)
    settings = {key: value for key, value in config.items() if isinstance(value, dict)}
    lines = ["---", "library_name: vaekit", f"tags: [vaekit, variational-autoencoder, {kind}]", "---", "",
             f"# {folder.resolve().name}", "",
             f"{KINDS[kind].noun[0].upper()}{KINDS[kind].noun[1:]} saved by vaekit "
             f"{config.get('vaekit_version', __version__)} (kind `{kind}`, format version "
             f"{config.get('format_version')}): {CONFIG_FILE} and safetensors weights, no pickle.", "",
             "```python", "import vaekit", "", 'model = vaekit.load("OWNER/NAME")  # a Hub id, or this folder\'s path',
             "```", "", f"Then: `{KINDS[kind].commands}`.", ""]
    data = settings.get("data", {}).get("data")
    if data is not None:
        lines += ["## Data", "", f"`{data}`" + (" (arrays passed in memory)" if data == IN_MEMORY else ""), ""]
    lines += ["## Configuration", "", "```json", json.dumps(settings, indent=2), "```", ""]
    if (folder / EVAL_FILE).is_file():
        figures = read_json(folder / EVAL_FILE)
        lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in figures.items()] + [""]
    if (folder / METRICS_FILE).is_file() and (history := read_jsonl(folder / METRICS_FILE)):
        last = history[-1]
        shown = ", ".join(f"{key} {value:.4g}" for key, value in last.items()
                          if key != "epoch" and isinstance(value, float))
        lines += ["## Training", "", f"Epochs: {len(history)}; the last one's figures: {shown}.", ""]
    for name, title in ((SAMPLES_FILE, "Samples"), (CURVES_FILE, "Learning curves")):
        if (folder / name).is_file():
            lines += [f"## {title}", "", f"![{title.lower()}]({name})", ""]
    atomic_write(folder / CARD_FILE, "\n".join(lines))
    return folder / CARD_FILE
