"""C kernels for the conv networks' memory-bound passes (native.c), built on first use.

On the conv design's fp32 training step much of the time outside oneDNN's convolution kernels was passes
over the 28x28x32 activation that each read and write it whole: the last layer's taps and their shifted
sums, its input gradient, the ReLU mask, the bias gradient's sum, its weight gradient. native.c does them
in one pass each way; the stride-2 transposed convolution's forward as one oneDNN product of the input and
its taps (a GEMM near this CPU's peak, where oneDNN's transposed-convolution kernel is not) plus one pass
that adds the taps into the output; and a grayscale image's first layer, for which oneDNN's kernels ran far
below their rate (benchmarks/README.md, issue 3, round 17).

torch.utils.cpp_extension builds the library (ninja, and the C++ compiler `$CXX`, else `c++`, with OpenMP,
for this CPU: `-march=native`) into vaekit's cache (`$VAEKIT_CACHE`, default `~/.cache/vaekit`), once per
source, flags, compiler and CPU, under its file lock, so concurrent processes build it once. The kernels
keep a C interface called through ctypes, every return code checked: they take raw float arrays, and leaving
out torch's C++ headers keeps the build to a few seconds (a torch op with those headers took ~30 s on 2 cores).
They share torch's OpenMP runtime and thread count. Where there is no compiler or ninja, the build or the
load fails, the platform is not Linux, or `VAEKIT_NATIVE=0`, `library()` is None (with one warning, except for
the switch) and vaekit keeps torch's kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io import cache_dir
from .switches import NATIVE, switched_on

SOURCE = Path(__file__).with_name("native.c")
NAME = "vaekit_kernels"
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
         "-fno-signed-zeros")
CHANNELS = (16, 32, 48, 64)  # the channel counts native.c has kernels for
TAPS_BYTES = 4 << 20  # the stride-2 forward makes its taps this many bytes at a time, so they stay in cache

_lock = threading.Lock()
_library: ctypes.CDLL | bool | None = None  # False once a build was tried and failed


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first call; None where they cannot be had (see the module doc)."""
    global _library
    if _library is None:
        with _lock:
            if _library is None:
                _library = _build_and_load() or False
    return _library or None


def _cpu_signature() -> str:
    """What -march=native reads: the CPU's model and instruction sets."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _unavailable(why: str) -> None:
    warnings.warn(f"vaekit's C kernels {why}; using torch's kernels (VAEKIT_NATIVE=0 skips them)", RuntimeWarning,
                  stacklevel=2)


def _build() -> str | None:
    """The built library's path (cpp_extension's cached build when there is one), None with a warning."""
    compiler = os.environ.get("CXX", "c++")  # cpp_extension's choice
    try:
        from torch.utils import cpp_extension  # it imports setuptools
    except ImportError as error:
        _unavailable(f"need torch.utils.cpp_extension to build ({error})")
        return None
    missing = [what for what, there in ((f"a C++ compiler ({compiler})", shutil.which(compiler.split()[0])),
                                        ("ninja (pip install ninja)", cpp_extension.is_ninja_available())) if not there]
    if missing:
        _unavailable(f"need {' and '.join(missing)} to build")
        return None
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join((compiler, *FLAGS)).encode(), _cpu_signature().encode()]))
    folder = cache_dir() / "native" / key.hexdigest()[:16]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # its C++ ABI checks: these kernels have a C interface
            warnings.simplefilter("ignore")
            return cpp_extension.load(NAME, [str(SOURCE)], extra_cflags=list(FLAGS), extra_ldflags=["-fopenmp"],
                                      build_directory=str(folder), is_python_module=False)
    except Exception as error:  # noqa: BLE001 - a failed build raises RuntimeError with its log, a compiler that
        # fails its version check CalledProcessError, a folder that cannot be written OSError: all mean no kernels
        _unavailable(f"did not build ({compiler}: {type(error).__name__}: {str(error).strip()[-300:]})")
        return None


def _checked(result: int, function, arguments) -> int:
    """ctypes' errcheck for every kernel: each returns 0, or -1 for a channel count it has no kernel for."""
    if result != 0:
        raise RuntimeError(f"vaekit's C kernel {function.__name__} returned {result}: no kernel for these channels")
    return result


