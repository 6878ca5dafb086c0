"""Issue 3: vaekit against its peers on Fashion-MNIST, side by side in one run, alternating, medians.

  python -m benchmarks.speed [--design mlp|conv|iwae] [--epochs 10] [--reps 3] [--peers a,b,...] [--threads 2]
                            [--lockstep] [--tag NAME] [--device cpu|cuda] [--limit ROWS]

mlp:  the pytorch/examples design (MLP 784-400-20, Bernoulli on logits, Adam 1e-3, batch 128) for
      vaekit, a plain PyTorch loop (sliced tensors / DataLoader / fused Adam / batch 512 + compile),
      pythae 0.1.2 and Keras 3 on the torch backend; plus the GEMM ceiling at b128 and b512, at fp32
      and at bf16 GEMM rates. "-bf16" rows train in bf16 mixed precision (torch.autocast; fp32
      weights, Adam and loss), vaekit through its `precision` option. vaekit flushes denormals to
      zero while training (its opt-in `flush_denormals`, on in this benchmark's vaekit rows); "vaekit-noftz" turns that off and
      "plain-fused-ftz" turns it on in the plain loop, to show what that alone is worth. On an
      AVX-512 CPU vaekit's fp32 Linear layers of 128+ units run their products in oneDNN
      (vaekit.accel's OneDNNLinear); "-mkl" rows turn that off (VAEKIT_ONEDNN_LINEAR=0) to show its worth.
      The fp32 ceilings are given twice: at torch.mm's rates (MKL: the issue's definition) and at
      the faster of torch.mm and oneDNN for each product.
conv: the core issue's conv design (conv 32-64 stride 2 'same', latent 20, transposed convs back up)
      for vaekit and pythae with the same networks; pythae-conv-bf16 is pythae with its forward
      wrapped in CPU autocast by this script (pythae's own `amp` flag is CUDA-only). vaekit keeps
      freed memory mapped while training (its opt-in `keep_freed_memory`, on in this benchmark's vaekit rows); "vaekit-conv-nokeep"
      leaves glibc's malloc to its own thresholds, to show what that alone is worth; "vaekit-conv-nonative"
      runs without vaekit's C kernels (VAEKIT_NATIVE=0, vaekit/accel/native.py), to show theirs.
      "-noaccel" rows (both designs) turn vaekit.accel off entirely (VAEKIT_ACCEL=0): the core's plain torch
      networks, Adam fused and the data path unchanged.
iwae: the importance-weighted NLL (k = 1000) on the 10,000 test images against its GEMM ceiling (each
      product at the faster of torch.mm and oneDNN; and at torch.mm's rates alone).

--device cuda trains every peer but keras on the GPU (benchmarks/gpu.py drives that); an epoch's time is read after
the GPU has run its steps. --limit keeps the first ROWS training and test images (a quick check, not a figure).

Each (peer, repetition) trains in its own subprocess (so peak RSS is its own), in alternating order;
with --lockstep all peers' processes live at once and take turns epoch by epoch (each stops itself
after an epoch), so a slow spell of the machine falls on every peer alike, and the ratio columns are
medians of same-round epoch-time ratios.
After every epoch the peer's current weights are scored on the 10,000 test images by one evaluator
(-ELBO in nats per example: summed BCE-with-logits + analytic KL, one posterior sample with a fixed
seed), outside the timed training; "s to target" is the training time until that score first
reaches --target (245 nats).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import markdown_table, peak_rss_mb, write_results

D, H, Z = 784, 400, 20
CHANNELS = (32, 64)
PEERS = {
    "mlp": ("vaekit", "vaekit-noaccel", "vaekit-mkl", "vaekit-noftz", "vaekit-bf16", "vaekit-compile",
            "vaekit-b512-compile", "vaekit-b512-bf16-compile",
            "plain", "plain-dataloader", "plain-fused", "plain-fused-ftz", "plain-fused-bf16", "plain-b512-compile",
            "pythae", "keras"),
    "conv": ("vaekit-conv", "vaekit-conv-noaccel", "vaekit-conv-nonative", "vaekit-conv-nokeep", "vaekit-conv-bf16",
             "vaekit-conv-nchw",
             "pythae-conv", "pythae-conv-bf16"),
}


def fashion(design: str, limit: int = 0):
    """Fashion-MNIST's (train, test) images as the design takes them: (N, 784) or (N, 1, 28, 28); the first `limit`
    of each where limit > 0."""
    from vaekit.data import load_dataset

    data = load_dataset("fashion-mnist")
    shape = (-1, D) if design == "mlp" else (-1, 1, 28, 28)
    rows = slice(limit) if limit > 0 else slice(None)
    return data.x_train.reshape(shape)[rows], data.x_test.reshape(shape)[rows]


def elapsed(started: float, device: str) -> float:
    """Seconds since `started` (perf_counter), read once the device has run the work queued on it."""
    import torch

    from vaekit.devices import synchronize

    synchronize(torch.device(device))
    return time.perf_counter() - started


class Curve:
    """Per-epoch training seconds and test -ELBO of one run."""

    def __init__(self, x_test, lockstep: bool = False, device: str = "cpu"):
        import torch

        self.x_test = torch.from_numpy(x_test).to(device)
        self.lockstep = lockstep
        self.seconds: list[float] = []
        self.neg_elbo: list[float] = []

    def epoch(self, seconds: float, encode, decode_logits) -> None:
        """encode(x) -> (mu, logvar); decode_logits(z) -> logits shaped like x.
        In lockstep the process then stops itself until the coordinator's next round."""
        self.seconds.append(seconds)
        self.neg_elbo.append(negative_elbo(encode, decode_logits, self.x_test))
        if self.lockstep:
            os.kill(os.getpid(), signal.SIGSTOP)


