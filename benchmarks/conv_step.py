"""Issue 3, rounds 16-17: how much of the conv design's fp32 training step is left outside its convolution
kernels, whether the largest layer runs faster rewritten, and what vaekit's C kernels are worth.

  python -m benchmarks.conv_step [--batch 128] [--threads 2] [--repeat 60] [--part all|native] [--tag NAME]

Table 1, vaekit's whole step as its Trainer runs it (channels_last, fused Adam, freed memory kept, batches
drawn from 60,000 random images) against the same step with one change; all variants live in one process and
take turns step by step, medians of --repeat steps each:
  trims that keep the gradient exact: the encoder's 3,136->40 head as oneDNN products; the encoder's
    convolutions with bias and ReLU inside oneDNN's kernel; the decoder's head written straight in
    channels_last (no layout copy);
  the batch in two halves: one after the other, and side by side in two threads of one core each (the main
  thread switched to one thread meanwhile, so that its own OpenMP team does not spin on their cores);
  an ablation that breaks the gradient on purpose to price one pass: the 64->32 layer's ReLU mask skipped.
Table 2, where the step's time goes (torch.profiler): the convolutions' and products' own kernels against
everything else, and the step at batch 1 (dispatch, Python and the smallest kernels).
Table 3, the 64->32 transposed convolution alone (the largest layer), its kernels against rewrites on the
same inputs, taking turns call by call: the forward as four stride-1 convolutions, one per output phase
(oneDNN's forward kernels), with and without interleaving them into the output; the weight gradient as the
weight gradients of those four convolutions.
Round 17, printed first (alone with --part native): vaekit's step with its C kernels (vaekit/accel/native.c) against
the same step on torch's kernels alone (native.library() made None), taking turns step by step, medians of
--repeat; and the time per step inside each C kernel (timed around its calls, unprofiled). Since round 17
vaekit's step in tables 1-3 runs those kernels, which the decoder-head trim bypasses (it calls the decoder's
layers one by one).
"""

from __future__ import annotations

import argparse
import time
import types
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import markdown_table, write_results
from benchmarks.conv_layers import _alternating_median_ms, conv_design

KERNELS = ("aten::convolution_backward", "aten::mkldnn_convolution", "mkldnn::_convolution_transpose_pointwise",
           "mkldnn::_linear_pointwise", "aten::mm", "aten::addmm")


def _model():
    import torch

    from vaekit.config import TrainConfig
    from vaekit.optimization import make_optimizer

    vae = conv_design()
    return vae, make_optimizer(vae.parameters(), TrainConfig(), torch.device("cpu"))


def _plain_step(vae, optimizer, images, size: int) -> None:
    """One training step on `size` random rows of `images`, as the Trainer takes it."""
    import torch

    x = images.index_select(0, torch.randint(0, len(images), (size,)))
    optimizer.zero_grad(set_to_none=True)
    vae.loss(x, beta=1.0).loss.backward()
    optimizer.step()


def _conv_relu_function():
    import torch

    class ConvReLU(torch.autograd.Function):
        """relu(conv2d(x, weight) + bias) in one oneDNN kernel; backward: mask, bias sum, torch's kernel."""

        @staticmethod
        def forward(ctx, x, weight, bias, stride, padding):
            out = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, list(padding), list(stride), [1, 1], 1,
                                                          "relu", [], "")
            ctx.save_for_backward(x, weight, out)
            ctx.geometry = stride, padding
            return out

        @staticmethod
        def backward(ctx, grad):
            x, weight, out = ctx.saved_tensors
            stride, padding = ctx.geometry
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
            grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], 1,
                [ctx.needs_input_grad[0], True, False])
            return grad_x, grad_weight, grad.sum((0, 2, 3)), None, None

    return ConvReLU


def _unmasked_function():
    import torch

    from vaekit.accel.onednn import conv_transpose_backward

    class Unmasked(torch.autograd.Function):
        """The fused ReLU transposed convolution with its backward's ReLU mask left out (a wrong gradient)."""

        @staticmethod
        def forward(ctx, x, weight, bias, stride, padding, output_padding):
            out = torch.ops.vaekit.onednn_conv_transpose_relu(x, weight, bias, stride, padding, output_padding)
            ctx.save_for_backward(x, weight)
            ctx.geometry = stride, padding, output_padding
            return out

        @staticmethod
        def backward(ctx, grad):
            x, weight = ctx.saved_tensors
            return (*conv_transpose_backward(ctx, grad, x, weight, *ctx.geometry), grad.sum((0, 2, 3)),
                    None, None, None)

    return Unmasked


