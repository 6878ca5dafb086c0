"""Lossy codes: quantized latent means, decoded with E[x|z].

Each informative latent dimension's posterior mean mu is mapped through the prior's CDF,
u = Phi((mu - loc) / scale) in (0, 1), and u is quantized to `bits` bits: the 2**bits buckets hold
equal prior mass, so if the aggregate posterior matches the prior every index is equally likely and
a fixed-length code is already (near) entropy-optimal. Dimensions whose mean KL over the coded
images is below `min_kl` nats carry no information and are not stored (they decode to the prior
mean). Cost per image: bits * (informative dims); the mask and header are paid once per file.

Entropy-coded option: the latent means do not fill the prior (their spread is the prior's minus the
posterior variance), so the middle buckets are the likely ones. `index_model` fits a Gaussian to the
standardized means of each dimension (two float32 numbers per dimension, stored in the header);
`index_probabilities` integrates it over each bucket, and constriction's ANS coder codes each
dimension's indices with that categorical: the cost per image approaches the indices' entropy.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..posteriors import as_diagonal_normal


def gaussian_prior(vae) -> torch.distributions.Normal:
    """The VAE's prior as per-dimension Normals, event shape (); the codes quantize its CDF."""
    normal = as_diagonal_normal(vae.prior())
    if normal is None:
        raise ConfigError(f"vaekit's codes need a diagonal Gaussian prior (standard_normal); this VAE's is "
                          f"{type(vae.prior).__name__}")
    return normal


def informative_dims(vae, x: torch.Tensor, min_kl: float = 0.01) -> np.ndarray:
    """Boolean (latent_dim,) mask of dimensions whose mean KL(q || p) over x exceeds min_kl nats."""
    qz = as_diagonal_normal(vae.encode(x))
    if qz is None:
        raise ConfigError("vaekit's lossy code needs a diagonal Gaussian posterior")
    kl = torch.distributions.kl_divergence(qz, gaussian_prior(vae)).mean(0)  # (latent,)
    return (kl > min_kl).cpu().numpy()


def quantize(vae, x: torch.Tensor, mask: np.ndarray, bits: int) -> np.ndarray:
    """Indices (n, mask.sum()) int64 in [0, 2**bits) of the latent means of x (n, *data_shape)."""
    if not 1 <= bits <= 16:
        raise ConfigError(f"--lossy-bits must be in 1..16, got {bits}")
    pz = gaussian_prior(vae)
    u = torch.special.ndtr(((vae.encode(x).mean - pz.loc) / pz.scale).double())[:, torch.from_numpy(mask)]
    return torch.clamp((u * 2 ** bits).floor(), 0, 2 ** bits - 1).long().cpu().numpy()


def dequantize(vae, indices: np.ndarray, mask: np.ndarray, bits: int) -> torch.Tensor:
    """E[x|z] (n, *data_shape) at z = bucket centres (prior quantiles); masked-out dims at the prior mean."""
    pz = gaussian_prior(vae)
    u = (torch.from_numpy(indices).double() + 0.5) / 2 ** bits
    z = pz.loc.double().expand(len(indices), -1).clone()  # (n, latent)
    keep = torch.from_numpy(mask)
    z[:, keep] = pz.loc.double()[keep] + pz.scale.double()[keep] * torch.special.ndtri(u)
    return vae.decode_mean(z.float())


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """Fixed-length code: each index as `bits` bits, least significant first."""
    planes = (indices[..., None] >> np.arange(bits)) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1)).tobytes()


def unpack_indices(payload: bytes, shape: tuple[int, int], bits: int) -> np.ndarray:
    count = shape[0] * shape[1] * bits
    flat = np.unpackbits(np.frombuffer(payload, np.uint8), count=count).astype(np.int64)
    return (flat.reshape(*shape, bits) << np.arange(bits)).sum(-1)


def index_model(vae, x: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    """(2, mask.sum()) float32: mean and standard deviation over x of the standardized latent means
    t = (mu - loc) / scale of the informative dimensions (a Gaussian model of the indices)."""
    pz = gaussian_prior(vae)
    t = ((vae.encode(x).mean - pz.loc) / pz.scale)[:, torch.from_numpy(mask)].double()  # (n, dims)
    return np.stack([t.mean(0).numpy(), t.std(0, correction=0).clamp(min=1e-3).numpy()]).astype(np.float32)


def index_probabilities(model: np.ndarray, bits: int) -> np.ndarray:
    """(dims, 2**bits) float64: the mass N(mean, std) of `index_model` gives each bucket, i.e. each
    t-interval [Phi^-1(j / 2**bits), Phi^-1((j + 1) / 2**bits)]."""
    from scipy.special import ndtr, ndtri

    edges = ndtri(np.arange(2 ** bits + 1) / 2 ** bits)  # (2**bits + 1,) from -inf to inf
    mean, std = (model.astype(np.float64)[i][:, None] for i in range(2))
    return np.diff(ndtr((edges - mean) / std), axis=-1)


def entropy_encode(indices: np.ndarray, probabilities: np.ndarray) -> bytes:
    """ANS code of indices (n, dims), column d with the categorical probabilities[d]."""
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    for d in reversed(range(indices.shape[1])):  # last in, first out: column 0 ends on top
        family = constriction.stream.model.Categorical(probabilities[d], perfect=False)
        coder.encode_reverse(indices[:, d].astype(np.int32), family)
    return coder.get_compressed().astype("<u4").tobytes()


def entropy_decode(payload: bytes, n: int, probabilities: np.ndarray) -> np.ndarray:
    """Indices (n, dims) int64 back from `entropy_encode`'s bytes."""
    import constriction

    coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))
    out = np.empty((n, len(probabilities)), np.int64)
    for d in range(len(probabilities)):
        out[:, d] = coder.decode(constriction.stream.model.Categorical(probabilities[d], perfect=False), n)
    return out


def psnr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image for values in [0, 1]; x, y (n, ...)."""
    mse = ((x.astype(np.float64) - y) ** 2).reshape(len(x), -1).mean(1)
    return 10 * np.log10(1 / np.maximum(mse, 1e-12))


def ssim(x: np.ndarray, y: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Mean structural similarity per image (Wang et al. 2004: Gaussian window sigma 1.5,
    K1 = 0.01, K2 = 0.03, data range 1) for grayscale images x, y (n, H, W) in [0, 1]."""
    from scipy.ndimage import gaussian_filter

    def blur(a):
        return gaussian_filter(a, sigma=(0, sigma, sigma), truncate=3.5, mode="reflect")

    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = (2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return index.reshape(len(x), -1).mean(1)