def negative_elbo(encode, decode_logits, x_test) -> float:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x_test), 1000):
            x = x_test[i:i + 1000]
            mu, logvar = encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec = F.binary_cross_entropy_with_logits(decode_logits(z), x, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
            total += float((rec + kl).sum())
    return total / len(x_test)


# -- networks written out for the peers (the same shapes as vaekit's) ------------------------------
def _mlp_networks():
    from torch import nn

    return (nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, 2 * Z)),
            nn.Sequential(nn.Linear(Z, H), nn.ReLU(), nn.Linear(H, D)))


def _conv_networks():
    """vaekit's ConvEncoder/ConvDecoder with channels (32, 64) and 'same' padding, written out."""
    from torch import nn

    a, b = CHANNELS
    encoder = nn.Sequential(nn.Conv2d(1, a, 3, 2, 1), nn.ReLU(), nn.Conv2d(a, b, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(b * 7 * 7, 2 * Z))
    decoder = nn.Sequential(nn.Linear(Z, a * 7 * 7), nn.ReLU(), nn.Unflatten(1, (a, 7, 7)),
                            nn.ConvTranspose2d(a, b, 3, 2, 1, 1), nn.ReLU(), nn.ConvTranspose2d(b, a, 3, 2, 1, 1),
                            nn.ReLU(), nn.ConvTranspose2d(a, 1, 3, 1, 1))
    return encoder, decoder


# -- the peers: each trains `epochs` epochs and reports each one to `curve` --------------------------
def _vaekit(x_train, curve, epochs, batch, design="mlp", compile=False, default_layout=False, bf16=False,
            flush=True, keep_memory=True, device="cpu"):
    import torch

    from vaekit.config import ModelConfig, TrainConfig
    from vaekit.training import Trainer
    from vaekit.vae import build_vae

    torch.manual_seed(0)
    vae = build_vae(ModelConfig(data_shape=x_train.shape[1:], network=design, hidden=(H,), latent_dim=Z,
                                conv_channels=CHANNELS, encoder_padding="same"))
    encode = lambda x: vae.encoder(x).chunk(2, dim=-1)  # noqa: E731
    trainer = Trainer(vae, TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, seed=0, progress=False,
                                       compile=compile, precision="bf16" if bf16 else "fp32", flush_denormals=flush,
                                       keep_freed_memory=keep_memory, device=device),
                      on_epoch=lambda row: curve.epoch(row["epoch_seconds"], encode, vae.decoder))
    if default_layout:  # the ablation: torch's default layout instead of the Trainer's channels_last
        vae.to(memory_format=torch.contiguous_format)  # same Parameter objects, so the optimizer keeps them
    trainer.fit(torch.from_numpy(x_train))


