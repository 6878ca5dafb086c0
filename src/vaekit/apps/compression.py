"""Compression with a trained VAE: lossless bits-back coding (BB-ANS) and lossy latent codes, a run plus
image files in, a .vae file out, and back (`vaekit compress`, `vaekit decompress`).

    from vaekit.apps.compression import compress, decompress
    compress("runs/mnist", "t10k-images-idx3-ubyte.gz", "test.vae")        # binary images, lossless
    compress("runs/mnist", images, "test-lossy.vae", lossy_bits=6)          # 6 bits per latent
    compress("runs/vq", images, "test-vq.vae")   # a VQ/FSQ run: its codes under its code prior (`vaekit train-prior`)
    decompress("runs/mnist", "test.vae", "restored.npy")

The parts (coders, lossy codes, file format) live in vaekit.compression. Needs the `compression` extra
(constriction).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..compression import codes as code_coder
from ..compression import container as fmt
from ..compression import lossy
from ..compression.bbans import BitsBackCoder, deterministic_torch
from ..compression.config import CoderConfig
from ..config import to_dict
from ..errors import CheckpointError, ConfigError, DataError, optional_import
from ..io import atomic_write
from ..limits import check_memory
from ..saved import check_output_file

__all__ = ["BitsBackCoder", "CoderConfig", "Compressed", "compress", "decompress", "read_images"]


@dataclass(frozen=True)
class Compressed:
    """What `compress` wrote: the file, the number of images, and its size."""

    path: Path
    n: int
    bytes: int
    values_per_image: int

    @property
    def bits_per_dim(self) -> float:
        """File size in bits per data value (header included)."""
        return 8 * self.bytes / (self.n * self.values_per_image)


def read_images(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (raw or .gz), .npy/.npz, or an image folder, as stored."""
    from ..data.readers import read_data

    return read_data(path)[0]


def _cpu_run(run):
    from .images import Run, load_run

    if not isinstance(run, Run):
        return load_run(run, device="cpu")
    if next(run.vae.parameters()).device.type != "cpu":
        run = dataclasses.replace(run, vae=copy.deepcopy(run.vae).cpu())
    return run


def _model_hash(run) -> bytes:
    return fmt.model_hash(run.vae, to_dict(run.model))


def _to_model_layout(x: np.ndarray, shape: tuple[int, ...], source) -> tuple[np.ndarray, bool]:
    """(n, *shape) view of x and whether channels-last images were transposed to channels-first."""
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{source} holds an array of shape {x.shape}: give a stack of images (n, ...)")
    if x.shape[1:] == shape:
        return x, False
    if x.ndim == 4 and len(shape) == 3 and x.shape[1:] == (shape[1], shape[2], shape[0]):
        return x.transpose(0, 3, 1, 2), True
    if math.prod(x.shape[1:]) == math.prod(shape):
        return x.reshape(len(x), *shape), False
    raise DataError(f"{source} holds examples of shape {x.shape[1:]} but the model codes {shape}: "
                    "pass data shaped like the run's training data")


def _from_model_layout(x: np.ndarray, shape: tuple[int, ...], transposed: bool) -> np.ndarray:
    return x.transpose(0, 2, 3, 1) if transposed else x.reshape(shape)


def _symbols(x: np.ndarray, levels: int, source) -> tuple[np.ndarray, float]:
    """uint8 symbols 0..levels-1 of x and `top`, the value of the highest symbol: binary images hold
    0 and 1 (or 0 and 255 in uint8), 8-bit images 0..255 in uint8 or the floats k/255."""
    if levels == 2:
        values = np.unique(x)
        top = 255 if x.dtype == np.uint8 and values.max(initial=0) == 255 else 1
        odd = values[(values != 0) & (values != top)]
        if odd.size:
            raise DataError(f"{source} holds values other than 0 and {top} (e.g. {odd[0]}): lossless coding with a "
                            "Bernoulli model needs binary images; binarize them first or use --lossy-bits")
        return (x == top).astype(np.uint8), float(top)
    top = 255 if np.issubdtype(x.dtype, np.integer) else 1
    symbols = np.clip(np.rint(x.astype(np.float64) * ((levels - 1) / top)), 0, levels - 1).astype(np.uint8)
    if not np.array_equal(_values(symbols, levels, top, x.dtype), x):
        raise DataError(f"{source} holds values that are not 8-bit levels (uint8 0..255, or floats k/255 in [0, 1]): "
                        "lossless coding with a discretized logistic model needs 8-bit images; or use --lossy-bits")
    return symbols, float(top)


