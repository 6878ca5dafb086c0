"""Typed configs. Each field's default and help are written once here; the CLI flags (`add_arguments`)
and config.json (`to_dict`, `from_dict`) are generated from the fields, and `route` hands keyword options
to the config that owns each. This module imports no torch (fast --help)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from .errors import ConfigError

FORMAT_VERSION = 1
LR_SCHEDULES = ("constant", "cosine", "exponential")
PRECISIONS = ("fp32", "bf16")
NETWORKS = ("auto", "mlp", "conv")
STREAM_MODES = ("auto", "always", "never")
PRIORS = ("standard_normal", "mog", "vamp")
POSTERIORS = ("gaussian", "iaf", "planar")
MAX_FLOW_STEPS = 64  # Kingma et al. (2016) used up to 12; beyond this a flow only costs
PADDINGS = ("same", "valid")
SCALE_MODES = ("learned", "decoder")  # or a positive number: a fixed scale
MAX_INT = 2 ** 31 - 1  # no count, size or seed of a config is larger: a bigger one is a typo
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def option(default, help: str, cli: bool = True, short: str | None = None, flag: str | None = None,
           choices: Sequence[str] | None = None):
    """A config field with its CLI help. `cli=False` keeps it out of the command line; `flag` names its
    flag when that differs from the field's name (e.g. `seed` for scikit-learn's `random_state`);
    `choices` are the values its flag accepts."""
    return field(default=default, metadata={"help": help, "cli": cli, "short": short, "flag": flag,
                                            "choices": choices})


@dataclass(frozen=True)
class ModelConfig:
    network: str = option("auto", "mlp or conv; auto picks conv for images and mlp for flat data")
    hidden: tuple[int, ...] = option((400,), "MLP hidden sizes, comma separated, e.g. 512,256 (decoder mirrors them)")
    conv_channels: tuple[int, ...] = option((32, 64), "channels of the stride-2 conv layers (the Keras design)")
    encoder_padding: str = option("same", "conv encoder padding: same (any image size) or valid (Keras exact)")
    activation: str = option("relu", "hidden activation: relu, tanh, elu, gelu, leaky_relu")
    latent_dim: int = option(20, "size of the latent z; bigger is more expressive, too big can hurt samples")
    likelihood: str = option("bernoulli", "p(x|z): bernoulli (pixels in [0,1]), gaussian, or discretized_logistic "
                                          "(8-bit images, lossless-codable)")
    gaussian_scale: str = option("learned", "gaussian (and discretized_logistic) scale: a number (fixed), learned "
                                            "(per value) or decoder")
    prior: str = option("standard_normal", "p(z): standard_normal is N(0, I); mog a learned mixture of "
                                           "--prior-components diagonal Gaussians; vamp the VampPrior (Tomczak & "
                                           "Welling 2018), the posterior at --prior-components learned pseudo-inputs")
    prior_components: int = option(500, "components of --prior mog or vamp (pseudo-inputs); the VampPrior "
                                        "paper's 500 by default")
    posterior: str = option("gaussian", "q(z|x): gaussian (diagonal); iaf, an inverse autoregressive flow of "
                                        "--flow-steps MADE steps on it (Kingma et al. 2016); planar, --flow-steps "
                                        "planar steps (Rezende & Mohamed 2015)")
    flow_steps: int = option(2, "steps of the --posterior iaf or planar flow")
    stochastic_layers: int = option(1, "1, or 2: z2 -> z1 -> x with --latent-dim each, inferred as q(z2|x) "
                                       "q(z1|x, z2) (the VampPrior paper's HVAE); --prior is then p(z2)")
    bottleneck: str = option("gaussian", "gaussian (q(z|x) a diagonal Gaussian), vq (vector quantization with an EMA "
                                         "codebook) or fsq (finite scalar quantization); vq and fsq cut --latent-dim "
                                         "into code vectors of --code-dim or len(--fsq-levels) values",
                             choices=("gaussian", "vq", "fsq"))
    codebook_size: int = option(512, "codes in the vq codebook (van den Oord et al. 2017 used 512)")
    code_dim: int = option(8, "values per vq code vector; --latent-dim must be a multiple")
    fsq_levels: tuple[int, ...] = option((8, 5, 5, 5), "fsq levels per dimension of a code, e.g. 8,5,5,5 (1,000 codes, "
                                                        "Mentzer et al. 2023); --latent-dim must be a multiple of their "
                                                        "number")
    condition: str = option("none", "none; label (a class-conditional VAE: sample --label N), lowres:F (the "
                                    "image downscaled F times, F dividing its size, e.g. 2 or 4: super-resolution) "
                                    "or noisy (the image "
                                    "corrupted by --corrupt: conditional denoising)")
    data_shape: tuple[int, ...] = option((), "shape of one example, set from the data", cli=False)
    n_classes: int = option(0, "classes of --condition label, set from the data", cli=False)

    def validate(self) -> None:
        check_values(self)
        _positive(self, "latent_dim")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"--hidden must list positive sizes, got {self.hidden}")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ConfigError(f"--conv-channels must list positive sizes, got {self.conv_channels}")
        one_of(self, "network", NETWORKS)
        one_of(self, "bottleneck", ("gaussian", "vq", "fsq"))
        check_count("--codebook-size", self.codebook_size, 2, "a choice between codes")
        if self.codebook_size > 2 ** 20:
            raise ConfigError(f"--codebook-size must be at most {2 ** 20:,} codes, got {self.codebook_size:,}")
        _positive(self, "code_dim")
        if not self.fsq_levels or min(self.fsq_levels) < 2 or math.prod(self.fsq_levels) > 2 ** 20:
            raise ConfigError(f"--fsq-levels must list levels of at least 2 with a product up to 2**20, e.g. 8,5,5,5; "
                              f"got {self.fsq_levels}")
        code = {"vq": self.code_dim, "fsq": len(self.fsq_levels)}.get(self.bottleneck)
        if code and self.latent_dim % code:
            raise ConfigError(f"--bottleneck {self.bottleneck} cuts --latent-dim into codes of {code} values: "
                              f"--latent-dim {self.latent_dim} must be a multiple of {code}, e.g. {4 * code}")
        if self.bottleneck != "gaussian" and self.prior != "standard_normal":
            raise ConfigError(f"--bottleneck {self.bottleneck} brings its own prior over codes: drop --prior")
        if self.bottleneck != "gaussian" and (self.posterior != "gaussian" or self.stochastic_layers != 1):
            raise ConfigError(f"--bottleneck {self.bottleneck} is its own q(z|x) with one layer of codes: drop "
                              "--posterior and --stochastic-layers")
        one_of(self, "encoder_padding", PADDINGS)
        one_of(self, "prior", PRIORS)
        one_of(self, "posterior", POSTERIORS)
        _positive(self, "prior_components")
        _positive(self, "flow_steps")
        if self.flow_steps > MAX_FLOW_STEPS:
            raise ConfigError(f"--flow-steps must be at most {MAX_FLOW_STEPS}, got {self.flow_steps}: "
                              "each step costs a network pass per draw")
        if self.stochastic_layers not in (1, 2):
            raise ConfigError(f"--stochastic-layers must be 1 or 2, got {self.stochastic_layers}")
        check_scale(self.gaussian_scale, "--gaussian-scale")
        if self.condition != "none":
            from .conditioning import CONDITIONS, parse_spec

            parse_spec(self.condition, CONDITIONS, "--condition")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(10, "passes over the training set")
    batch_size: int = option(128, "examples per gradient step")
    lr: float = option(1e-3, "Adam learning rate")
    lr_schedule: str = option("constant", "constant, cosine or exponential: the learning rate falls step by step "
                                          "from --lr to --lr-end-factor x --lr over --epochs, or over --time-limit "
                                          "when that budget runs out first")
    lr_end_factor: float = option(0.01, "the last step's learning rate as a fraction of --lr (cosine, exponential)")
    lr_warmup: float = option(0.0, "epochs over which the learning rate rises linearly from near 0 to its scheduled "
                                    "value (a gentler start at a high --lr); 0 disables")
    weight_decay: float = option(0.0, "L2 penalty in Adam, against overfitting")
    beta: float = option(1.0, "weight of the KL term (beta-VAE); 1 is the true ELBO")
    kl_warmup: float = option(0.0, "epochs over which the KL weight rises linearly from 0 to beta (against KL vanishing)")
    free_bits: float = option(0.0, "nats per latent dimension below which KL is not penalized (Kingma et al. 2016)")
    iw_samples: int = option(1, "K > 1 trains on the importance-weighted bound (IWAE, Burda et al. 2016)")
    tc_weight: float = option(0.0, "weight of a total-correlation penalty on the aggregate posterior added to the "
                                   "objective (beta-TCVAE, Chen et al. 2018, minibatch stratified sampling): their "
                                   "beta is --beta + this, e.g. 5 at --beta 1 for their 6; 0 disables")
    grad_clip: float = option(0.0, "clip the gradient norm to this value; 0 disables")
    early_stopping: int = option(0, "stop after this many epochs without a better validation -ELBO (a recommender's: "
                                    "NDCG@100); 0 disables")
    time_limit: float = option(0.0, "a training-time budget in minutes: stop before an epoch that would end past it at "
                                      "the last epoch's pace; 0 disables")
    ema: float = option(0.0, "decay of an exponential moving average of the weights (Polyak averaging), e.g. 0.999: "
                             "validation, the saved model and the model fit returns use the average; 0 disables")
    compile: bool = option(False, "torch.compile the loss (faster steps after a one-off compile; falls back to "
                                  "eager mode where compiling fails)")
    precision: str = option("fp32", "fp32, or bf16 mixed precision: the networks' matrix products and convolutions "
                                     "run in bfloat16 under torch.autocast while weights, Adam and the loss stay fp32; "
                                     "faster on CPUs with AVX512-BF16 or AMX and on recent GPUs. Evaluation is fp32")
    # The two process-wide settings are opt-in: neither showed >= 1.10x in steady state on the AMD EPYC these
    # defaults were measured on (issue 40's rule; benchmarks/README.md, benchmarks/process_settings.py).
    flush_denormals: bool = option(False, "on a CPU, compute denormal floats (below 1.2e-38) as zero while training: "
                                          "Adam's moments of almost-always-zero gradients (e.g. of border pixels) decay "
                                          "into denormals, which Intel CPUs process many times slower (1.26x per epoch "
                                          "measured on a Xeon; none on an AMD EPYC); the caller's mode is restored "
                                          "after fit")
    keep_freed_memory: bool = option(False, "on Linux, keep freed memory mapped while training instead of handing it "
                                            "back to the kernel every step (glibc's malloc thresholds raised): the "
                                            "conv design's first epoch ran 1.7-1.9x faster without its ~10,000 page "
                                            "faults per step, its steady speed the same; the memory is handed back "
                                            "after fit")
    seed: int = option(0, "seed for initialization, shuffling, sampling: the same seed gives the same run")
    checkpoint_every: int = option(0, "also checkpoint every this many optimizer steps, mid-epoch, so a run killed "
                                      "or preempted resumes (--resume) where it stopped, bit for bit on a CPU; "
                                      "0: at epoch ends only")
    workers: int = option(-1, "DataLoader worker processes reading streamed data (shards, datasets folders, tar "
                              "shards, image folders); -1: one per core beyond the first, at most 8; 0: read in "
                              "the training process. Data held in memory needs none")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (cuda when available)")
    deterministic: bool = option(False, "PyTorch's deterministic algorithms while training (cuDNN's too): on a GPU a "
                                        "rerun or --resume then repeats a run bit for bit, as it does on a CPU, "
                                        "at some cost in speed")
    progress: bool = option(True, "show a progress bar", cli=False)

    def validate(self) -> None:
        check_values(self)
        for name in ("epochs", "batch_size", "iw_samples"):
            _positive(self, name)
        check_count("--seed", self.seed, 0)
        check_count("--checkpoint-every", self.checkpoint_every, 0)
        check_count("--workers", self.workers, -1, "-1 picks one per core")
        check_device(self.device)
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        one_of(self, "lr_schedule", LR_SCHEDULES)
        one_of(self, "precision", PRECISIONS)
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema must be in [0, 1) (e.g. 0.999; 0 disables), got {self.ema}")
        if not 0 < self.lr_end_factor <= 1:
            raise ConfigError(f"--lr-end-factor must be in (0, 1], got {self.lr_end_factor}")
        if self.tc_weight > 0 and self.iw_samples > 1:
            raise ConfigError("--tc-weight adds to the ELBO of one sample: drop it or --iw-samples")
        for name in ("weight_decay", "lr_warmup", "beta", "kl_warmup", "free_bits", "tc_weight",
                     "grad_clip", "early_stopping", "time_limit"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class DataConfig:
    data: str = option("fashion-mnist", "fashion-mnist, mnist, digits, shapes (64x64 shapes with known "
                                               "factors; shapes:N for N examples), or a path (.npy/.npz/.csv/IDX/image folder)")
    data_dir: str | None = option(None, "folder holding datasets (also $VAEKIT_DATA)")
    image_size: str | None = option(None, "resize images of a folder to HxW, e.g. 64x64")
    val_fraction: float = option(0.1, "share of the training set held out for validation and early stopping")
    binarize: str = option("none", "none, dynamic (fresh Bernoulli draw each epoch) or static (one fixed draw)")
    corrupt: str = option("none", "train a denoising VAE: inputs corrupted afresh each epoch, targets clean: "
                                  "gaussian:SIGMA, salt-pepper:SHARE or mask:SHARE, e.g. gaussian:0.3")
    stream: str = option("auto", "read --data as it is needed instead of loading it: auto (streamed when its float32 "
                                 "rows would take more than a quarter of the memory available), always or never; "
                                 "applies to .npy shard folders or globs, datasets folders, .tar shards, image folders",
                         choices=STREAM_MODES)
    column: str | None = option(None, "the column of a Hugging Face datasets folder, or the entry of a .tar shard's "
                                      "samples (npy, png, jpg...), to train on; default: the first")

    def validate(self) -> None:
        check_values(self)
        parse_image_size(self.image_size)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        one_of(self, "stream", STREAM_MODES)
        if self.binarize not in ("none", "dynamic", "static"):
            raise ConfigError(f"--binarize must be none, dynamic or static, got '{self.binarize}'")
        if self.corrupt != "none":
            from .conditioning import parse_corruption

            parse_corruption(self.corrupt)


def check_likelihood_data(model: ModelConfig, data: DataConfig) -> None:
    """The likelihood must model the values the data config makes: two levels after --binarize, which a
    discretized logistic (256 levels) would model as a waste of 254 and cost bits it reports as nats."""
    if model.likelihood == "discretized_logistic" and data.binarize != "none":
        raise ConfigError(f"--likelihood discretized_logistic models 8-bit levels, but --binarize {data.binarize} "
                          "leaves two: use --likelihood bernoulli for binarized data, or --binarize none")


PRESETS: dict[str, dict[str, dict]] = {
    # Reference designs our users come from (shared/REFERENCE_DESIGNS.md), done right.
    "keras-conv": {"model": dict(network="conv", conv_channels=(32, 64), encoder_padding="valid", latent_dim=2)},
    "pytorch-mlp": {"model": dict(network="mlp", hidden=(400,), latent_dim=20, likelihood="bernoulli")},
    "dense-784": {"model": dict(network="mlp", hidden=(256,), latent_dim=32, likelihood="gaussian",
                                gaussian_scale="learned"),
                  "train": dict(epochs=100, batch_size=128, lr=1e-3)},
    "burda-mlp": {"model": dict(network="mlp", hidden=(200, 200), activation="tanh", latent_dim=50),
                  "data": dict(binarize="dynamic")},
}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _declared(kind, value) -> bool:
    """Whether `value` has the declared type `kind` of a config field (what a hand-edited config.json may break)."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(_declared(args[0], item) for item in value)
    if type(None) in args:
        return value is None or any(_declared(arg, value) for arg in args if arg is not type(None))
    return True  # a field holding another config, or a type this check does not know