def _variants(vae) -> dict[str, tuple[dict, str | None]]:
    """Name -> ({module: forward} replacements set as instance attributes, how the batch is split)."""
    import torch
    import torch.nn.functional as F

    from vaekit.accel.onednn import OneDNNLinearFunction

    encoder, decoder = vae.encoder, vae.decoder
    conv_relu, unmasked = _conv_relu_function(), _unmasked_function()

    def head_onednn(self, x, c=None):
        return OneDNNLinearFunction.apply(self.convs(x).flatten(1), self.head.weight, self.head.bias)

    def fused_convs(self, x, c=None):
        h = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs[::2]:
            h = conv_relu.apply(h, conv.weight, conv.bias, conv.stride, conv.padding)
        return OneDNNLinearFunction.apply(h.flatten(1), self.head.weight, self.head.bias)

    def channels_last_head(self, z, c=None):
        linear, (channels, height, width) = self.head[0], self.start
        weight = linear.weight.view(channels, height, width, -1).permute(1, 2, 0, 3).reshape(-1, linear.in_features)
        bias = linear.bias.view(channels, height, width).permute(1, 2, 0).reshape(-1)
        h = F.linear(z, weight, bias).relu().view(-1, height, width, channels).permute(0, 3, 1, 2)
        return self.deconvs(h)[..., : self.height, : self.width]

    layer = decoder.deconvs[2]  # the 64->32 transposed convolution

    def no_mask(self, x):
        return unmasked.apply(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)

    return {"vaekit's step": ({}, None),
            "encoder head as oneDNN products": ({encoder: head_onednn}, None),
            "+ encoder convs with bias and ReLU in oneDNN's kernel": ({encoder: fused_convs}, None),
            "+ decoder head straight to channels_last": ({encoder: fused_convs, decoder: channels_last_head}, None),
            "batch in two halves, one after the other": ({}, "sequential"),
            "batch in two halves, side by side (two threads of one core each)": ({}, "threads"),
            "ablation: 64->32 layer's ReLU mask skipped (wrong gradient)": ({layer: no_mask}, None)}


def step_rows(batch: int, repeat: int) -> tuple[list[dict], dict]:
    import torch

    from vaekit.accel.heap import keeping_freed_memory

    vae, optimizer = _model()
    params, threads = list(vae.parameters()), torch.get_num_threads()
    images = torch.rand(60_000, 1, 28, 28)
    variants = _variants(vae)
    pool = ThreadPoolExecutor(2, initializer=lambda: torch.set_num_threads(1))

    def half_gradients(x):
        return torch.autograd.grad(vae.loss(x, beta=1.0).loss, params)

    def make_step(replacements, halves):
        def step():
            for module, forward in replacements.items():
                module.forward = types.MethodType(forward, module)
            if halves is None:
                _plain_step(vae, optimizer, images, batch)
            else:
                split_step(halves)
            for module in replacements:
                del module.forward
        return step

    def split_step(halves):
        x = images.index_select(0, torch.randint(0, len(images), (batch,)))
        optimizer.zero_grad(set_to_none=True)
        if halves == "sequential":
            for part in x.chunk(2):
                (vae.loss(part, beta=1.0).loss / 2).backward()
        else:  # the main thread's own OpenMP team would spin on the cores the two workers use
            torch.set_num_threads(1)
            futures = [pool.submit(half_gradients, part) for part in x.chunk(2)]
            for param, *grads in zip(params, *(future.result() for future in futures)):
                param.grad = (grads[0] + grads[1]) / 2
        optimizer.step()
        torch.set_num_threads(threads)

    with keeping_freed_memory(True):
        medians = _alternating_median_ms({name: make_step(*variant) for name, variant in variants.items()}, repeat)
        split = _time_split(vae, optimizer, images, batch, repeat)
    base = medians["vaekit's step"]
    rows = [{"variant": name, "ms": ms, "vs_step": ms / base} for name, ms in medians.items()]
    pool.shutdown()
    return rows, split


