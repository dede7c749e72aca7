"""Data sets as tensors on the training device, batches as index permutations.

Images stay uint8 on the device (MNIST is 47 MB, CelebA-64 2.5 GB) and are turned into
floats one batch at a time, so an epoch costs no Python-level data loader. Pixels are
scaled to [0, 1] (``scale="unit"``) or [-1, 1] (``scale="signed"``, CelebA in HEBAE App. B.2).

Binarisation (chapter 03 explains the difference in reported log-likelihoods):

* ``"none"``: grey values in [0, 1] (HEBAE's MNIST setting);
* ``"fixed"``: each pixel sampled once from Bernoulli(grey value) with a fixed seed;
* ``"dynamic"``: re-sampled for every batch (the VampPrior paper's training set).

``encode_images`` keeps a few images (samples, reconstructions, pseudo-inputs) in a JSON record as
uint8 pixels in base64; ``decode_images`` gives them back as floats in [0, 1].
"""
from __future__ import annotations

import base64
import importlib
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from vaelab.core.validate import positive_int
from vaelab.core.config import get_device

__all__ = ["ImageData", "Splits", "load_dataset", "DATASETS", "batch_indices", "encode_images", "decode_images"]

DATASETS = {
    "mnist": "vaelab.data.mnist",
    "fashion_mnist": "vaelab.data.fashion_mnist",
    "pendulum": "vaelab.data.pendulum",
    "celeba": "vaelab.data.celeba",
}
BINARIZE = ("none", "fixed", "dynamic")
SCALES = ("unit", "signed")