def _values(symbols: np.ndarray, levels: int, top: float, dtype: np.dtype) -> np.ndarray:
    """The inverse of `_symbols`: the array of dtype whose symbols these are."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return (symbols.astype(dtype) * dtype.type(int(top) // (levels - 1))).astype(dtype)
    return (symbols.astype(dtype) * dtype.type(top) / dtype.type(levels - 1)).astype(dtype)


def _code_prior(run):
    """The learned prior over a quantized run's codes, None for a run with a Gaussian latent; a ConfigError when
    the run has none trained."""
    from ..bottlenecks import Quantizer
    from ..code_priors import LearnedCodes

    if not isinstance(run.vae.posterior, Quantizer):
        return None
    if not isinstance(run.vae.prior, LearnedCodes):
        raise ConfigError(f"{run.path or 'this run'} has no trained code prior to code its {run.model.bottleneck} codes "
                          f"under: run `vaekit train-prior {run.path or 'RUN'}` first")
    return run.vae.prior


def _prior_hash(prior) -> str:
    return fmt.model_hash(prior.network).hex()


def _unit_range(x: np.ndarray, source) -> tuple[np.ndarray, float]:
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = x.astype(np.float32) / np.float32(scale)
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError(f"{source} holds values outside [0, 1]: pass uint8 images or floats scaled to [0, 1]")
    return x, scale


def _in_input_range(mean: torch.Tensor, scale: float) -> np.ndarray:
    """A reconstruction E[x|z] in [0, 1] as the input was given: uint8 0..255 for scale 255, else float32."""
    mean = mean.numpy()
    return np.round(mean * 255).astype(np.uint8) if scale == 255 else mean.astype(np.float32)


def compress(run, data, out: str | Path, lossy_bits: int | None = None,
             coder: CoderConfig = CoderConfig(), entropy_code: bool = False, progress: bool = True) -> Compressed:
    """Compress images with a trained run (`vaekit compress`).

    data: a path (IDX, .npy/.npz, image folder) or an array (n, ...) shaped like the training data.
    lossy_bits=None: lossless bits-back coding, exact round trip: binary images with a Bernoulli
    likelihood, 8-bit images (uint8, or floats k/255) with a discretized logistic one.
    lossy_bits=B: B bits per informative latent dimension per image (see `lossy`); with
    entropy_code=True the indices are ANS-coded with a Gaussian model of the latent means instead.
    A VQ or FSQ run (needs its code prior, `vaekit train-prior`): the images' codes ANS-coded under that prior,
    -log2 p(codes) bits per image (see `compression.codes`); decompress gives their reconstruction.
    progress: a bar with an ETA over the images of lossless coding (on a terminal).
    """
    optional_import("constriction", "compression", "constriction")
    if entropy_code and lossy_bits is None:
        raise ConfigError("--entropy-code codes lossy latent indices: add --lossy-bits B")
    if lossy_bits is not None and not 1 <= lossy_bits <= 16:
        raise ConfigError(f"--lossy-bits must be in 1..16, got {lossy_bits}")
    coder.validate()
    out = check_output_file(out)
    run = _cpu_run(run)
    prior = _code_prior(run)
    if prior is not None and (lossy_bits is not None or entropy_code):
        raise ConfigError(f"a {run.model.bottleneck} run's codes are already discrete and coded under its code prior: "
                          "drop --lossy-bits and --entropy-code")
    source = data if isinstance(data, (str, Path)) else "the array"
    raw = read_images(data) if isinstance(data, (str, Path)) else np.asarray(data)
    shape = tuple(run.model.data_shape)
    x, transposed = _to_model_layout(raw, shape, source)
    meta = {"n": len(x), "shape": list(raw.shape), "dtype": raw.dtype.str, "transposed": transposed}
    if prior is not None:
        values, scale = _unit_range(x, source)
        with deterministic_torch():
            codes = run.vae.encode(torch.from_numpy(np.ascontiguousarray(values))).codes.numpy()  # (n, n_codes)
        payload = code_coder.encode_codes(prior, codes).astype("<u4").tobytes()
        meta.update(scale=scale, code_prior=_prior_hash(prior), codes_sha256=fmt.array_hash(codes).hex())
        kind = fmt.CODES
    elif lossy_bits is None:
        bbans = BitsBackCoder(run.vae, coder)
        symbols, top = _symbols(x, bbans.levels, source)
        payload = bbans.encode(symbols, progress).astype("<u4").tobytes()
        meta.update(levels=bbans.levels, top=top, coder=dataclasses.asdict(coder))
        kind = fmt.LOSSLESS
    else:
        values, scale = _unit_range(x, source)
        with deterministic_torch():
            xt = torch.from_numpy(np.ascontiguousarray(values))
            mask = lossy.informative_dims(run.vae, xt)
            indices = lossy.quantize(run.vae, xt, mask, lossy_bits)
            model = lossy.index_model(run.vae, xt, mask) if entropy_code else None
        if model is None:
            payload = lossy.pack_indices(indices, lossy_bits)
        else:
            # the model's float32 numbers lead the payload (8 bytes per dimension), then the ANS words
            words = lossy.entropy_encode(indices, lossy.index_probabilities(model, lossy_bits))
            payload = model.astype("<f4").tobytes() + words
            meta.update(entropy_coded=True)
        meta.update(scale=scale, bits=lossy_bits, mask=mask.astype(int).tolist())
        kind = fmt.LOSSY
    blob = fmt.pack(fmt.Container(kind, _model_hash(run), fmt.array_hash(raw), meta, payload))
    atomic_write(out, blob)
    return Compressed(out, len(x), len(blob), math.prod(shape))


def decompress(run, path: str | Path, out: str | Path, progress: bool = True) -> Path:
    """Decode a .vae file with the run that wrote it into an .npy array (`vaekit decompress`).

    Lossless files give back the original array (dtype, shape and values), checked against the
    hash in the header; lossy files and a VQ or FSQ run's give E[x|z] (the decoder's mean at the decoded latent) as
    float32 in [0, 1], or uint8 0..255 (the mean rounded) for uint8 input.
    progress: a bar with an ETA over the images of lossless decoding (on a terminal).
    """
    optional_import("constriction", "compression", "constriction")
    out = check_output_file(out)
    out = out if out.suffix == ".npy" else check_output_file(out.with_name(out.name + ".npy"))
    run = _cpu_run(run)
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or err}): pass a file written by 'vaekit compress'") from None
    box = fmt.unpack(blob, path)
    fmt.check_model(box, _model_hash(run), path)
    meta, shape = box.meta, tuple(run.model.data_shape)
    coder = _check_header(box, run, path)
    n, original, dtype = meta["n"], tuple(meta["shape"]), np.dtype(meta["dtype"])
    if box.kind == fmt.LOSSLESS:
        words = np.frombuffer(box.payload, "<u4").astype(np.uint32)
        bbans = BitsBackCoder(run.vae, coder)
        try:
            symbols, clean = bbans.decode(words, n, shape, progress)
        except (ValueError, RuntimeError):  # constriction refuses an invalid stack
            clean = False
        if not clean:
            raise DataError(f"{path} did not decode cleanly: decompress on the kind of machine and torch build "
                            "that compressed it (BB-ANS needs bit-identical model outputs)")
        x = _values(symbols, meta.get("levels", 2), meta.get("top", meta.get("one")), dtype)  # older files: "one"
        x = _from_model_layout(x, original, meta["transposed"])
        if fmt.array_hash(x) != box.data_hash:
            raise DataError(f"{path} decoded to data that does not match its hash: decompress on the kind of "
                            "machine and torch build that compressed it")
    elif box.kind == fmt.LOSSY:
        mask = np.array(meta["mask"], dtype=bool)
        if meta.get("entropy_coded"):
            size = 8 * int(mask.sum())
            model = np.frombuffer(box.payload[:size], "<f4").reshape(2, -1).astype(np.float32)
            indices = lossy.entropy_decode(box.payload[size:], n, lossy.index_probabilities(model, meta["bits"]))
        else:
            indices = lossy.unpack_indices(box.payload, (n, int(mask.sum())), meta["bits"])
        with deterministic_torch():
            mean = lossy.dequantize(run.vae, indices, mask, meta["bits"])
        x = _from_model_layout(_in_input_range(mean, meta["scale"]), original, meta["transposed"])
    elif box.kind == fmt.CODES:
        codes, clean = code_coder.decode_codes(_code_prior(run), np.frombuffer(box.payload, "<u4"), n)
        if not clean or fmt.array_hash(codes).hex() != meta["codes_sha256"]:
            raise DataError(f"{path} did not decode to the codes it holds: decompress on the kind of machine and torch "
                            "build that compressed it (ANS needs bit-identical code prior outputs)")
        with deterministic_torch():
            mean = run.vae.decode_mean(run.vae.posterior.lookup(torch.from_numpy(codes)))
        x = _from_model_layout(_in_input_range(mean, meta["scale"]), original, meta["transposed"])
    buffer = io.BytesIO()
    np.save(buffer, x)
    atomic_write(out, buffer.getvalue())
    return out


def _check_header(box: fmt.Container, run, source) -> CoderConfig | None:
    """Every field of a .vae header checked against the run that decodes it and the memory this machine has,
    before anything is allocated (a checksum only proves the file is as written, not that it is sane). Returns
    the lossless coder's config (None for a lossy file); a field that does not fit is a DataError naming it."""
    # Long: one check per header field, in the header's order, so a field without its check stands out.
    meta, shape = box.meta, tuple(run.model.data_shape)

    def wrong(field: str, why: str) -> DataError:
        return DataError(f"{source} has a header that does not fit this run ({field} = {meta.get(field)!r}: {why}): "
                         "pass an intact file written by 'vaekit compress' with this run")

    if box.kind not in (fmt.LOSSLESS, fmt.LOSSY, fmt.CODES):
        raise DataError(f"{source} holds an unknown kind of code ({box.kind}): decompress it with a newer vaekit")
    n = meta.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise wrong("n", "a positive number of images")
    original = meta.get("shape")
    if not (isinstance(original, list) and original and all(isinstance(d, int) and d > 0 for d in original)
            and original[0] == n and math.prod(original[1:]) == math.prod(shape)):
        raise wrong("shape", f"n images of the run's {math.prod(shape)} values each")
    try:
        dtype = np.dtype(meta.get("dtype"))
    except TypeError:
        raise wrong("dtype", "a numeric dtype") from None
    if dtype.kind not in "biuf":
        raise wrong("dtype", "a numeric dtype")
    transposed = meta.get("transposed")
    if not isinstance(transposed, bool) or (transposed and (len(shape) != 3 or tuple(original[1:]) !=
                                                             (shape[1], shape[2], shape[0]))):
        raise wrong("transposed", "true only for channels-last images of the run's shape")
    values = n * math.prod(shape)
    if box.kind == fmt.LOSSLESS:
        if not isinstance(meta.get("coder"), dict):
            raise wrong("coder", "the coder's settings")
        try:
            coder = CoderConfig(**meta["coder"])
            coder.validate()
        except (TypeError, ConfigError) as err:
            raise wrong("coder", str(err)) from None
        levels = BitsBackCoder(run.vae, coder).levels
        if meta.get("levels", 2) != levels:
            raise wrong("levels", f"{levels} for this run's likelihood")
        top = meta.get("top", meta.get("one"))
        if not isinstance(top, (int, float)) or isinstance(top, bool) or not 1 <= top <= 255:
            raise wrong("top", "the value of the highest level, 1 or 255")
        check_memory(values * (2 + dtype.itemsize), f"{source}'s {n} images", "decompress it on a larger machine")
        return coder
    if meta.get("scale") not in (1, 1.0, 255, 255.0):
        raise wrong("scale", "1 or 255")
    if box.kind == fmt.CODES:
        prior = _code_prior(run)
        if prior is None:
            raise wrong("kind", "codes of a VQ or FSQ run; this run has a Gaussian latent")
        if meta.get("code_prior") != _prior_hash(prior):
            raise CheckpointError(f"{source} was compressed under another code prior (hash {str(meta.get('code_prior'))[:12]}"
                                  f" != {_prior_hash(prior)[:12]}): pass the run with the code prior it was compressed "
                                  "under (`vaekit train-prior` replaces it)")
        if not isinstance(meta.get("codes_sha256"), str):
            raise wrong("codes_sha256", "the hex sha256 of the codes")
        check_memory(values * (8 + dtype.itemsize) + n * prior.n_codes * 8, f"{source}'s {n} images",
                     "decompress it on a larger machine")
        return None
    bits, mask = meta.get("bits"), meta.get("mask")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise wrong("bits", "1..16 bits per latent")
    if not (isinstance(mask, list) and len(mask) == run.vae.latent_dim and all(m in (0, 1) for m in mask)):
        raise wrong("mask", f"{run.vae.latent_dim} flags, one per latent dimension")
    dims = sum(mask)
    entropy_coded = meta.get("entropy_coded", False)
    if not isinstance(entropy_coded, bool):
        raise wrong("entropy_coded", "true or false")
    needed = 8 * dims if entropy_coded else math.ceil(n * dims * bits / 8)
    if len(box.payload) < needed:
        raise wrong("n", f"{n} images need {needed} bytes of codes, the file holds {len(box.payload)}")
    check_memory(values * (8 + dtype.itemsize) + n * dims * 8 * (bits + 1), f"{source}'s {n} images",
                 "decompress it on a larger machine")
    return None