def _plain(x_train, curve, epochs, batch, loader=False, fused=False, compile=False, bf16=False, flush=False,
           device="cpu"):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from vaekit.accel.denormals import set_flush_denormal

    set_flush_denormal(flush)  # the "-ftz" ablation: vaekit's denormals-as-zero (every thread) in a plain loop

    class Model(nn.Module):
        """pytorch/examples vae/main.py on logits, per-example nats."""

        def __init__(self):
            super().__init__()
            self.enc, self.dec = _mlp_networks()

        def encode(self, x):
            return self.enc(x).chunk(2, dim=-1)

        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
            return (rec + kl).mean()

    torch.manual_seed(0)
    model = Model().to(device)
    step_loss = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    x = torch.from_numpy(x_train).to(device)
    for _ in range(epochs):
        started = time.perf_counter()
        if loader:
            from torch.utils.data import DataLoader, TensorDataset

            batches = (b for (b,) in DataLoader(TensorDataset(x), batch_size=batch, shuffle=True))
        else:
            order = torch.randperm(len(x), device=device)
            batches = (x[order[i:i + batch]] for i in range(0, len(x), batch))
        for b in batches:
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                loss = step_loss(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        curve.epoch(elapsed(started, device), model.encode, model.dec)


def _pythae(x_train, curve, epochs, batch, design="mlp", bf16=False, device="cpu"):
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    encoder_net, decoder_net = _mlp_networks() if design == "mlp" else _conv_networks()

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = encoder_net

        def forward(self, x):
            mu, logvar = self.net(x if design == "conv" else x.reshape(len(x), -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = decoder_net

        def forward(self, z):  # pythae's "bce" takes probabilities
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(len(z), 1, 28, 28))

    class Epochs(TrainingCallback):
        def on_epoch_begin(self, training_config, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            seconds = elapsed(self.started, device)
            curve.epoch(seconds, lambda x: model.encoder.net(x).chunk(2, dim=-1), model.decoder.net)

    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=Z, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    if bf16:  # pythae's own `amp` flag is CUDA-only and fp16: the benchmark wraps its forward in bf16 autocast
        model.forward = torch.autocast(torch.device(device).type, dtype=torch.bfloat16)(model.forward)
    config = BaseTrainerConfig(output_dir=os.environ.get("TMPDIR", "/tmp") + "/pythae-bench", num_epochs=epochs,
                               learning_rate=1e-3, per_device_train_batch_size=batch, no_cuda=device == "cpu",
                               steps_saving=None, steps_predict=None, keep_best_on_train=True)
    TrainingPipeline(training_config=config, model=model)(train_data=x_train.reshape(-1, 1, 28, 28),
                                                          callbacks=[Epochs()])


def _keras(x_train, curve, epochs, batch):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    from keras import layers, ops

    class Sample(layers.Layer):
        def __init__(self):
            super().__init__()
            self.seeds = keras.random.SeedGenerator(0)

        def call(self, stats):
            mu, logvar = stats[:, :Z], stats[:, Z:]
            return mu + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(mu), seed=self.seeds)

    class NegativeELBO(layers.Layer):
        def call(self, x, logits, stats):
            mu, logvar = stats[:, :Z], stats[:, Z:]
            rec = ops.sum(ops.binary_crossentropy(x, logits, from_logits=True), axis=-1)
            kl = 0.5 * ops.sum(ops.square(mu) + ops.exp(logvar) - 1 - logvar, axis=-1)
            self.add_loss(ops.mean(rec + kl))
            return logits

    keras.utils.set_random_seed(0)
    x_in = keras.Input((D,))
    encoder = keras.Sequential([keras.Input((D,)), layers.Dense(H, activation="relu"), layers.Dense(2 * Z)])
    decoder = keras.Sequential([keras.Input((Z,)), layers.Dense(H, activation="relu"), layers.Dense(D)])
    stats = encoder(x_in)
    model = keras.Model(x_in, NegativeELBO()(x_in, decoder(Sample()(stats)), stats))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            curve.epoch(time.perf_counter() - self.started, lambda x: encoder(x).chunk(2, dim=-1), decoder)

    model.fit(x_train, epochs=epochs, batch_size=batch, shuffle=True, verbose=0, callbacks=[Epochs()])


def run_peer(peer: str, x_train, curve, epochs: int, batch: int, device: str = "cpu") -> None:
    batch = 512 if "-b512" in peer else batch
    compile, bf16 = peer.endswith("-compile"), "-bf16" in peer
    if peer.startswith("vaekit"):
        _vaekit(x_train, curve, epochs, batch, design="conv" if "-conv" in peer else "mlp", compile=compile,
                default_layout=peer.endswith("-nchw"), bf16=bf16, flush="-noftz" not in peer,
                keep_memory="-nokeep" not in peer, device=device)
    elif peer.startswith("pythae"):
        _pythae(x_train, curve, epochs, batch, design="conv" if "-conv" in peer else "mlp", bf16=bf16, device=device)
    elif peer == "keras":
        if device != "cpu":
            raise SystemExit("the keras peer runs on the CPU only here: drop it or --device cuda")
        _keras(x_train, curve, epochs, batch)
    else:
        _plain(x_train, curve, epochs, batch, loader=peer == "plain-dataloader",
               fused=peer.startswith("plain-fused") or peer == "plain-b512-compile", compile=compile, bf16=bf16,
               flush="-ftz" in peer, device=device)


def epochs_to_target(curve: list[float], target: float) -> int | None:
    """The epochs trained when the test -ELBO first reached `target` (None: never)."""
    return next((epoch for epoch, value in enumerate(curve, 1) if value <= target), None)


def worker(args) -> None:
    if "-mkl" in args.peer:  # read when vaekit.accel first accelerates a model
        os.environ["VAEKIT_ONEDNN_LINEAR"] = "0"
    if "-noaccel" in args.peer:  # vaekit.accel.accelerate does nothing: the core's plain torch networks
        os.environ["VAEKIT_ACCEL"] = "0"
    if "-nonative" in args.peer:
        os.environ["VAEKIT_NATIVE"] = "0"
    import torch

    torch.set_num_threads(args.threads)
    if args.lockstep and sys.platform == "linux":  # a stopped worker must not outlive its coordinator
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent
    design = "conv" if "-conv" in args.peer else "mlp"
    x_train, x_test = fashion(design, args.limit)
    curve = Curve(x_test, lockstep=args.lockstep, device=args.device)
    run_peer(args.peer, x_train, curve, args.epochs, args.batch, args.device)
    steady = statistics.median(curve.seconds[1:] or curve.seconds)
    reached = epochs_to_target(curve.neg_elbo, args.target)
    gpu = {"gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20} if args.device != "cpu" else {}
    print(json.dumps({"peer": args.peer, "batch": 512 if "-b512" in args.peer else args.batch,
                      "samples_per_s": len(x_train) / steady, "seconds_per_epoch": steady,
                      "train_seconds": sum(curve.seconds), "test_neg_elbo": curve.neg_elbo[-1],
                      "seconds_to_target": sum(curve.seconds[:reached]) if reached else None,
                      "epochs_to_target": reached,
                      "curve": curve.neg_elbo, "epoch_seconds": curve.seconds, "peak_rss_mb": peak_rss_mb(), **gpu}))


# -- physical limits ---------------------------------------------------------------------------------
def timed(fn, repeat=100, device="cpu") -> float:
    """Mean seconds of fn() over `repeat` calls after 10 untimed ones, its device work included."""
    for _ in range(10):
        fn()
    elapsed(0.0, device)  # the warm-up's device work done before the clock starts
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return elapsed(started, device) / repeat


def gemm_seconds(gemms, dtype=None, onednn=False, device="cpu") -> tuple[float, float]:
    """(seconds, flops) of the (m, k, n) matrix products at this machine's measured rates (fp32 unless
    dtype says otherwise), on `device`. onednn: each product at the faster of torch.mm and oneDNN's dense linear
    with a transposed right operand (the layouts of vaekit.accel's OneDNNLinear)."""
    import torch

    seconds = flops = 0.0
    for m, k, n in gemms:
        a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
        taken = timed(lambda: torch.mm(a, b), device=device)
        if onednn:
            from vaekit.accel.onednn import onednn_linear, register_ops

            register_ops()
            taken = min(taken, timed(lambda: onednn_linear(a, b.t())))
        seconds += taken
        flops += 2 * m * k * n
    return seconds, flops


def training_ceiling(batch: int, bf16: bool = False, onednn: bool = False) -> dict:
    """Fastest possible training step: the MLP's GEMMs (forward and backward) + one fused Adam step;
    bf16: the GEMMs at bfloat16 rates (mixed precision: Adam stays fp32); onednn: each fp32 GEMM at the
    faster of torch.mm and oneDNN."""
    import torch

    shapes = [(D, H), (H, 2 * Z), (Z, H), (H, D)]  # (in, out) of each Linear
    gemms = []
    for index, (fan_in, fan_out) in enumerate(shapes):
        gemms.append((batch, fan_in, fan_out))  # forward
        gemms.append((fan_in, batch, fan_out))  # weight gradient
        if index > 0:
            gemms.append((batch, fan_out, fan_in))  # input gradient (none for the first layer)
    seconds, flops = gemm_seconds(gemms, torch.bfloat16 if bf16 else None, onednn=onednn)
    params = [torch.zeros(fan_in * fan_out + fan_out, requires_grad=True) for fan_in, fan_out in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    adam_seconds = timed(torch.optim.Adam(params, lr=1e-3, fused=True).step)
    step = seconds + adam_seconds
    precision = " (bf16 GEMMs)" if bf16 else " (faster of torch.mm, oneDNN)" if onednn else ""
    return {"peer": f"ceiling: GEMMs + fused Adam, b{batch}{precision}", "samples_per_s": batch / step,
            "seconds_per_epoch": 60000 / batch * step, "gflops": flops / seconds / 1e9,
            "mflop_per_sample": flops / batch / 1e6}


def iwae_flops(images: int, k: int) -> int:
    """Multiply-adds x 2 of the MLP's k-sample NLL: one encoder pass per image, k decoder passes."""
    return 2 * (Z * H + H * D) * images * k + 2 * (D * H + H * 2 * Z) * images


def iwae(args) -> dict:
    """vaekit's k-sample NLL on the 10,000 test images (model trained 2 epochs: time and memory depend on
    the shapes only) against one encoder pass per image plus k decoder passes at the best GEMM rate.
    The images go in 10 parts, each followed by a fresh measure of the GEMM rates, so each part's
    ceiling is taken at the machine's speed of that moment (this VM has slow spells)."""
    import torch

    import vaekit
    from vaekit.evaluation import importance_weighted_nll

    torch.set_num_threads(args.threads)
    run = vaekit.train(None, data="fashion-mnist", preset="pytorch-mlp", epochs=2, val_fraction=0.0, progress=False)
    _, x_test = fashion("conv")  # (N, 1, 28, 28), as the trained run's data
    x = torch.from_numpy(x_test)
    torch.manual_seed(0)
    nll = seconds = ceiling = ceiling_mm = 0.0
    rates, rates_mm = [], []
    for part in x.chunk(10):
        started = time.perf_counter()
        nll += float(importance_weighted_nll(run.vae, part, k=args.k).sum())
        seconds += time.perf_counter() - started
        rate, rate_mm = {}, {}
        for rows in (1024, 4096, 16384):
            for onednn, into in ((True, rate), (False, rate_mm)):
                s, flops = gemm_seconds([(rows, Z, H), (rows, H, D)], onednn=onednn)
                into[rows] = flops / s / 1e9
        rates.append(rate)
        rates_mm.append(rate_mm)
        flops = iwae_flops(len(part), args.k)
        ceiling += flops / (max(rate.values()) * 1e9)
        ceiling_mm += flops / (max(rate_mm.values()) * 1e9)
    return {"k": args.k, "images": len(x), "nll": nll / len(x), "seconds": seconds, "ceiling_seconds": ceiling,
            "vs_ceiling": seconds / ceiling, "ceiling_seconds_mm": ceiling_mm, "vs_ceiling_mm": seconds / ceiling_mm,
            "gflops_by_part": rates, "gflops_by_part_mm": rates_mm,
            "decoder_passes_per_s": len(x) * args.k / seconds, "peak_rss_mb": peak_rss_mb()}


def _command(args, *extra) -> list[str]:
    return [sys.executable, "-m", "benchmarks.speed", *extra, "--epochs", str(args.epochs), "--batch",
            str(args.batch), "--threads", str(args.threads), "--target", str(args.target), "--k", str(args.k),
            "--device", args.device, "--limit", str(args.limit)]


def worker_environment(args) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(args.threads)}


def run_worker(args, *extra) -> dict | None:
    """The JSON row of `python -m benchmarks.speed *extra` with args' settings, in its own process (None if it fails)."""
    out = subprocess.run(_command(args, *extra), capture_output=True, text=True, env=worker_environment(args))
    if out.returncode != 0:
        print(f"{' '.join(extra)} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _until_stopped(proc: subprocess.Popen) -> None:
    """Wait until the worker stops itself (end of an epoch) or exits."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)


def lockstep(args, peers: list[str]) -> dict[str, dict | None]:
    """All peers alive at once, one running at a time: every peer's epoch e runs before any peer's
    epoch e + 1 (set-up and epoch 1 peer by peer, then rounds in alternating order)."""
    workers = {}
    try:
        for peer in peers:
            log = tempfile.TemporaryFile()
            proc = subprocess.Popen(_command(args, "--worker", peer, "--lockstep"), stdout=subprocess.PIPE,
                                    stderr=log, env=worker_environment(args))
            workers[peer] = (proc, log)
            _until_stopped(proc)
        for round_ in range(1, args.epochs + 1):  # epochs 2..N, then one more turn to exit
            for peer in peers if round_ % 2 else list(reversed(peers)):
                proc, _ = workers[peer]
                if proc.returncode is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    _until_stopped(proc)
    finally:  # an interrupted coordinator leaves no stopped workers behind
        for proc, _ in workers.values():
            if proc.returncode is None:
                proc.kill()  # SIGKILL ends a stopped process too
    results = {}
    for peer, (proc, log) in workers.items():
        out = proc.stdout.read().decode()
        if proc.returncode != 0:
            log.seek(0)
            print(f"{peer} failed: {log.read().decode().strip().splitlines()[-1:]}", file=sys.stderr)
        results[peer] = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else None
    return results


def _paired_ratio(reps: list[dict], base_reps: list[dict]) -> float:
    """Median over (repetition, epoch >= 2) of base's epoch seconds / this peer's, same round."""
    ratios = [b / s for rep, base in zip(reps, base_reps)
              for s, b in zip(rep["epoch_seconds"][1:], base["epoch_seconds"][1:])]
    return statistics.median(ratios)


def summarize(results: dict[str, list[dict]], args) -> list[dict]:
    """One row per peer with a result: medians over its repetitions, and its speed over the plain loop's and
    pythae's (paired by epoch under --lockstep when every repetition of both finished)."""
    rows = []
    for peer, reps in results.items():
        if not reps:
            continue
        row = {"peer": peer, "reps": len(reps)}
        for key in ("samples_per_s", "seconds_per_epoch", "train_seconds", "test_neg_elbo", "peak_rss_mb",
                    "seconds_to_target", "epochs_to_target", "gpu_peak_mb"):
            values = [r[key] for r in reps if r.get(key) is not None]
            row[key] = statistics.median(values) if len(values) == len(reps) else None  # all reps reach it or none
        rows.append(row)
    base = {row["peer"]: row["samples_per_s"] for row in rows}
    for row in rows:
        for peer in ("plain", "pythae", "pythae-conv"):
            if peer not in base:
                continue
            complete = len(results[row["peer"]]) == len(results[peer]) == args.reps
            row[f"vs_{peer}"] = (_paired_ratio(results[row["peer"]], results[peer]) if args.lockstep and complete
                                 else row["samples_per_s"] / base[peer])
    return rows


def compare(args) -> None:
    peers = args.peers.split(",") if args.peers else list(PEERS[args.design])
    results: dict[str, list[dict]] = {peer: [] for peer in peers}
    for rep in range(args.reps):
        if args.lockstep:
            outcome = lockstep(args, peers)
        else:  # one peer after another, the order alternating between repetitions
            outcome = {peer: run_worker(args, "--worker", peer) for peer in (peers if rep % 2 == 0 else peers[::-1])}
        for peer, row in outcome.items():
            if row is not None:
                print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "epoch_seconds")}), flush=True)
                results[peer].append(row)
    rows = summarize(results, args)
    import torch

    torch.set_num_threads(args.threads)
    ceilings = [training_ceiling(b, bf16, onednn) for bf16, onednn in ((False, False), (False, True), (True, False))
                for b in (128, 512)] if args.design == "mlp" else []
    ratio = [("vs_plain", "x plain", ".2f"), ("vs_pythae", "x pythae", ".2f")] if args.design == "mlp" else \
        [("vs_pythae-conv", "x pythae", ".2f")]
    table = markdown_table(rows + ceilings, [
        ("peer", "peer", ""), ("samples_per_s", "steady samples/s", ",.0f"), ("seconds_per_epoch", "s/epoch", ".2f"),
        ("train_seconds", f"{args.epochs}-epoch train s", ".1f"),
        ("seconds_to_target", f"s to {args.target:g}", ".1f"), ("epochs_to_target", "epochs", ".0f"),
        ("test_neg_elbo", f"test -ELBO @{args.epochs}", ".2f"), ("peak_rss_mb", "peak RSS MB", ",.0f"), *ratio])
    print(table)
    name = ("speed" if args.design == "mlp" else f"speed_{args.design}") + (f"_{args.tag}" if args.tag else "")
    write_results(name, {"design": args.design, "epochs": args.epochs, "reps": args.reps, "batch": args.batch,
                         "lockstep": args.lockstep,
                         "target": args.target, "rows": rows, "ceilings": ceilings, "table": table, "raw": results})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", choices=("mlp", "conv", "iwae"), default="mlp")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=245.0, help="test -ELBO for the 's to target' column")
    parser.add_argument("--k", type=int, default=1000, help="importance samples for --design iwae")
    parser.add_argument("--peers", help=f"comma-separated; default all of the design's: {PEERS}")
    parser.add_argument("--tag", default="", help="suffix for the results file")
    parser.add_argument("--lockstep", action="store_true",
                        help="run all peers at once, one epoch each in turn (each stops itself between epochs), "
                             "so a slow spell of the machine hits every peer alike; ratios are paired by epoch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the peers train (keras: cpu only)")
    parser.add_argument("--limit", type=int, default=0, help="the first N training and test images only (0: all)")
    parser.add_argument("--worker", dest="peer", help=argparse.SUPPRESS)
    parser.add_argument("--iwae-worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.peer:
        return worker(args)
    if args.iwae_worker:
        print(json.dumps(iwae(args)))
        return
    if args.design != "iwae":
        return compare(args)
    row = run_worker(args, "--iwae-worker")
    table = markdown_table([row], [("k", "k", ""), ("images", "images", ","), ("nll", "test NLL", ".2f"),
                                   ("seconds", "s", ".1f"), ("ceiling_seconds", "GEMM ceiling s", ".1f"),
                                   ("vs_ceiling", "x ceiling", ".2f"),
                                   ("ceiling_seconds_mm", "ceiling s at torch.mm rates", ".1f"),
                                   ("vs_ceiling_mm", "x that ceiling", ".2f"),
                                   ("decoder_passes_per_s", "decoder passes/s", ",.0f"),
                                   ("peak_rss_mb", "peak RSS MB", ",.0f")])
    print(table)
    write_results("speed_iwae" + (f"_{args.tag}" if args.tag else ""), {**row, "table": table})


if __name__ == "__main__":
    main()
