"""Frechet Inception Distance (FID; Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
Rule Converge to a Local Nash Equilibrium", NeurIPS).

FID compares two sets of images through the pool3 features (2048 numbers per image) of the
2015-12-05 TensorFlow Inception network: each set is summarised by the mean ``mu`` and the
covariance ``Sigma`` of its features, and

    FID = ||mu_1 - mu_2||^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2}),

the squared 2-Wasserstein (Frechet) distance between the two Gaussians N(mu_1, Sigma_1) and
N(mu_2, Sigma_2). Lower is better; a set against itself scores 0.

The network is pytorch-fid's "FID Inception" (``pytorch_fid.inception``: torchvision's
Inception v3 with the TensorFlow pooling quirks patched in), built here without pytorch-fid's
internet download: its weights come from ``<data root>/fid/pt_inception-2015-12-05-6726825d.pth``,
which ``python -m vaelab.evaluation.fid_weights`` prepares (from pytorch-fid's own download where
there is internet, or, offline, converted from an equivalent TorchScript network; see that
script for the caveat on converted weights).

Used by the CelebA chapter (FID vs the KL weight lambda, HEBAE Fig. 1b).

Things that move FID numbers and that this module fixes the way pytorch-fid does: images in
[0, 1] are resized to 299x299 bilinearly (``align_corners=False``, no antialiasing) and scaled to
[-1, 1]; grey images are repeated to three channels. pytorch-fid reads images from PNG/JPEG
files, i.e. quantised to 8 bits: quantise generated images first (``(x * 255).round() / 255``)
when numbers are meant to be compared with papers. FID is biased upwards for small sets (it
needs far more than 2048 images for a full-rank covariance; papers use 10,000 to 50,000).
"""
from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from vaelab.core.config import data_root, get_device

from vaelab.core.validate import positive_int

__all__ = [
    "WEIGHTS_FILENAME",
    "FEATURE_DIM",
    "weights_path",
    "fid_inception_v3_structure",
    "check_state_dict",
    "load_fid_weights",
    "fid_inception",
    "inception_v3_pool3",
    "pytorch_fid_inception",
    "inception_features",
    "activation_statistics",
    "frechet_distance",
    "fid_from_features",
]

#: pytorch-fid's file name; by torch hub's naming convention its hex digits start the sha256 of the published file
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
#: the dimension of the pool3 features
FEATURE_DIM = 2048
PREPARE_COMMAND = "python -m vaelab.evaluation.fid_weights"


def pytorch_fid_inception():
    """``pytorch_fid.inception``, imported after torchvision's CPU-torch fix (``vaelab.core.compat``)."""
    from vaelab.core.compat import import_torchvision

    import_torchvision()
    try:
        import pytorch_fid.inception as inception
    except ImportError as err:
        raise ImportError(f"FID needs pytorch-fid: pip install pytorch-fid ({err})") from None
    return inception


def weights_path(root: str | os.PathLike | None = None) -> Path:
    """Where the FID Inception weights live: ``<data root>/fid/pt_inception-2015-12-05-6726825d.pth``."""
    return data_root(root) / "fid" / WEIGHTS_FILENAME


def fid_inception_v3_structure(*, meta: bool = False) -> nn.Module:
    """pytorch-fid's FID Inception v3 (``pytorch_fid.inception.fid_inception_v3``) without its weights.

    The same construction as pytorch-fid's function: torchvision's Inception v3 with 1008 classes
    and no auxiliary head, whose Mixed_5b-d, Mixed_6b-e, Mixed_7b and Mixed_7c blocks are replaced
    by pytorch-fid's patched blocks (TensorFlow's average pooling that ignores the zero padding,
    and the max pooling of the last block); only the download of the state dict is left out.

    ``meta=True`` gives the structure on PyTorch's "meta" device (shapes only, no memory).
    Otherwise every floating-point parameter and buffer is NaN (and the BatchNorm counters 0)
    until a state dict is loaded, so that a network used without its weights cannot go unnoticed;
    building it this way also skips the random initialisation (seconds on a small CPU).
    """
    inception = pytorch_fid_inception()
    with torch.device("meta"):
        net = inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        net.Mixed_5b = inception.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = inception.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = inception.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = inception.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = inception.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = inception.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = inception.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = inception.FIDInceptionE_1(1280)
        net.Mixed_7c = inception.FIDInceptionE_2(2048)
    if meta:
        return net
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            tensor.fill_(float("nan") if tensor.is_floating_point() else 0)
    return net


