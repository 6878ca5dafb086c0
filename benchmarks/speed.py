"""Issue 3: vaekit against its peers on the pytorch/examples design (MLP 784-400-20, Bernoulli,
Adam 1e-3) on Fashion-MNIST, side by side in one run, alternating, medians of repetitions.

  python -m benchmarks.speed [--epochs 10] [--reps 3] [--peers vaekit,plain,...] [--threads 2]

Each (peer, repetition) trains in its own subprocess (so peak RSS is its own); all test -ELBOs are
computed by one evaluator here (-ELBO per example in nats: summed BCE-with-logits + analytic KL, one
posterior sample, averaged over the 10,000 test images), so they are comparable. The ceiling row is
the model's GEMMs at the rates this machine reaches at those shapes, plus one fused Adam step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


from benchmarks.common import markdown_table, peak_rss_mb, write_results

D, H, Z = 784, 400, 20
PEERS = ("vaekit", "vaekit-compile", "vaekit-b512", "vaekit-b512-compile", "plain", "plain-dataloader",
         "plain-fused", "pythae")


def _data():
    from vaekit.data import load_dataset

    data = load_dataset("fashion-mnist")
    return data.x_train.reshape(-1, D), data.x_test.reshape(-1, D)


def _negative_elbo(encode, decode, x_test) -> float:
    """encode(x) -> (mu, logvar); decode(z) -> logits. Mean -ELBO in nats per example."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x_test), 1000):
            x = x_test[i:i + 1000]
            mu, logvar = encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec = F.binary_cross_entropy_with_logits(decode(z), x, reduction="none").sum(1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
            total += float((rec + kl).sum())
    return total / len(x_test)


class MLPVAE:
    """The plain PyTorch loop's model: pytorch/examples vae/main.py with logits, per-example nats."""

    def __new__(cls):
        import torch
        from torch import nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.enc = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, 2 * Z))
                self.dec = nn.Sequential(nn.Linear(Z, H), nn.ReLU(), nn.Linear(H, D))

            def encode(self, x):
                return self.enc(x).chunk(2, dim=-1)

            def forward(self, x):
                mu, logvar = self.encode(x)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                logits = self.dec(z)
                rec = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
                kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
                return (rec + kl).mean()

        return Model()


def _plain(x_train, x_test, epochs, batch, loader=False, fused=False):
    import torch

    torch.manual_seed(0)
    model = MLPVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    x = torch.from_numpy(x_train)
    per_epoch = []
    for _ in range(epochs):
        started = time.perf_counter()
        if loader:
            from torch.utils.data import DataLoader, TensorDataset

            batches = (b for (b,) in DataLoader(TensorDataset(x), batch_size=batch, shuffle=True))
        else:
            order = torch.randperm(len(x))
            batches = (x[order[i:i + batch]] for i in range(0, len(x), batch))
        for b in batches:
            loss = model(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        per_epoch.append(time.perf_counter() - started)
    neg = _negative_elbo(model.encode, model.dec, torch.from_numpy(x_test))
    return per_epoch, neg


def _vaekit(x_train, x_test, epochs, batch, compile=False):
    import torch

    import vaekit

    per_epoch = []
    # The named dataset: all 60,000 training images (val_fraction 0), like every other peer.
    run = vaekit.train(None, data="fashion-mnist", network="mlp", hidden=(H,), latent_dim=Z,
                       epochs=epochs, batch_size=batch, lr=1e-3, val_fraction=0.0, progress=False, seed=0,
                       compile=compile)
    per_epoch = [row["epoch_seconds"] for row in run.history]
    vae = run.vae
    encode = lambda x: vae.encoder(x).chunk(2, dim=-1)  # noqa: E731
    return per_epoch, _negative_elbo(encode, lambda z: vae.decoder(z).flatten(1), torch.from_numpy(x_test))


def _pythae(x_train, x_test, epochs, batch):
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(D, H), nn.ReLU())
            self.mu, self.logvar = nn.Linear(H, Z), nn.Linear(H, Z)

        def forward(self, x):
            h = self.body(x.reshape(len(x), -1))
            return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(Z, H), nn.ReLU(), nn.Linear(H, D))

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.body(z)).reshape(len(z), 1, 28, 28))

    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=Z, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    trainer = BaseTrainerConfig(output_dir=os.environ.get("TMPDIR", "/tmp") + "/pythae-bench", num_epochs=epochs,
                                learning_rate=1e-3, per_device_train_batch_size=batch, no_cuda=True,
                                steps_saving=None, steps_predict=None, keep_best_on_train=True)
    started = time.perf_counter()
    TrainingPipeline(training_config=trainer, model=model)(train_data=x_train.reshape(-1, 1, 28, 28))
    total = time.perf_counter() - started
    encode = lambda x: (lambda o: (o.embedding, o.log_covariance))(model.encoder(x))  # noqa: E731
    # pythae's training includes its own per-epoch bookkeeping; it reports no epoch times, so each
    # epoch is taken as the mean.
    return [total / epochs] * epochs, _negative_elbo(encode, lambda z: model.decoder.body(z), torch.from_numpy(x_test))


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    x_train, x_test = _data()
    started = time.perf_counter()
    if args.peer.startswith("vaekit"):
        per_epoch, neg = _vaekit(x_train, x_test, args.epochs, 512 if "-b512" in args.peer else args.batch,
                                 compile=args.peer.endswith("-compile"))
    elif args.peer == "pythae":
        per_epoch, neg = _pythae(x_train, x_test, args.epochs, args.batch)
    else:
        per_epoch, neg = _plain(x_train, x_test, args.epochs, args.batch, loader=args.peer == "plain-dataloader",
                                fused=args.peer == "plain-fused")
    wall = time.perf_counter() - started
    steady = statistics.median(per_epoch[1:] or per_epoch)
    print(json.dumps({"peer": args.peer, "samples_per_s": len(x_train) / steady, "seconds_per_epoch": steady,
                      "train_seconds": sum(per_epoch), "wall_seconds": wall, "test_neg_elbo": neg,
                      "peak_rss_mb": peak_rss_mb()}))