def check_values(config) -> None:
    """What every field of every config needs, whatever it means: a value of its declared type (a config.json
    edited by hand may say "four" for an int), a finite float, and an int (or each int of a list) within
    +-MAX_INT. Each config's `validate` starts here."""
    types = _field_types(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            continue
        if not _declared(types[f.name], value):
            raise ConfigError(f"{f.name} must be {_type_name(types[f.name])}, got {value!r}")
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"--{_flag(f.name)} must be a finite number, got {item}")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
                raise ConfigError(f"--{_flag(f.name)} {item} is beyond {MAX_INT:,}: give a smaller number")


def _type_name(kind) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(kind) is tuple:
        return "a list of integers" if typing.get_args(kind)[0] is int else "a list of strings"
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return f"{names.get(args[0], str(args[0]))} or null" if args else names.get(kind, str(kind))


def check_device(name: str, flag: str = "--device") -> None:
    """A device's name must be auto, cpu, mps, cuda or cuda:N; whether it is there is for the one that uses it."""
    if not DEVICE.match(str(name)):
        raise ConfigError(f"{flag} must be auto, cpu, cuda or cuda:N, got '{name}'")


def check_scale(value: str, flag: str) -> None:
    """A likelihood's scale: learned, decoder or a positive number (a fixed scale)."""
    if value in SCALE_MODES:
        return
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{flag} must be {', '.join(SCALE_MODES)} or a positive number, got '{value}'")


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """'64x64' -> (64, 64): the size --image-size resizes images to; None stays None."""
    if text is None:
        return None
    try:
        height, width = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"--image-size must look like 64x64, got '{text}'") from None
    if not (0 < height <= 65535 and 0 < width <= 65535):
        raise ConfigError(f"--image-size sides must be in 1..65535, got '{text}'")
    return height, width