_EXPECTED_SHAPES: dict[str, tuple[int, ...]] | None = None


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    global _EXPECTED_SHAPES
    if _EXPECTED_SHAPES is None:
        net = fid_inception_v3_structure(meta=True)
        _EXPECTED_SHAPES = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    return _EXPECTED_SHAPES


def check_state_dict(state_dict, what: str = "state dict") -> None:
    """Raise ``ValueError`` unless ``state_dict`` fits :func:`fid_inception_v3_structure` exactly.

    Every key of the architecture must be present with its shape (the BatchNorm counters
    ``num_batches_tracked`` may be absent, as in files saved by old PyTorch versions), no other key
    may be present, and every floating-point tensor must be finite.
    """
    if not isinstance(state_dict, dict):
        raise ValueError(f"{what} is a {type(state_dict).__name__}, not a state dict (a mapping name -> tensor)")
    expected = _expected_shapes()
    problems = []
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    for key, shape in expected.items():
        value = state_dict.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != shape:
            problems.append(f"{key} has shape {tuple(value.shape)}, expected {shape}")
        elif value.is_floating_point() and not torch.isfinite(value.sum(dtype=torch.float64)):
            # one cheap reduction per tensor: NaN or Inf anywhere makes the sum non-finite
            problems.append(f"{key} holds NaN or Inf")
        if len(problems) > 8:
            break
    if problems:
        raise ValueError(f"{what} does not match pytorch-fid's FID Inception v3: " + "; ".join(problems))


def load_fid_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load and check a FID Inception state dict (``torch.load(..., weights_only=True)``).

    Raises ``FileNotFoundError`` when the file is missing and ``RuntimeError`` when it cannot be
    read or does not fit the architecture; both name the command that (re-)creates it.
    """
    path = Path(path)
    fix = (
        f"run `{PREPARE_COMMAND} --root {path.parent.parent}` (it replaces an invalid file), "
        "or call vaelab.evaluation.fid_weights.prepare(root)"
    )
    if not path.is_file():
        raise FileNotFoundError(f"the FID Inception weights {str(path)!r} do not exist: {fix}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle errors, wrong format
        raise RuntimeError(
            f"the FID Inception weights {str(path)!r} cannot be read ({type(err).__name__}: {err}); {fix}"
        ) from None
    try:
        check_state_dict(state_dict, what=str(path))
    except ValueError as err:
        raise RuntimeError(f"{err}; {fix}") from None
    return state_dict


def inception_v3_pool3(state_dict) -> nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` (pool3, resize to 299, [0,1] -> [-1,1]) with ``state_dict``."""
    inception = pytorch_fid_inception()
    net = fid_inception_v3_structure()
    net.load_state_dict(state_dict, strict=True)
    # InceptionV3(use_fid_inception=True) calls the module-level fid_inception_v3(), which would
    # download the weights; hand it the network loaded above instead, so that the block assembly
    # and forward pass stay pytorch-fid's own code.
    with mock.patch.object(inception, "fid_inception_v3", lambda: net):
        model = inception.InceptionV3(
            [inception.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]],
            resize_input=True,
            normalize_input=True,
            requires_grad=False,
            use_fid_inception=True,
        )
    return model.eval()