def _time_split(vae, optimizer, images, batch: int, repeat: int) -> dict:
    import torch
    from torch.profiler import profile

    def step(size=batch):
        _plain_step(vae, optimizer, images, size)

    with profile() as prof:
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        profiled_ms = (time.perf_counter() - started) / repeat * 1e3
    kernels = other = 0.0
    for event in prof.key_averages():
        if event.key in KERNELS:
            kernels += event.self_cpu_time_total / 1e3 / repeat
        else:
            other += event.self_cpu_time_total / 1e3 / repeat
    unprofiled = _alternating_median_ms({"step": step, "batch 1": lambda: step(1)}, repeat)
    return {"kernels_ms": kernels, "other_ms": other, "profiled_step_ms": profiled_ms, "step_ms": unprofiled["step"],
            "batch_1_step_ms": unprofiled["batch 1"]}


def layer_rows(batch: int, repeat: int) -> list[dict]:
    """The 64->32 transposed convolution against its rewrites as four stride-1 convolutions, one per output
    phase: output row 2m takes kernel row 1 at input row m, row 2m+1 kernel row 2 at m and row 0 at m+1
    (columns alike), so phase (a, b) is a (1|2)x(1|2) convolution of the input padded by one at the end."""
    import torch
    import torch.nn.functional as F

    cl = torch.channels_last
    x = torch.randn(batch, 64, 14, 14).contiguous(memory_format=cl)
    weight = (torch.randn(64, 32, 3, 3) * 0.05).contiguous(memory_format=cl)
    bias = torch.randn(32)
    grad = torch.randn(batch, 32, 28, 28).contiguous(memory_format=cl)
    taps = {0: [1], 1: [2, 0]}  # output phase -> kernel rows (or columns), by input offset 0, 1
    conv_weight = weight.transpose(0, 1)  # (out, in, 3, 3)
    kernels = {(a, b): conv_weight[:, :, taps[a]][:, :, :, taps[b]].contiguous(memory_format=cl)
               for a in (0, 1) for b in (0, 1)}
    padded = F.pad(x, (0, 1, 0, 1)).contiguous(memory_format=cl)

    def phase_input(a, b):
        return padded[:, :, :14 + a, :14 + b]

    def kernel_forward():
        return torch.ops.mkldnn._convolution_transpose_pointwise(x, weight, bias, [1, 1], [1, 1], [2, 2], [1, 1], 1,
                                                                  "relu", [], "")

    def phase_forward():
        return {(a, b): torch.ops.mkldnn._convolution_pointwise(phase_input(a, b), kernel, bias, [0, 0], [1, 1],
                                                                [1, 1], 1, "relu", [], "")
                for (a, b), kernel in kernels.items()}

    def interleaved_forward():
        out = torch.empty(batch, 14, 2, 14, 2, 32)
        for (a, b), phase in phase_forward().items():
            out[:, :, a, :, b, :] = phase.permute(0, 2, 3, 1)
        return out.view(batch, 28, 28, 32).permute(0, 3, 1, 2)

    def kernel_weight_grad():
        return torch.ops.aten.convolution_backward(grad, x, weight, None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1,
                                                   [False, True, False])[1]

    def phase_weight_grad():
        phases = grad.permute(0, 2, 3, 1).view(batch, 14, 2, 14, 2, 32)
        result = torch.empty(32, 64, 3, 3)
        for (a, b), kernel in kernels.items():
            phase_grad = phases[:, :, a, :, b, :].permute(0, 3, 1, 2).contiguous(memory_format=cl)
            part = torch.ops.aten.convolution_backward(phase_grad, phase_input(a, b), kernel, None, [1, 1], [0, 0],
                                                       [1, 1], False, [0, 0], 1, [False, True, False])[1]
            for r, i in enumerate(taps[a]):
                for s, j in enumerate(taps[b]):
                    result[:, :, i, j] = part[:, :, r, s]
        return result.transpose(0, 1)

    with torch.no_grad():
        for name, error in {"forward": interleaved_forward() - kernel_forward(),
                            "weight gradient": phase_weight_grad() - kernel_weight_grad()}.items():
            assert float(error.abs().max()) < 1e-2, f"the phase rewrite's {name} differs by {error.abs().max()}"
        medians = _alternating_median_ms({"forward: oneDNN's transposed-convolution kernel": kernel_forward,
                                          "forward: four phase convolutions": phase_forward,
                                          "forward: four phase convolutions, interleaved": interleaved_forward,
                                          "weight gradient: oneDNN's kernel": kernel_weight_grad,
                                          "weight gradient: four phase convolutions'": phase_weight_grad}, repeat)
    flops = 2 * batch * 14 * 14 * weight.numel()
    return [{"variant": name, "ms": ms, "gflops": flops / ms / 1e6} for name, ms in medians.items()]