def one_of(config, name: str, choices: Sequence[str]) -> None:
    if getattr(config, name) not in choices:
        raise ConfigError(f"--{_flag(name)} must be one of {', '.join(choices)}, got '{getattr(config, name)}'")


def check_count(flag: str, value: int, minimum: int = 1, why: str = "") -> None:
    """ConfigError unless the count `value` of option `flag` is at least `minimum` (1: a positive integer, 0: a
    non-negative one; `why` says the reason of another minimum)."""
    if value < minimum:
        need = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"at least {minimum} ({why})")
        raise ConfigError(f"{flag} must be {need}, got {value}")


def _positive(config, name: str) -> None:
    check_count(f"--{_flag(name)}", getattr(config, name))


def parse_ints(text: str) -> tuple[int, ...]:
    """'64,32' -> (64, 32): the argparse type of a flag that lists sizes."""
    try:
        return tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def _field_types(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _parsed_type(kind):
    """The type a flag parses: int for a field typed `int | None`."""
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return args[0] if len(args) == 1 and type(None) in typing.get_args(kind) else kind


def add_arguments(parser: argparse.ArgumentParser, cls, base=None, only: Sequence[str] | None = None) -> None:
    """Add one flag per CLI field of config class `cls` (per field named in `only`, when given), its help
    showing the default of `base` (an instance of `cls` holding a use's own defaults) or else the field's;
    unset flags stay out of the namespace (`options_from` reads the ones given)."""
    types = _field_types(cls)
    for f in fields(cls):
        if not (f.name in only if only is not None else f.metadata.get("cli", True)):
            continue
        kind = _parsed_type(types[f.name])
        default = f.default if base is None else getattr(base, f.name)
        short = [f.metadata["short"]] if f.metadata.get("short") else []
        flags = [f"--{_flag(f.metadata.get('flag') or f.name)}", *short]
        extra: dict = {"default": argparse.SUPPRESS, "help": f"{f.metadata['help']} (default: {_show(default)})"}
        if f.metadata.get("choices"):
            extra["choices"] = f.metadata["choices"]
        elif kind is bool:
            extra["action"] = argparse.BooleanOptionalAction
        elif kind == tuple[int, ...]:
            extra.update(type=parse_ints, metavar="N[,N...]")
        elif kind == tuple[str, ...]:
            extra.update(action="append", metavar="VALUE")
        elif kind in (int, float):
            extra.update(type=kind, metavar=kind.__name__.upper())
        else:
            extra["metavar"] = "VALUE"
        parser.add_argument(*flags, dest=f"{cls.__name__}.{f.name}", **extra)


def options_from(args: argparse.Namespace, *classes) -> dict:
    """The options given on the command line through the flags `add_arguments` made for `classes`:
    {field name: value}."""
    prefixes = tuple(f"{cls.__name__}." for cls in classes)
    return {key.split(".", 1)[1]: value for key, value in vars(args).items() if key.startswith(prefixes)}


def from_args(cls, args: argparse.Namespace, base=None):
    """Build `cls` from the flags the user gave, on top of `base` (a preset or a saved config)."""
    return with_options(base or cls(), options_from(args, cls))


RESUMABLE = ("epochs", "device", "progress", "early_stopping", "time_limit", "workers", "checkpoint_every")


def resumed_train_config(saved: tuple, train: TrainConfig, options: dict) -> TrainConfig:
    """The saved `train` config with the options a resume may change (RESUMABLE) applied. Any other option
    must repeat its value in one of the `saved` configs: a resumed run continues the configuration it began."""
    def saved_value(key: str):
        return next((getattr(config, key) for config in saved if key in {f.name for f in fields(config)}), None)

    def hashable(value):  # a JSON-loaded [512, 256] equals the (512, 256) a caller passes
        return tuple(value) if isinstance(value, list) else value

    changed = sorted(key for key, value in options.items()
                     if key not in RESUMABLE and hashable(saved_value(key)) != hashable(value))
    if changed:
        raise ConfigError(f"--resume continues the saved configuration; only {', '.join(sorted(RESUMABLE))} "
                          f"may change (got {', '.join(changed)})")
    resumed = dataclasses.replace(train, **{k: v for k, v in options.items() if k in RESUMABLE})
    if resumed.lr_schedule != "constant" and resumed.epochs != train.epochs:
        warnings.warn(f"--epochs changed from {train.epochs} to {resumed.epochs} on resume: the "
                      f"{resumed.lr_schedule} learning-rate schedule now spans {resumed.epochs} epochs, so the "
                      "rate jumps to where the longer schedule would be", stacklevel=4)
    return resumed


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def option_names(config) -> set[str]:
    """The option names of a config (class or instance): its fields', with a config it holds (a field whose
    default is a config) contributing that config's names in place of its own."""
    names: set[str] = set()
    for f in fields(config):
        names |= option_names(f.default) if dataclasses.is_dataclass(f.default) else {f.name}
    return names


def with_options(config, options: dict):
    """`config` with `options` set, lists as tuples; the options of a config it holds are set in that one."""
    changes = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            held = {key: v for key, v in options.items() if key in option_names(value)}
            if held:
                changes[f.name] = with_options(value, held)
        elif f.name in options:
            changes[f.name] = tuple(options[f.name]) if isinstance(options[f.name], list) else options[f.name]
    return dataclasses.replace(config, **changes)


def route(options: dict, *configs) -> tuple:
    """`configs` with each keyword option set in the config that has it, each validated: the one place
    where the keyword options of an API call (`train(latent_dim=8, epochs=5)`) reach their configs.
    An unknown name is a ConfigError listing the valid ones."""
    routed: list[dict] = [{} for _ in configs]
    for key, value in options.items():
        owner = next((i for i, config in enumerate(configs) if key in option_names(config)), None)
        if owner is None:
            valid = sorted(set().union(*map(option_names, configs)))
            raise ConfigError(f"unknown option '{key}': valid options are {', '.join(valid)}")
        routed[owner][key] = value
    configs = tuple(with_options(config, given) for config, given in zip(configs, routed))
    for config in configs:
        config.validate()
    return configs


def from_dict(cls, data: dict):
    """Rebuild a config from its JSON form; lists become tuples. Unknown keys and values of the wrong type are
    an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - option_names(cls)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}: the file comes from another vaekit version")
    config = with_options(cls(), data)
    check_values(config)
    return config


def to_dict(config) -> dict:
    """The JSON form of a config: tuples as lists, and the fields of a config it holds beside its own (one flat
    object, as `from_dict` reads it)."""
    data = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            data.update(to_dict(value))
        else:
            data[f.name] = list(value) if isinstance(value, tuple) else value
    return data


def preset(name: str | None) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """The (model, train, data) configs of a named preset; None gives the defaults."""
    if name is None:
        return ModelConfig(), TrainConfig(), DataConfig()
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}': use one of {', '.join(PRESETS)}")
    spec = PRESETS[name]
    return ModelConfig(**spec.get("model", {})), TrainConfig(**spec.get("train", {})), DataConfig(**spec.get("data", {}))