def _build_and_load() -> ctypes.CDLL | None:
    if not switched_on(NATIVE) or sys.platform != "linux":
        return None
    path = _build()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError as error:
        _unavailable(f"could not be loaded ({error})")
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_long
    signatures = {"stride2_taps_to_output": [pointer, pointer, pointer, size, size, size, size, ctypes.c_int,
                                             ctypes.c_int],
                  "to_one_channel": [pointer] * 4 + [size] * 4 + [ctypes.c_int],
                  "to_one_channel_backward": [pointer] * 5 + [size] * 4 + [ctypes.c_int],
                  "from_one_channel": [pointer] * 4 + [size] * 4 + [ctypes.c_int],
                  "from_one_channel_backward": [pointer] * 4 + [size] * 4 + [ctypes.c_int]}
    try:
        for name, argtypes in signatures.items():
            function = getattr(lib, name)
            function.argtypes, function.restype, function.errcheck = argtypes, ctypes.c_int, _checked
    except AttributeError as error:  # a library without an entry point this file expects
        _unavailable(f"could not be loaded ({error})")
        return None
    return lib


def _address(t: torch.Tensor) -> int:
    """t's data for a C call: the caller keeps t referenced until the call returns (a temporary's memory
    would be freed as soon as this returns)."""
    return t.data_ptr()


_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch >= 2.3; compiled code keeps torch's


def _usable(*tensors: torch.Tensor) -> bool:
    return (not _compiling() and library() is not None
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors))


def stride2_fits(x: torch.Tensor, weight: torch.Tensor, stride, padding, output_padding) -> bool:
    """Whether conv_transpose_stride2 computes this transposed convolution: 3x3, stride 2, padding 1,
    output padding 1 (the conv decoder's upsampling), to 16, 32, 48 or 64 channels, in fp32 on a CPU."""
    return (tuple(weight.shape[2:]) == (3, 3) and tuple(stride) == (2, 2) and tuple(padding) == (1, 1)
            and tuple(output_padding) == (1, 1) and weight.shape[1] in CHANNELS and x.dim() == 4
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and _usable(x, weight))