def native_rows(batch: int, repeat: int) -> tuple[list[dict], list[dict]]:
    """vaekit's step with and without its C kernels, taking turns; then the time inside each kernel per step."""
    import collections

    import torch

    from vaekit.accel import native
    from vaekit.accel.denormals import flushing_denormals
    from vaekit.accel.heap import keeping_freed_memory

    library = native.library()
    if library is None:
        raise SystemExit("vaekit's C kernels are not available here (no C++ compiler or ninja, or VAEKIT_NATIVE=0)")
    images = (torch.rand(60_000, 1, 28, 28) > 0.5).float()
    models = {name: _model() for name in ("with its C kernels", "on torch's kernels alone")}

    def step(name):
        def run():
            native.library = (lambda: library) if name == "with its C kernels" else (lambda: None)
            _plain_step(*models[name], images, batch)
        return run

    seconds: dict[str, float] = collections.defaultdict(float)

    class Timed:  # the library, each call timed
        def __getattr__(self, name):
            function = getattr(library, name)

            def timed(*args):
                started = time.perf_counter()
                result = function(*args)
                seconds[name] += time.perf_counter() - started
                return result
            return timed

    try:
        with keeping_freed_memory(True), flushing_denormals(True):  # as the Trainer runs
            medians = _alternating_median_ms({name: step(name) for name in models}, repeat)
            native.library = lambda: Timed()
            for _ in range(repeat):
                _plain_step(*models["with its C kernels"], images, batch)
    finally:
        native.library = lambda: library
    base = medians["on torch's kernels alone"]
    steps = [{"variant": name, "ms": ms, "vs_torch": ms / base} for name, ms in medians.items()]
    kernels = [{"kernel": name, "ms": total / repeat * 1e3} for name, total in seconds.items()]
    return steps, kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--part", choices=("all", "native"), default="all")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    native_steps, kernels = native_rows(args.batch, args.repeat)
    native_tables = [markdown_table(native_steps, [("variant", f"vaekit's step at batch {args.batch}", ""),
                                                   ("ms", "ms", ".2f"), ("vs_torch", "x on torch's kernels", ".3f")]),
                     markdown_table(kernels, [("kernel", "C kernel", ""), ("ms", "ms per step", ".3f")])]
    print(*native_tables, sep="\n\n")
    name = "conv_step" + (f"_{args.tag}" if args.tag else "")
    if args.part == "native":
        write_results(name, {"batch": args.batch, "threads": args.threads, "repeat": args.repeat,
                             "native_steps": native_steps, "native_kernels": kernels, "tables": native_tables})
        return
    steps, split = step_rows(args.batch, args.repeat)
    layers = layer_rows(args.batch, args.repeat)
    step_table = markdown_table(steps, [("variant", f"step at batch {args.batch}", ""), ("ms", "ms", ".2f"),
                                        ("vs_step", "x vaekit's step", ".3f")])
    split_rows = [{"part": "convolution and product kernels (profiled self time)", "ms": split["kernels_ms"]},
                  {"part": "everything else (profiled self time)", "ms": split["other_ms"]},
                  {"part": "the profiled step (its wall time, the profiler's cost included)",
                   "ms": split["profiled_step_ms"]},
                  {"part": f"the step, unprofiled (batch {args.batch})", "ms": split["step_ms"]},
                  {"part": "the step at batch 1, unprofiled", "ms": split["batch_1_step_ms"]}]
    split_table = markdown_table(split_rows, [("part", "part", ""), ("ms", "ms per step", ".2f")])
    layer_table = markdown_table(layers, [("variant", "64->32 transposed conv, batch " + str(args.batch), ""),
                                          ("ms", "ms", ".2f"), ("gflops", "GFLOP/s", ".0f")])
    print(step_table, split_table, layer_table, sep="\n\n")
    print(f"\n{time.perf_counter() - started:.0f} s")
    write_results(name, {"batch": args.batch, "threads": args.threads, "repeat": args.repeat, "steps": steps,
                         "time_split": split, "layer": layers, "native_steps": native_steps,
                         "native_kernels": kernels, "tables": [*native_tables, step_table, split_table, layer_table]})


if __name__ == "__main__":
    main()