def fid_inception(root: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """The FID feature extractor: pytorch-fid's ``InceptionV3([3], use_fid_inception=True)``.

    Its weights are read from :func:`weights_path` (``root``: the data root, see
    ``vaelab.core.config.data_root``), which ``vaelab.evaluation.fid_weights.prepare`` places there
    (download or offline conversion); a missing or invalid file raises an error naming it. The module is in eval mode without
    gradients; ``model(x)`` takes images in [0, 1] of shape (N, 3, H, W) and returns a one-element
    list holding the (N, 2048, 1, 1) pool3 features.
    """
    device = get_device(device)
    state_dict = load_fid_weights(weights_path(root))
    return inception_v3_pool3(state_dict).to(device)


_MODEL_CACHE: dict[tuple, nn.Module] = {}


def _cached_model(root, device: torch.device) -> nn.Module:
    path = weights_path(root)
    stat = path.stat() if path.is_file() else None
    key = (str(path.resolve()), stat.st_mtime_ns if stat else None, stat.st_size if stat else None, str(device))
    if key not in _MODEL_CACHE:
        model = fid_inception(root, device)
        _MODEL_CACHE.clear()  # keep one network (about 100 MB) alive, not one per call site
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def _check_images(images) -> torch.Tensor:
    """Validate ``images`` (see :func:`inception_features`) and return them as a tensor."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor or numpy array of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (N, C, H, W) with C = 1 or 3, got shape {tuple(images.shape)}"
            + (": add the batch dimension with images[None]" if images.ndim == 3 else "")
        )
    n, c, h, w = images.shape
    if c not in (1, 3):
        raise ValueError(f"images must have 1 (grey) or 3 (RGB) channels in dimension 1, got shape {tuple(images.shape)}")
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"images is empty: shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point in [0, 1] or uint8 in [0, 255], got dtype {images.dtype}")
    if torch.isnan(images).any():
        raise ValueError("images contain NaN")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"images must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]: images in [-1, 1] need (x + 1) / 2, "
            "uint8-range floats need x / 255, and overshooting decoder outputs need x.clamp(0, 1)"
        )
    return images


def inception_features(
    images,
    batch_size: int = 50,
    device: str | torch.device = "auto",
    root: str | os.PathLike | None = None,
    *,
    model: nn.Module | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pool3 features (N, 2048) of the FID Inception network (Heusel et al. 2017) as float32.

    images: (N, 3, H, W) or (N, 1, H, W) (grey, repeated to 3 channels), a float tensor or array
    with values in [0, 1] or uint8 in [0, 255]; any H, W (resized to 299x299 as pytorch-fid does).
    batch_size: images per forward pass (moved to ``device`` one batch at a time).
    device: "auto" (cuda, mps, cpu), "cuda", "cpu", ...; root: the data root of the weights file.
    model: a network from :func:`fid_inception` to use (then ``device`` and ``root`` are ignored and
    the batches go to the model's device); by default one is built once per weights file and
    device and kept for later calls.
    """
    images = _check_images(images)
    positive_int("batch_size", batch_size)
    if model is None:
        device = get_device(device)
        model = _cached_model(root, device)
    else:
        device = next(model.parameters()).device
    n = images.shape[0]
    out = np.empty((n, FEATURE_DIM), dtype=np.float32)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Inception features", unit="batch")
    with torch.inference_mode():
        for start in starts:
            batch = images[start : start + batch_size].to(device)
            batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            features = model(batch)[0]
            if features.ndim != 4 or features.shape[1:] != (FEATURE_DIM, 1, 1):
                raise RuntimeError(
                    f"the model returned features of shape {tuple(features.shape)}, expected (B, 2048, 1, 1)"
                )
            out[start : start + batch.shape[0]] = features.flatten(1).cpu().numpy()
    return out


def _as_float64(name: str, value, ndim: int) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim != ndim:
        expected = "(d,)" if ndim == 1 else "(d, d)" if name.startswith("sigma") else "(N, d)"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return array


def _check_psd(eigvals: np.ndarray, name: str) -> None:
    scale = max(float(np.abs(eigvals).max()), 1e-300)
    if eigvals.min() < -1e-6 * scale:
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {eigvals.min():.3g}, largest {eigvals.max():.3g}): "
            "pass a covariance matrix, e.g. np.cov(features, rowvar=False)"
        )


