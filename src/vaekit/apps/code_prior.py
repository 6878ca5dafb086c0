"""The learned prior over a quantized run's codes, behind `vaekit train-prior RUN` (whose API is apps.images: it hands
these functions the loaded run, a `vaekit.apps.images.Run`, and its data), and the loading that puts it in the run's
VAE, so that `vaekit sample` draws codes from it and `vaekit eval` counts their bits under it.

It is saved in the run folder as `code_prior/config.json` (kind, format version, the network's config, the model
file's hash: a retrained model's prior is ignored with a warning) + `code_prior/model.safetensors`, both atomic.
torch and the core are imported inside the functions, as in every app.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import __version__
from ..config import TrainConfig, check_values, option, to_dict
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..data.splits import Splits

KIND = "code-prior"  # code_prior/config.json's kind
FORMAT_VERSION = 1  # its layout; another version is ignored with a warning to train it again
CODE_PRIOR_DIR = "code_prior"
# Its own training defaults: codes are few per example (n_codes), so larger batches and more epochs than a VAE's
CODE_PRIOR_TRAIN = TrainConfig(epochs=30, batch_size=256, lr=1e-3)
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "seed")  # what `vaekit train-prior` takes of a TrainConfig
MAX_WIDTH, MAX_LAYERS = 4096, 64  # the network's width and depth at most: larger is a typo, not a code prior


@dataclass(frozen=True)
class CodePriorConfig:
    """The causal transformer over a run's codes (code_priors.CausalCodes)."""

    width: int = option(128, "the transformer's width: 128 fits the few thousand bits of a Fashion-MNIST code grid")
    layers: int = option(2, "transformer blocks: each lets a code read every earlier one")
    heads: int = option(4, "attention heads per block; --width must be a multiple of it")

    def validate(self) -> None:
        check_values(self)
        for flag, value, most in (("--width", self.width, MAX_WIDTH), ("--layers", self.layers, MAX_LAYERS),
                                  ("--heads", self.heads, self.width)):
            if not 1 <= value <= most:
                raise ConfigError(f"{flag} must be in 1..{most}, got {value}")
        if self.width % self.heads:
            raise ConfigError(f"--width {self.width} must be a multiple of --heads {self.heads}")


@dataclass(frozen=True)
class CodePriorFit:
    """A fitted code prior: the prior (code_priors.LearnedCodes), each epoch's row, and the held-out figures of its
    best epoch, whose weights it holds."""

    prior: object
    history: list[dict]
    val_bits_per_code: float  # -log2 p(c_i | c_<i) averaged over held-out codes
    uniform_bits_per_code: float  # log2 K, the uniform prior's


def quantizer_of(run):
    """The run's quantizer (its posterior), or a ConfigError for a run without a quantized bottleneck."""
    from ..bottlenecks import Quantizer

    if not isinstance(run.vae.posterior, Quantizer):
        raise ConfigError(f"a code prior needs a run trained with --bottleneck vq or fsq; {run.path} has a "
                          f"{run.model.bottleneck} latent, which samples from its own prior")
    return run.vae.posterior


def run_codes(run, splits: Splits, seed: int = 0):
    """The code indices of the run's training and held-out examples, (n, n_codes) each, on the CPU."""
    from .sampling import training_latents

    quantizer = quantizer_of(run)
    device = next(run.vae.parameters()).device
    return tuple(quantizer.codes_of(z.to(device)).cpu() for z in training_latents(run, splits, seed))


