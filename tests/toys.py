"""Small synthetic data shared by the tests (images a VAE can actually learn, IDX files) and the
reference densities they compare with."""
import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch

from vaelab.data.images import ImageData
from vaelab.data import common


def smooth_images(n: int, binarize: str = "none", seed: int = 0) -> ImageData:
    """n 6x6 grey images that are a smooth function (sigmoid of a fixed linear map) of two latent numbers."""
    g = torch.Generator().manual_seed(seed)
    a, w = torch.randn(n, 2, generator=g), 2 * torch.randn(2, 36, generator=torch.Generator().manual_seed(99))
    images = torch.sigmoid(a @ w).view(n, 1, 6, 6)
    return ImageData((images * 255).round().to(torch.uint8), binarize=binarize, seed=seed)


def write_idx(path, array, compress=None) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress`` or the name ends in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in common._IDX_CODES:
        raise TypeError(f"IDX cannot store dtype {array.dtype}: use one of uint8, int8, int16, int32, float32, float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got an array of shape {array.shape}")
    code = common._IDX_CODES[native]
    data = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += np.ascontiguousarray(array, dtype=common._IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def log_normal_full(x: torch.Tensor, mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(x | mean, L L^T) for a lower-triangular ``scale_tril`` L of shape (..., d, d)."""
    d = x.shape[-1]
    diff = (x - mean).unsqueeze(-1)
    sol = torch.linalg.solve_triangular(scale_tril.expand(diff.shape[:-2] + (d, d)), diff, upper=False).squeeze(-1)
    half_logdet = torch.log(torch.diagonal(scale_tril, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (d * math.log(2 * math.pi) + (sol**2).sum(-1)) - half_logdet