@dataclass
class ImageData:
    """uint8 images ``(N, C, H, W)`` on a device, optional per-image ``targets`` (labels, angles).

    ``batch(idx)`` returns float images of the selected indices, scaled and binarised as set.
    """

    images: torch.Tensor
    targets: torch.Tensor | None = None
    binarize: str = "none"
    scale: str = "unit"
    seed: int = 0
    name: str = ""  # e.g. "mnist/train": part of a run's identity (``vaelab.training.runs``)
    _generator: torch.Generator | None = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.ndim != 4:
            got = getattr(self.images, "dtype", type(self.images)), tuple(getattr(self.images, "shape", ()))
            raise ValueError(f"images must be a uint8 tensor of shape (N, C, H, W), got {got}: build float images "
                             "in [0, 1] with ImageData.from_float(x), which refuses NaN and values outside [0, 1] "
                             "instead of wrapping them")
        if self.targets is not None and len(self.targets) != len(self.images):
            raise ValueError(f"targets has {len(self.targets)} rows but images has {len(self.images)}")
        if self.binarize not in BINARIZE:
            raise ValueError(f"binarize={self.binarize!r} is unknown: use one of {BINARIZE}")
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} is unknown: use one of {SCALES}")
        if self.binarize != "none" and self.scale != "unit":
            raise ValueError("binarized data must use scale='unit'")
        if self.binarize == "fixed":
            gen = torch.Generator(device=self.images.device).manual_seed(self.seed)
            probs = self.images.float() / 255.0
            self.images = (torch.bernoulli(probs, generator=gen) * 255).to(torch.uint8)
        if self.binarize == "dynamic":
            self._generator = torch.Generator(device=self.images.device).manual_seed(self.seed)

    @classmethod
    def from_float(cls, images: torch.Tensor, targets: torch.Tensor | None = None, **kwargs) -> "ImageData":
        """Build from float images in [0, 1] of shape (N, C, H, W), quantised to uint8 (1/255 steps)."""
        images = torch.as_tensor(images)
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}: "
                             "pass uint8 images to ImageData(...) directly")
        if torch.isnan(images).any():
            raise ValueError(f"images contain {int(torch.isnan(images).sum())} NaN values: clean the data first")
        lo, hi = images.min().item(), images.max().item()
        if lo < 0 or hi > 1:
            raise ValueError(f"images must lie in [0, 1], found values in [{lo:.3g}, {hi:.3g}]: rescale them "
                             "(e.g. (x + 1) / 2 for images in [-1, 1])")
        return cls((images * 255).round().to(torch.uint8), targets, **kwargs)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one image, (C, H, W)."""
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def batch(self, idx: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float images for the indices ``idx`` (all when None)."""
        x = self.images if idx is None else self.images[idx]
        x = x.float().div_(255.0)
        if self.binarize == "dynamic":
            x = torch.bernoulli(x, generator=self._generator)
        if self.scale == "signed":
            x = x.mul_(2.0).sub_(1.0)
        return x

    def subset(self, n: int) -> "ImageData":
        """The first ``n`` images (splits are already shuffled), same settings."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset size n={n} must be in 1..{len(self)}")
        # re-binarising fixed (0/255) images is the identity, so the mode can be kept as it is
        return ImageData(self.images[:n], None if self.targets is None else self.targets[:n],
                         self.binarize, self.scale, self.seed, self.name)

    # generator state for resumable dynamic binarisation
    def rng_state(self) -> torch.Tensor | None:
        return None if self._generator is None else self._generator.get_state()

    def set_rng_state(self, state: torch.Tensor | None) -> None:
        if self._generator is not None and state is not None:
            self._generator.set_state(state)


@dataclass
class Splits:
    """Train / validation / test ``ImageData`` of one data set."""

    train: ImageData
    valid: ImageData
    test: ImageData


def _source(name: str):
    if name not in DATASETS:
        raise ValueError(f"data set {name!r} is unknown: use one of {sorted(DATASETS)}")
    return importlib.import_module(DATASETS[name])


def load_dataset(name: str, *, root=None, device="auto", valid_size: int = 10_000, train_size: int | None = None,
                 test_size: int | None = None, binarize: str = "none", scale: str = "unit", seed: int = 0,
                 ) -> Splits:
    """Load ``name`` from the data root onto ``device`` as train/validation/test splits.

    The validation set is ``valid_size`` images taken from the official training set by a
    permutation with ``seed``; data sets without a test split (the pendulum) give the test set
    the same way. ``train_size`` / ``test_size`` keep only the first images of the shuffled split
    (the default-scale chapters train on a subset). The training split is binarised as asked
    (``"fixed"`` or ``"dynamic"``); validation and test are binarised once with a fixed seed
    whenever ``binarize != "none"``, as in the VampPrior paper.
    """
    if binarize not in BINARIZE:
        raise ValueError(f"binarize={binarize!r} is unknown: use one of {BINARIZE}")
    src = _source(name)
    device = get_device(device)
    images, targets = src.load(root=root, split="train")
    gen = np.random.default_rng(seed)
    perm = gen.permutation(len(images))
    has_test = getattr(src, "HAS_TEST_SPLIT", True)
    if has_test:
        test_images, test_targets = src.load(root=root, split="test")
        n_hold = valid_size
    else:
        n_hold = 2 * valid_size
    if not 0 <= n_hold < len(images):
        raise ValueError(f"valid_size={valid_size} leaves no training images out of {len(images)}")
    valid_idx = perm[:valid_size]
    train_idx = perm[n_hold:]
    if not has_test:
        test_idx = perm[valid_size:n_hold]
        test_images, test_targets = images[test_idx], targets[test_idx]
    else:
        tperm = gen.permutation(len(test_images))
        test_images, test_targets = test_images[tperm], test_targets[tperm]
    for arg, size, avail in (("train_size", train_size, len(train_idx)), ("test_size", test_size, len(test_images))):
        if size is not None and not 0 < size <= avail:
            raise ValueError(f"{arg}={size} must be in 1..{avail}")
    if train_size is not None:
        train_idx = train_idx[:train_size]
    if test_size is not None:
        test_images, test_targets = test_images[:test_size], test_targets[:test_size]

    def make(imgs, tgts, mode, s, split):
        return ImageData(torch.as_tensor(np.ascontiguousarray(imgs)).to(device),
                         torch.as_tensor(np.ascontiguousarray(tgts)).to(device), mode, scale, s, f"{name}/{split}")

    eval_mode = "none" if binarize == "none" else "fixed"
    return Splits(
        train=make(images[train_idx], targets[train_idx], binarize, seed, "train"),
        valid=make(images[valid_idx], targets[valid_idx], eval_mode, seed + 1, "valid"),
        test=make(test_images, test_targets, eval_mode, seed + 2, "test"),
    )


def batch_indices(n: int, batch_size: int, *, shuffle: bool = True, generator: torch.Generator | None = None,
                  drop_last: bool = False, device=None) -> Iterator[torch.Tensor]:
    """Index tensors of one epoch: a permutation cut into batches (no Python loop per image)."""
    positive_int("batch_size", batch_size)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if device is not None:
        order = order.to(device)
    stop = (n // batch_size) * batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def n_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def encode_images(images: torch.Tensor) -> dict:
    """uint8 pixels of a few images in [0, 1] as base64, with their shape (small enough for a committed
    record); ``decode_images`` gives them back."""
    u8 = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return {"shape": list(u8.shape), "uint8_base64": base64.b64encode(u8.numpy().tobytes()).decode("ascii")}


def decode_images(blob: dict) -> torch.Tensor:
    """The images stored by ``encode_images`` (e.g. a record's ``result["pictures"][...]``) as floats in [0, 1]."""
    raw = np.frombuffer(base64.b64decode(blob["uint8_base64"]), dtype=np.uint8).copy()
    return torch.from_numpy(raw.reshape(blob["shape"])).float() / 255