def fit_code_prior(run, splits: Splits, config: CodePriorConfig = CodePriorConfig(),
                   train: TrainConfig = CODE_PRIOR_TRAIN) -> CodePriorFit:
    """Fit a causal transformer to the codes of the run's training split by maximum likelihood (Adam), keep the
    weights of its best held-out epoch, save it in RUN/code_prior/ and put it in the run's VAE as its prior."""
    import torch

    from ..code_priors import CausalCodes, LearnedCodes
    from ..progress import progress_bar
    from ..training import make_optimizer

    config.validate()
    train.validate()
    quantizer = quantizer_of(run)
    if run.vae.condition is not None:
        raise ConfigError(f"a code prior models unconditional codes; this run is conditioned on {run.model.condition}")
    codes, held_out = run_codes(run, splits, train.seed)
    device = next(run.vae.parameters()).device
    codes, held_out = codes.to(device), held_out.to(device)
    torch.manual_seed(train.seed)
    network = CausalCodes(quantizer.n_codes, quantizer.codebook_size, config.width, config.layers,
                          config.heads).to(device)
    prior = LearnedCodes(quantizer, network)
    optimizer = make_optimizer(network.parameters(), train, device)
    shuffle = torch.Generator().manual_seed(train.seed)
    per_code = quantizer.n_codes * math.log(2)  # nats per example over this: bits per code
    history, best, best_state = [], float("inf"), None
    bar = progress_bar(total=train.epochs * -(-len(codes) // train.batch_size), desc="code prior",
                       enabled=train.progress, unit="step")
    for epoch in range(1, train.epochs + 1):
        started, total = time.perf_counter(), torch.zeros((), device=device)
        network.train()
        for index in torch.randperm(len(codes), generator=shuffle).split(train.batch_size):
            loss = -prior.log_prob_codes(codes[index.to(device)]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
            bar.update(1)
        network.eval()
        val = held_out_nats(prior, held_out) / per_code if len(held_out) else float("nan")
        row = {"epoch": epoch, "bits_per_code": float(total) / len(codes) / per_code, "val_bits_per_code": val,
               "seconds": time.perf_counter() - started}
        history.append(row)
        if not val >= best:  # the first epoch, and every better one (a NaN without held-out codes keeps the last)
            best, best_state = val, {k: v.detach().clone() for k, v in network.state_dict().items()}
    bar.close()
    network.load_state_dict(best_state)
    fit = CodePriorFit(prior, history, best, math.log2(quantizer.codebook_size))
    if run.path is not None:
        _save(run, network, config, train, fit)
    run.vae.prior = prior
    return fit


def held_out_nats(prior, codes, batch_size: int = 4096) -> float:
    """-log p(c) of code rows (n, n_codes) under the prior, in nats per row, averaged."""
    import torch

    with torch.inference_mode():
        return float(sum(-prior.log_prob_codes(codes[i:i + batch_size]).sum() for i in range(0, len(codes),
                                                                                              batch_size)) / len(codes))


def _save(run, network, config: CodePriorConfig, train: TrainConfig, fit: CodePriorFit) -> None:
    from ..checkpoint import CONFIG_FILE, MODEL_FILE, save_tensors
    from ..io import write_json
    from .sampling import model_hash_of

    folder = run.path / CODE_PRIOR_DIR
    folder.mkdir(exist_ok=True)
    save_tensors(folder / MODEL_FILE, network.state_dict())
    write_json(folder / CONFIG_FILE, {  # written last: a folder without it holds no prior
        "kind": KIND, "format_version": FORMAT_VERSION, "vaekit_version": __version__,
        "model_sha256": model_hash_of(run), "network": to_dict(config), "train": to_dict(train),
        "val_bits_per_code": fit.val_bits_per_code, "uniform_bits_per_code": fit.uniform_bits_per_code,
        "history": fit.history})


def attach_code_prior(run) -> bool:
    """Put the run's saved code prior (RUN/code_prior/) in its VAE as the prior over codes; whether there was one.
    A prior saved for another model file or format is left out, with a warning to train it again."""
    from ..checkpoint import CONFIG_FILE, MODEL_FILE, load_weights, read_json
    from ..code_priors import CausalCodes, LearnedCodes
    from ..config import from_dict
    from .sampling import model_hash_of

    folder = run.path / CODE_PRIOR_DIR if run.path is not None else None
    if folder is None or not (folder / CONFIG_FILE).is_file():
        return False
    described = read_json(folder / CONFIG_FILE)
    if described.get("kind") != KIND or described.get("format_version") != FORMAT_VERSION or \
            described.get("model_sha256") != model_hash_of(run):
        warnings.warn(f"{folder} was trained for another model file or vaekit: it is left out (codes are uniform); "
                      f"train it again with `vaekit train-prior {run.path}`", stacklevel=2)
        return False
    quantizer = quantizer_of(run)
    config = from_dict(CodePriorConfig, described["network"])
    network = CausalCodes(quantizer.n_codes, quantizer.codebook_size, config.width, config.layers, config.heads)
    load_weights(network, folder / MODEL_FILE)
    run.vae.prior = LearnedCodes(quantizer, network.to(next(run.vae.parameters()).device).eval())
    return True
