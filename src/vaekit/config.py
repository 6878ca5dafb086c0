"""Typed configs. Each field's default and help are written once here; the CLI flags (`add_arguments`)
and config.json (`to_dict`, `from_dict`) are generated from the fields, and `route` hands keyword options
to the config that owns each (that machinery lives in vaekit.options; this module re-exports it). This module
imports no torch (fast --help)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, fields

from .errors import ConfigError
# The options' machinery is this module's API too: every config module imports it from here.
from .options import (DEVICE, MAX_INT, SCALE_MODES, add_arguments, check_count, check_device, check_scale,
                      check_values, flag_name, from_args, from_dict, one_of, option, option_names,
                      options_from, parse_image_size, parse_ints, route, to_dict, with_options)

FORMAT_VERSION = 1
LR_SCHEDULES = ("constant", "cosine", "exponential")
PRECISIONS = ("fp32", "bf16")
TC_ESTIMATORS = ("mss", "discriminator")  # how --tc-weight estimates the total correlation
NETWORKS = ("auto", "mlp", "conv")
STREAM_MODES = ("auto", "always", "never")
PRIORS = ("standard_normal", "mog", "vamp")
POSTERIORS = ("gaussian", "iaf", "planar")
MAX_FLOW_STEPS = 64  # Kingma et al. (2016) used up to 12; beyond this a flow only costs
PADDINGS = ("same", "valid")
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
    flow_context: bool = option(True, "--posterior iaf only: each step also reads a context vector the encoder "
                                      "outputs beside the Gaussian's, so the flow differs from image to image "
                                      "(Kingma et al. 2016); --no-flow-context: one flow for every x (runs saved "
                                      "before this option load that way)")
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
    semi_supervised: bool = option(False, "the semi-supervised M2 of Kingma et al. 2014: a classifier q(y|x) beside a "
                                          "VAE conditioned on the label, trained on the --labelled labels and the rest "
                                          "unlabelled; then vaekit classify RUN")
    label_weight: float = option(50.0, "with --semi-supervised: the weight alpha of -log q(y|x) on labelled rows "
                                       "against their -ELBO (Kingma et al. 2014, eq. 9), so a few labels train the "
                                       "classifier")
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
        if self.label_weight < 0:
            raise ConfigError(f"--label-weight must be >= 0, got {self.label_weight}")
        if self.semi_supervised and self.condition not in ("none", "label"):
            raise ConfigError(f"--semi-supervised conditions the VAE on the label: drop --condition {self.condition}")


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
    prior_warmup: float = option(0.0, "epochs at the start whose KL is taken against N(0, I) instead of --prior: a "
                                      "VampPrior's encoder saturates and collapses in MNIST's first epoch without it "
                                      "(e.g. 1 with --prior vamp); 0 disables")
    free_bits: float = option(0.0, "nats per latent dimension below which KL is not penalized (Kingma et al. 2016)")
    iw_samples: int = option(1, "K > 1 trains on the importance-weighted bound (IWAE, Burda et al. 2016)")
    tc_weight: float = option(0.0, "weight of a total-correlation penalty on the aggregate posterior added to the "
                                   "objective (beta-TCVAE, Chen et al. 2018, minibatch stratified sampling): their "
                                   "beta is --beta + this, e.g. 5 at --beta 1 for their 6; 0 disables")
    tc_estimator: str = option("mss", "how --tc-weight estimates the total correlation: mss (minibatch stratified "
                                      "sampling, beta-TCVAE) or discriminator (an MLP trained beside the model with "
                                      "its own Adam to tell q(z) from its permuted dimensions, FactorVAE, Kim & Mnih "
                                      "2018; not with --compile or torchrun)", choices=TC_ESTIMATORS)
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
    profile: bool = option(False, "print at the end where the training steps' time went: data, forward, backward, "
                                  "optimizer, host reads, progress bar, metrics (on a GPU it waits for each phase's "
                                  "kernels, which slows training a little)")

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
        one_of(self, "tc_estimator", TC_ESTIMATORS)
        if self.tc_estimator == "discriminator" and self.tc_weight == 0:
            raise ConfigError("--tc-estimator discriminator estimates the --tc-weight term: add --tc-weight (e.g. 5)")
        if self.tc_estimator == "discriminator" and self.compile:
            raise ConfigError("--tc-estimator discriminator trains its own network inside the step, which --compile "
                              "does not cover: drop --compile or use --tc-estimator mss")
        if self.tc_weight > 0 and self.iw_samples > 1:
            raise ConfigError("--tc-weight adds to the ELBO of one sample: drop it or --iw-samples")
        for name in ("weight_decay", "lr_warmup", "beta", "kl_warmup", "prior_warmup", "free_bits", "tc_weight",
                     "grad_clip", "early_stopping", "time_limit"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{flag_name(name)} must be >= 0, got {getattr(self, name)}")


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
    labelled: int = option(0, "with --semi-supervised: training examples that keep their label, balanced per class "
                              "and drawn with --seed (100: 10 per class of MNIST); the rest are unlabelled; 0 keeps "
                              "every label")

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
        check_count("--labelled", self.labelled, 0, "0 keeps every label")


def check_semi_supervised(model: ModelConfig, train: TrainConfig, data: DataConfig) -> None:
    """--labelled belongs to --semi-supervised, whose objective takes one KL weight and no other term."""
    if data.labelled and not model.semi_supervised:
        raise ConfigError("--labelled picks the labels of a semi-supervised run: add --semi-supervised")
    if model.semi_supervised and (train.iw_samples > 1 or train.free_bits > 0 or train.tc_weight > 0
                                  or train.prior_warmup > 0):
        raise ConfigError("--semi-supervised trains M2's bound, with none of --iw-samples, --free-bits, --tc-weight, "
                          "--prior-warmup: drop them")


def check_likelihood_data(model: ModelConfig, data: DataConfig) -> None:
    """The likelihood must model the values the data config makes: two levels after --binarize, which a
    discretized logistic (256 levels) would model as a waste of 254 and cost bits it reports as nats."""
    if model.likelihood == "discretized_logistic" and data.binarize != "none":
        raise ConfigError(f"--likelihood discretized_logistic models 8-bit levels, but --binarize {data.binarize} "
                          "leaves two: use --likelihood bernoulli for binarized data, or --binarize none")


# Model options that act only with another option's value: {option: (that option, the values it acts with)}
ACTS_ONLY_WITH = {
    "prior_components": ("prior", ("mog", "vamp")),
    "flow_steps": ("posterior", ("iaf", "planar")),
    "flow_context": ("posterior", ("iaf",)),
    "codebook_size": ("bottleneck", ("vq",)),
    "code_dim": ("bottleneck", ("vq",)),
    "fsq_levels": ("bottleneck", ("fsq",)),
    "label_weight": ("semi_supervised", (True,)),
}


def check_given_options_act(model: ModelConfig, given) -> None:
    """An option given by name (a flag typed, an API keyword) that the model would not read is a mistake, not a
    no-op: --flow-steps without a flow posterior trains no flow. Names only: a preset's or config file's options are
    not checked, as a saved run's config.json holds every option, read or not."""
    for name in sorted(set(given) & ACTS_ONLY_WITH.keys()):
        owner, values = ACTS_ONLY_WITH[name]
        if getattr(model, owner) not in values:
            needs = f"--{flag_name(owner)}" + ("" if values == (True,) else f" {' or '.join(values)}")
            raise ConfigError(f"--{flag_name(name)} acts only with {needs}, which this run does not have: add it or "
                              f"drop --{flag_name(name)}")


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


def _positive(config, name: str) -> None:
    check_count(f"--{flag_name(name)}", getattr(config, name))


RESUMABLE = ("epochs", "device", "progress", "profile", "early_stopping", "time_limit", "workers", "checkpoint_every")


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


def preset(name: str | None) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """The (model, train, data) configs of a named preset; None gives the defaults."""
    if name is None:
        return ModelConfig(), TrainConfig(), DataConfig()
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}': use one of {', '.join(PRESETS)}")
    spec = PRESETS[name]
    return ModelConfig(**spec.get("model", {})), TrainConfig(**spec.get("train", {})), DataConfig(**spec.get("data", {}))