def _psd_sqrt(sigma: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a covariance; raises if it is clearly not positive semi-definite."""
    eigvals, eigvecs = np.linalg.eigh(sigma)
    _check_psd(eigvals, name)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, the FID formula).

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^{1/2})``, in float64.
    mu: (d,), sigma: (d, d) symmetric positive semi-definite (singular is fine, e.g. fewer samples
    than dimensions). ``tr((sigma1 sigma2)^{1/2})`` is computed as the sum of the square roots of
    the eigenvalues of the symmetric matrix ``sigma1^{1/2} sigma2 sigma1^{1/2}`` (the same
    eigenvalues as ``sigma1 sigma2``), which needs no complex arithmetic and no diagonal offset.
    pytorch-fid's ``calculate_frechet_distance`` agrees with it (tests) but is not called: it uses
    ``scipy.linalg.sqrtm(..., disp=False)``, deprecated in SciPy 1.16 and removed in 1.18, prints
    instead of warning, and is several times slower for d = 2048.
    """
    mu1, mu2 = _as_float64("mu1", mu1, 1), _as_float64("mu2", mu2, 1)
    sigma1, sigma2 = _as_float64("sigma1", sigma1, 2), _as_float64("sigma2", sigma2, 2)
    d = mu1.shape[0]
    if mu2.shape != (d,):
        raise ValueError(f"mu1 and mu2 must have the same length, got {mu1.shape} and {mu2.shape}")
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}) to match mu1 of shape ({d},), got {sigma.shape}")
        asym = float(np.abs(sigma - sigma.T).max())
        if asym > 1e-6 * max(float(np.abs(sigma).max()), 1e-300):
            raise ValueError(f"{name} is not symmetric (max |sigma - sigma.T| = {asym:.3g}): pass a covariance matrix")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    root1 = _psd_sqrt(sigma1, "sigma1")
    _check_psd(np.linalg.eigvalsh(sigma2), "sigma2")
    middle = root1 @ sigma2 @ root1
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def activation_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of features (N, d), float64; the covariance divides by N - 1
    (``np.cov``), as pytorch-fid does."""
    features = _as_float64("features", features, 2)
    if features.shape[0] < 2:
        raise ValueError(f"features must hold at least 2 rows (samples) for a covariance, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_features(features1, features2) -> float:
    """FID (Heusel et al. 2017) between two sets of features (N1, d) and (N2, d), e.g. from
    :func:`inception_features`: :func:`frechet_distance` of their means and covariances
    (``np.cov``, divided by N - 1, as pytorch-fid does).

    With fewer samples than dimensions (``max(N1, N2) < d``, e.g. a few hundred images against
    2048 features) the covariances are singular and the same number is computed without them:
    with centred, scaled features ``A = (F1 - mu1) / sqrt(N1 - 1)`` and ``B`` likewise,
    ``Sigma1 Sigma2 = A^T A B^T B`` has the same non-zero eigenvalues as ``(A B^T)(A B^T)^T``, so
    ``tr((Sigma1 Sigma2)^{1/2})`` is the sum of the singular values of the small ``N1 x N2``
    matrix ``A B^T``. This is faster and exact up to round-off (a set against itself gives 0 to
    about 1e-15 relative instead of about 1e-6).
    """
    f1 = _as_float64("features1", features1, 2)
    f2 = _as_float64("features2", features2, 2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features1 and features2 must have the same dimension, got shapes {f1.shape} and {f2.shape}")
    for name, f in (("features1", f1), ("features2", f2)):
        if f.shape[0] < 2:
            raise ValueError(f"{name} must hold at least 2 rows (samples), got shape {f.shape}")
    d = f1.shape[1]
    if max(f1.shape[0], f2.shape[0]) >= d:
        return frechet_distance(*activation_statistics(f1), *activation_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a = (f1 - mu1) / np.sqrt(f1.shape[0] - 1)
    b = (f2 - mu2) / np.sqrt(f2.shape[0] - 1)
    tr_covmean = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.sum(a * a) + np.sum(b * b) - 2.0 * tr_covmean)