def ceiling(threads: int, batch: int) -> dict:
    """Fastest possible step: the model's GEMMs (forward and backward) at measured rates + fused Adam."""
    import torch

    torch.set_num_threads(threads)
    shapes = [(D, H), (H, 2 * Z), (Z, H), (H, D)]  # (in, out) of each Linear
    gemms = []  # (m, k, n) of every GEMM in a training step
    for index, (fan_in, fan_out) in enumerate(shapes):
        gemms.append((batch, fan_in, fan_out))  # forward
        gemms.append((fan_in, batch, fan_out))  # weight gradient
        if index > 0:
            gemms.append((batch, fan_out, fan_in))  # input gradient (not needed for the first layer)

    def timed(fn, repeat=200):
        for _ in range(20):
            fn()
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        return (time.perf_counter() - started) / repeat

    seconds = flops = 0.0
    for m, k, n in gemms:
        a, b = torch.randn(m, k), torch.randn(k, n)
        seconds += timed(lambda: torch.mm(a, b))
        flops += 2 * m * k * n
    params = [torch.zeros(fan_in * fan_out + fan_out, requires_grad=True) for fan_in, fan_out in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    adam = torch.optim.Adam(params, lr=1e-3, fused=True)
    adam_seconds = timed(adam.step)
    return {"peer": f"ceiling (GEMMs + fused Adam), b{batch}", "samples_per_s": batch / (seconds + adam_seconds),
            "seconds_per_epoch": 60000 / batch * (seconds + adam_seconds), "gflops": flops / seconds / 1e9,
            "mflop_per_sample": flops / batch / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--worker", dest="peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return worker(args)
    peers = args.peers.split(",")
    results: dict[str, list[dict]] = {peer: [] for peer in peers}
    for rep in range(args.reps):
        for peer in peers if rep % 2 == 0 else reversed(peers):  # alternate the order
            command = [sys.executable, "-m", "benchmarks.speed", "--worker", peer, "--epochs", str(args.epochs),
                       "--batch", str(args.batch), "--threads", str(args.threads)]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(command, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"{peer} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            results[peer].append(row)
    rows = []
    for peer, reps in results.items():
        if reps:
            rows.append({"peer": peer, **{k: statistics.median(r[k] for r in reps) for k in reps[0] if k != "peer"},
                         "reps": len(reps)})
    base = {row["peer"]: row["samples_per_s"] for row in rows}
    for row in rows:
        row["vs_plain"] = row["samples_per_s"] / base["plain"] if "plain" in base else None
        row["vs_pythae"] = row["samples_per_s"] / base["pythae"] if "pythae" in base else None
    ceilings = [ceiling(args.threads, b) for b in (128, 512)]
    table = markdown_table(rows + ceilings, [
        ("peer", "peer", ""), ("samples_per_s", "steady samples/s", ",.0f"), ("train_seconds", f"{args.epochs}-epoch train s", ".1f"),
        ("test_neg_elbo", "test -ELBO", ".2f"), ("peak_rss_mb", "peak RSS MB", ",.0f"),
        ("vs_plain", "x plain", ".2f"), ("vs_pythae", "x pythae", ".2f")])
    print(table)
    write_results("speed", {"epochs": args.epochs, "reps": args.reps, "batch": args.batch, "rows": rows,
                            "ceilings": ceilings, "table": table, "raw": results})


if __name__ == "__main__":
    main()