def conv_transpose_stride2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool,
                           then: tuple[torch.Tensor, torch.Tensor] | None = None):
    """(relu of) conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1) for stride2_fits
    inputs, channels_last out: per chunk of images, the input's pixels times every tap's matrix in one oneDNN
    product, then native.c adds the taps into the output (with the bias and the ReLU).
    With then=(last_weight, last_bias), returns (out, to_one_channel(out, last_weight, last_bias)), each chunk's
    last layer computed while the chunk is still in cache."""
    batch, in_channels, height, width = x.shape
    out_channels = weight.shape[1]
    rows = x.permute(0, 2, 3, 1).reshape(-1, in_channels)  # a view when x is channels_last
    taps = weight.permute(0, 2, 3, 1).reshape(in_channels, 9 * out_channels).t()  # (ky, kx, out) x in
    out = torch.empty(batch, 2 * height, 2 * width, out_channels)  # (batch, H, W, C): channels_last
    pixels, threads = height * width, torch.get_num_threads()
    chunk = max(1, TAPS_BYTES // (pixels * taps.shape[0] * 4))
    bias = bias.contiguous()
    if then is not None:
        logits = torch.empty(batch, 1, 2 * height, 2 * width)
        last_taps, last_bias = _taps_first(then[0]), then[1].contiguous()
    for start in range(0, batch, chunk):
        images = min(chunk, batch - start)
        products = torch.ops.mkldnn._linear_pointwise(rows[start * pixels:(start + images) * pixels], taps, None,
                                                      "none", [], "")
        library().stride2_taps_to_output(_address(products), _address(bias), _address(out[start]), images, height,
                                         width, out_channels, int(relu), threads)
        if then is not None:
            library().to_one_channel(_address(out[start]), _address(last_taps), _address(last_bias),
                                     _address(logits[start]), images, 2 * height, 2 * width, out_channels, threads)
    out = out.permute(0, 3, 1, 2)
    return out if then is None else (out, logits)


def one_channel_fits(x: torch.Tensor, weight: torch.Tensor, stride, padding) -> bool:
    """Whether to_one_channel computes this transposed convolution of (a tensor like) x: 3x3, stride 1,
    padding 1, from 16, 32, 48 or 64 channels to one (a grayscale image's logits), in fp32 on a CPU."""
    return (tuple(weight.shape[1:]) == (1, 3, 3) and tuple(stride) == (1, 1) and tuple(padding) == (1, 1)
            and weight.shape[0] in CHANNELS and x.dim() == 4 and _usable(x, weight))


def _taps_first(weight: torch.Tensor) -> torch.Tensor:
    return weight[:, 0].permute(1, 2, 0).contiguous()  # (3, 3, C): each tap's channels together


def _thread_rows(channels: int) -> torch.Tensor:
    """Where a backward kernel's threads put their sums: a row each, the weight gradient (3, 3, C) then the
    bias gradient (C)."""
    return torch.zeros(torch.get_num_threads(), 10 * channels)


def _weight_and_bias(rows: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The threads' rows summed: the weight gradient as the layer's (C, 1, 3, 3), and the bias gradient."""
    sums = rows.sum(0)
    grad_weight = sums[:9 * channels].view(3, 3, channels).permute(2, 0, 1).unsqueeze(1)
    return grad_weight.contiguous(memory_format=torch.channels_last), sums[9 * channels:]


def to_one_channel(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d(y, weight, bias, padding=1) for one_channel_fits inputs: (batch, 1, H, W)."""
    y = y.contiguous(memory_format=torch.channels_last)
    batch, channels, height, width = y.shape
    out, taps, bias = torch.empty(batch, 1, height, width), _taps_first(weight), bias.contiguous()
    library().to_one_channel(_address(y), _address(taps), _address(bias), _address(out), batch, height, width,
                             channels, torch.get_num_threads())
    return out


def to_one_channel_backward_through_relu(y: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor
                                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For out = to_one_channel(y, weight, bias) with y = relu(u): the gradients of u (the ReLU's mask
    applied), of weight, and of u's bias (sum of u's gradient over batch and pixels), from out's `grad`."""
    y = y.contiguous(memory_format=torch.channels_last)
    batch, channels, height, width = y.shape
    padded = F.pad(grad.reshape(batch, height, width), (1, 1, 1, 1))
    grad_u = torch.empty(batch, channels, height, width, memory_format=torch.channels_last)
    rows, taps = _thread_rows(channels), _taps_first(weight)
    library().to_one_channel_backward(_address(y), _address(padded), _address(taps), _address(grad_u),
                                      _address(rows), batch, height, width, channels, len(rows))
    return grad_u, *_weight_and_bias(rows, channels)


def from_one_channel_fits(x: torch.Tensor, weight: torch.Tensor, stride, padding) -> bool:
    """Whether from_one_channel computes this convolution of x: 3x3, stride 2, padding 1, from one channel (a
    grayscale image) to 16, 32, 48 or 64, in fp32 on a CPU."""
    return (tuple(weight.shape[1:]) == (1, 3, 3) and tuple(stride) == (2, 2) and tuple(padding) == (1, 1)
            and weight.shape[0] in CHANNELS and x.dim() == 4 and x.shape[1] == 1 and _usable(x, weight))


def from_one_channel(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(conv2d(x, weight, bias, stride=2, padding=1)) for from_one_channel_fits inputs, channels_last."""
    x, bias, taps = x.contiguous(), bias.contiguous(), _taps_first(weight)
    batch, _, height, width = x.shape
    y = torch.empty(batch, weight.shape[0], (height + 1) // 2, (width + 1) // 2, memory_format=torch.channels_last)
    library().from_one_channel(_address(x), _address(taps), _address(bias), _address(y), batch, height, width,
                               weight.shape[0], torch.get_num_threads())
    return y


def from_one_channel_backward_through_relu(x: torch.Tensor, y: torch.Tensor, grad: torch.Tensor
                                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """For y = from_one_channel(x, weight, bias): the gradients of weight and bias from y's `grad`."""
    x, y, grad = (x.contiguous(), y.contiguous(memory_format=torch.channels_last),
                  grad.contiguous(memory_format=torch.channels_last))
    batch, _, height, width = x.shape
    rows = _thread_rows(y.shape[1])
    library().from_one_channel_backward(_address(x), _address(y), _address(grad), _address(rows), batch, height,
                                        width, y.shape[1], len(rows))
    return _weight_and_bias(rows, y.shape[1])
