"""Issue 3, the conv design's fp32 training step taken apart: where its time goes, and whether its
convolutions run faster written as matrix products.

  python -m benchmarks.conv_layers [--batch 128] [--threads 2] [--repeat 30] [--speed-results NAME]

Table 1, each of the five convolutions of vaekit's conv design at --batch in fp32: forward and
forward + backward (input, weight and bias gradients) with torch's kernels (oneDNN on a CPU) in
channels_last and in torch's default layout, and rewritten as matrix products, each rewrite checked
against the kernel's output; the variants take turns call by call, medians of --repeat:
  stride-2 conv:            im2col (nine strided views side by side) then one oneDNN product;
  stride-2 transposed conv: sub-pixel (a 2x2 conv to 4x the channels, then pixel_shuffle);
  stride-1 transposed conv: the same conv with its kernel flipped, as a plain conv.
Since round 15 the channels_last column is vaekit's own path: the last layer's forward runs as one
product and shifted sums (vaekit.accel.onednn.TapsConvTranspose2dFunction).
Table 2, vaekit's whole training step (channels_last, as its Trainer runs it) under torch.profiler,
grouped by operator, against the step time that 1.5x pythae's samples/s (the issue's target) allows,
pythae's figure read from benchmarks/results/speed_conv_<--speed-results>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

from benchmarks.common import RESULTS, markdown_table, write_results

SHAPES = {"conv 1->32, 28->14": (1, 28), "conv 32->64, 14->7": (32, 14), "deconv 32->64, 7->14": (32, 7),
          "deconv 64->32, 14->28": (64, 14), "deconv 32->1, 28->28": (32, 28)}  # (in channels, in size)


def _alternating_median_ms(calls: dict, repeat: int) -> dict[str, float]:
    """Median milliseconds of each call, the calls taking turns (after 5 warm-up rounds)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeat + 5):
        for name, fn in calls.items():
            started = time.perf_counter()
            fn()
            if round_ >= 5:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def _layers():
    """The five convolutions of vaekit's conv design, as its Trainer runs them."""
    from torch import nn

    from vaekit.accel import accelerate
    from vaekit.networks import build_networks

    encoder, decoder = build_networks("conv", (1, 28, 28), 20, 1, conv_channels=(32, 64))
    accelerate(nn.ModuleList([encoder, decoder]), "cpu")
    convs = [m for m in [*encoder.modules(), *decoder.modules()] if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for conv in convs:
        conv.relu = False  # the convolution alone (vaekit fuses the decoder's ReLUs into it since round 15)
    return dict(zip(SHAPES, convs))


def _rewrite(layer):
    """The layer's function as matrix products (see the module docstring), sharing its parameters."""
    import torch
    import torch.nn.functional as F

    from vaekit.accel.onednn import OneDNNLinearFunction, register_ops

    register_ops()
    weight, bias = layer.weight, layer.bias
    if not isinstance(layer, torch.nn.ConvTranspose2d):
        def im2col(x):
            batch, channels, height, width = x.shape
            padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
            columns = torch.cat([padded[:, i:i + height:2, j:j + width:2] for i in range(3) for j in range(3)], -1)
            out = OneDNNLinearFunction.apply(columns.reshape(-1, 9 * channels),
                                              weight.permute(0, 2, 3, 1).reshape(len(weight), -1), bias)
            return out.view(batch, (height + 1) // 2, (width + 1) // 2, -1).permute(0, 3, 1, 2)
        return im2col
    if layer.stride == (1, 1):
        return lambda x: F.conv2d(x, weight.flip(2, 3).transpose(0, 1), bias, padding=1)

    def sub_pixel(x):
        # Output row 2m takes kernel row 1 at input row m; row 2m+1 kernel row 2 at m and row 0 at m+1
        # (likewise for columns): a 2x2 conv per output phase (a, b), zeros where a phase takes no tap.
        taps = {(0, 0): 1, (1, 0): 2, (1, 1): 0}  # (phase, offset) -> kernel index
        zero = torch.zeros_like(weight[:, :, 0, 0])
        phases = [torch.stack([torch.stack([weight[:, :, taps[a, dy], taps[b, dx]]
                                            if (a, dy) in taps and (b, dx) in taps else zero
                                            for dx in (0, 1)], -1) for dy in (0, 1)], -2)
                  for a in (0, 1) for b in (0, 1)]  # each (in, out, 2, 2)
        kernel = torch.stack(phases, 2).reshape(len(weight), -1, 2, 2).transpose(0, 1)  # (out * 4, in, 2, 2)
        return F.pixel_shuffle(F.conv2d(F.pad(x, (0, 1, 0, 1)), kernel), 2) + bias[:, None, None]
    return sub_pixel


def layer_rows(batch: int, repeat: int) -> list[dict]:
    import torch

    rows = []
    for name, layer in _layers().items():
        channels, size = SHAPES[name]
        x = torch.randn(batch, channels, size, size)
        needs_input_grad = channels > 1  # the first layer's input is the data
        reference = layer(x)
        gradient = torch.randn_like(reference)
        out_pixels = reference.shape[-1] ** 2 if isinstance(layer, torch.nn.Conv2d) else size * size
        flops = 2 * batch * out_pixels * layer.weight.numel()
        row = {"layer": name, "mflop_per_sample": flops / batch / 1e6}
        fast = copy.deepcopy(layer).to(memory_format=torch.channels_last)  # as vaekit's Trainer lays it out
        variants = {"channels_last": (fast, fast, torch.channels_last),
                    "default": (layer, layer, torch.contiguous_format),
                    "rewrite": (fast, _rewrite(fast), torch.channels_last)}
        calls = {}
        for label, (module, fn, layout) in variants.items():
            inputs = x.to(memory_format=layout).requires_grad_(needs_input_grad)
            with torch.no_grad():
                error = float((fn(inputs) - reference).abs().max())
            assert error < 1e-3, f"{name} {label} differs from the kernel by {error}"

            def forward(fn=fn, inputs=inputs):
                with torch.no_grad():
                    fn(inputs)

            def step(module=module, fn=fn, inputs=inputs, grad=gradient.to(memory_format=layout)):
                module.zero_grad(set_to_none=True)
                inputs.grad = None
                fn(inputs).backward(grad)

            calls[f"{label}_forward_ms"], calls[f"{label}_step_ms"] = forward, step
        # The variants take turns call by call, so a slow spell of the machine falls on all of them alike.
        row.update(_alternating_median_ms(calls, repeat))
        backward_flops = flops * (3 if needs_input_grad else 2)
        row["channels_last_gflops"] = backward_flops / row["channels_last_step_ms"] / 1e6
        rows.append(row)
    return rows


GROUPS = {  # operator -> group of Table 2 (self CPU time)
    "aten::convolution_backward": "convolution backward", "aten::_convolution": "convolution forward",
    "aten::mkldnn_convolution": "convolution forward", "aten::threshold_backward": "ReLU",
    "mkldnn::_convolution_transpose_pointwise": "convolution forward (with bias and ReLU)",
    "mkldnn::_linear_pointwise": "the last layer's forward as one product",
    "aten::clamp_min": "ReLU", "aten::relu": "ReLU", "aten::add": "bias add (after the transposed convs)",
    "aten::mm": "dense heads", "aten::addmm": "dense heads", "aten::sum": "sums (bias gradients, the loss)",
    "aten::copy_": "copies", "aten::log_sigmoid_forward": "Bernoulli loss",
    "aten::log_sigmoid_backward": "Bernoulli loss",
}


def conv_design():
    """vaekit's conv VAE of the speed benchmark (seed 0), in the layout its Trainer gives it on a CPU."""
    import torch

    from vaekit.accel import accelerate
    from vaekit.config import ModelConfig
    from vaekit.vae import build_vae

    torch.manual_seed(0)
    return accelerate(build_vae(ModelConfig(data_shape=(1, 28, 28), network="conv", latent_dim=20,
                                            conv_channels=(32, 64), encoder_padding="same")), "cpu")


def step_rows(batch: int, repeat: int) -> tuple[list[dict], float]:
    import torch
    from torch.profiler import profile

    vae = conv_design()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, foreach=True)
    x = (torch.rand(batch, 1, 28, 28) > 0.5).float()

    def step():
        loss = vae.loss(x, beta=1.0).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step_ms = _alternating_median_ms({"step": step}, repeat)["step"]
    with profile() as prof:
        for _ in range(repeat):
            step()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        adam = event.key.startswith(("Optimizer.step", "aten::_foreach"))
        group = GROUPS.get(event.key, "Adam" if adam else "everything else")
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total / 1e3 / repeat
    profiled = sum(totals.values())
    return [{"part": part, "ms": ms, "share": ms / profiled} for part, ms in
            sorted(totals.items(), key=lambda item: -item[1])], step_ms


def _pythae_samples_per_s(tag: str) -> float:
    path = RESULTS / f"speed_conv_{tag}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for row in rows:
        if row["peer"] == "pythae-conv":
            return row["samples_per_s"]
    sys.exit(f"{path} is missing or has no pythae-conv row: run `python -m benchmarks.speed --design conv "
             f"--peers vaekit-conv,pythae-conv --tag {tag}` first, or pass --speed-results with an existing tag")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--speed-results", default="epyc_onednn", help="tag of the speed_conv results to read "
                                                                        "pythae's samples/s from")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    pythae = _pythae_samples_per_s(args.speed_results)  # before the timing, so a wrong tag fails at once
    import torch

    torch.set_num_threads(args.threads)
    layers = layer_rows(args.batch, args.repeat)
    parts, step_ms = step_rows(args.batch, args.repeat)
    budget_ms = args.batch / (1.5 * pythae) * 1e3
    kernels_ms = sum(row["channels_last_step_ms"] for row in layers)
    layer_table = markdown_table(layers, [
        ("layer", "layer", ""), ("mflop_per_sample", "MFLOP/sample fwd", ".2f"),
        ("channels_last_forward_ms", "fwd ms (channels_last)", ".2f"),
        ("channels_last_step_ms", "fwd+bwd ms (channels_last)", ".2f"),
        ("channels_last_gflops", "fwd+bwd GFLOP/s", ".0f"), ("default_forward_ms", "fwd ms (default)", ".2f"),
        ("default_step_ms", "fwd+bwd ms (default)", ".2f"), ("rewrite_forward_ms", "fwd ms (rewrite)", ".2f"),
        ("rewrite_step_ms", "fwd+bwd ms (rewrite)", ".2f")])
    step_table = markdown_table(parts, [("part", "part of vaekit's step", ""), ("ms", "ms per step", ".2f"),
                                        ("share", "share", ".0%")])
    summary = (f"vaekit's step {step_ms:.1f} ms at batch {args.batch} ({args.batch / step_ms * 1e3:,.0f} samples/s); "
               f"the five convolutions alone (fwd+bwd, channels_last) {kernels_ms:.1f} ms; 1.5x pythae's "
               f"{pythae:,.0f} samples/s (speed_conv_{args.speed_results}.json) allows {budget_ms:.1f} ms per step")
    print(layer_table, step_table, summary, sep="\n\n")
    write_results("conv_layers" + (f"_{args.tag}" if args.tag else ""),
                  {"batch": args.batch, "threads": args.threads, "layers": layers, "step_parts": parts,
                   "step_ms": step_ms, "kernels_ms": kernels_ms, "pythae_samples_per_s": pythae,
                   "budget_ms_for_1.5x_pythae": budget_ms, "tables": [layer_table, step_table], "summary": summary})


if __name__ == "__main__":
    main()
