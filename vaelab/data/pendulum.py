"""The pendulum images of Klushyn et al. (2019, Sec. 4.1): one degree of freedom, the angle.

``generate(n=15000, size=16, seed=0)`` draws ``n`` angles uniformly in [0, 2 pi) with
``numpy.random.Generator(PCG64(seed))`` and renders one grey ``size x size`` image per angle:
a white rod from the image centre (the pivot) to a round bob, on black.

Angle convention: angle 0 points straight down; the angle grows counter-clockwise as the
image is displayed (row 0 at the top), so pi/2 points right, pi up and 3 pi/2 left. With
pixel (row r, column c) covering [r, r+1) x [c, c+1) and the pivot at (size/2, size/2), the
bob's centre is at row ``size/2 + L cos(angle)``, column ``size/2 + L sin(angle)``.

Rendering is anti-aliased analytically: each pixel's intensity is an approximate coverage
``clip(radius - distance + 1/2, 0, 1)`` of its centre's distance to the rod (a segment of
half-width ``0.05 size``) or to the bob (radius ``0.12 size``, centre at ``L = 0.34 size``),
taking the larger of the two. The distance is a Lipschitz function of the angle, so the image
moves continuously with the angle (no pixel jumps), as the paper's smooth 1-D manifold needs.
Only ``sin``/``cos`` are transcendental and they are computed per angle with Python's ``math``,
the rest is exact IEEE arithmetic: an image does not depend on the batch it is rendered in,
which is what ``prepare`` relies on to verify a cache by re-rendering its first 16 images.

``python -m vaelab.data.pendulum [--root DIR] [--n N] [--size S] [--seed K]`` caches the
data set in ``<root>/pendulum/n{N}_size{S}_seed{K}_{images,angles}.npy``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from vaelab.core.config import data_root
from vaelab.data.common import DataVerificationError, load_split, run_prepare, save_split

__all__ = ["sample_angles", "render", "generate", "prepare", "load", "main"]

NAME = "pendulum"
HAS_TEST_SPLIT = False  # one split only: vaelab.data.load_dataset carves validation and test sets
ROD_LENGTH, ROD_HALF_WIDTH, BOB_RADIUS = 0.34, 0.05, 0.12  # as fractions of the image size
N_CHECK = 16  # images re-rendered by prepare() to verify a cache


def _check_args(n: int, size: int, seed: int) -> None:
    for name, value, low in (("n", n, 1), ("size", size, 8), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def sample_angles(n: int, seed: int = 0) -> np.ndarray:
    """``n`` angles uniform in [0, 2 pi) from ``Generator(PCG64(seed))``, float64 (n,).

    The first k angles of ``sample_angles(n, seed)`` equal ``sample_angles(k, seed)``.
    """
    _check_args(n, 8, seed)
    rng = np.random.Generator(np.random.PCG64(seed))
    angles = rng.uniform(0.0, 2.0 * math.pi, size=n)
    return np.where(angles >= 2.0 * math.pi, 0.0, angles)  # guard [0, 2 pi) against rounding


def render(angles: np.ndarray, size: int = 16, chunk: int = 4096) -> np.ndarray:
    """Images uint8 (n, 1, size, size) of the pendulum at ``angles`` (radians, convention above)."""
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 1 or not np.all(np.isfinite(angles)):
        raise ValueError(f"angles must be a finite 1-D array of radians, got shape {angles.shape}")
    _check_args(max(len(angles), 1), size, 0)
    length, half_width, radius = ROD_LENGTH * size, ROD_HALF_WIDTH * size, BOB_RADIUS * size
    centres = np.arange(size, dtype=np.float64) + 0.5 - size / 2.0  # pixel centres relative to the pivot
    rows, cols = centres[:, None], centres[None, :]
    out = np.empty((len(angles), 1, size, size), dtype=np.uint8)
    for start in range(0, len(angles), chunk):
        part = angles[start:start + chunk]
        # the bob's offset from the pivot (row down, column right); scalar libm, batch-independent
        dr = np.array([math.cos(a) for a in part])[:, None, None] * length
        dc = np.array([math.sin(a) for a in part])[:, None, None] * length
        # distance of every pixel centre to the rod segment from the pivot to the bob
        t = np.clip((rows * dr + cols * dc) / (length * length), 0.0, 1.0)
        rod = np.sqrt((rows - t * dr) ** 2 + (cols - t * dc) ** 2)
        bob = np.sqrt((rows - dr) ** 2 + (cols - dc) ** 2)
        cover = np.maximum(np.clip(half_width - rod + 0.5, 0.0, 1.0), np.clip(radius - bob + 0.5, 0.0, 1.0))
        out[start:start + len(part), 0] = np.rint(cover * 255.0).astype(np.uint8)
    return out


def generate(n: int = 15000, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 1, size, size), angles float64 (n,))``; deterministic for a seed."""
    _check_args(n, size, seed)
    angles = sample_angles(n, seed)
    return render(angles, size), angles


def _key(n: int, size: int, seed: int) -> str:
    return f"n{n}_size{size}_seed{seed}"


def _cache_problem(directory: Path, n: int, size: int, seed: int) -> str | None:
    """None when the cache for (n, size, seed) is complete and re-renders identically; else why not."""
    try:
        arrays = load_split(directory, _key(n, size, seed), ("images", "angles"))
    except (ValueError, OSError) as err:
        return f"unreadable ({err})"
    if arrays is None:
        return "missing"
    images, angles = arrays
    if images.dtype != np.uint8 or images.shape != (n, 1, size, size):
        return f"images are {images.dtype} {images.shape}, expected uint8 {(n, 1, size, size)}"
    if angles.dtype != np.float64 or angles.shape != (n,):
        return f"angles are {angles.dtype} {angles.shape}, expected float64 ({n},)"
    if not (np.all(angles >= 0.0) and np.all(angles < 2.0 * math.pi)):
        return "angles outside [0, 2 pi)"
    k = min(n, N_CHECK)
    if not np.array_equal(angles[:k], sample_angles(k, seed)):
        return f"the first {k} angles differ from those of seed {seed}"
    if not np.array_equal(images[:k], render(angles[:k], size)):
        return f"the first {k} images differ from a fresh rendering"
    return None


def prepare(root=None, n: int = 15000, size: int = 16, seed: int = 0, verbose: bool = True) -> Path:
    """Make sure ``<root>/pendulum/`` holds the verified data set for (n, size, seed); return the folder.

    A cache is valid when shapes, dtypes and the angle range are right and its first 16 angles
    and images equal freshly drawn and rendered ones; otherwise it is regenerated.
    """
    _check_args(n, size, seed)
    log = (lambda m: print(m, flush=True)) if verbose else (lambda m: None)
    directory = data_root(root) / NAME
    key = _key(n, size, seed)
    problem = _cache_problem(directory, n, size, seed)
    if problem is None:
        log(f"pendulum: valid cache {directory / key}_{{images,angles}}.npy")
        return directory
    if problem != "missing":
        log(f"pendulum: the cache {directory / key}_*.npy is not usable ({problem}); regenerating it")
    start = time.perf_counter()
    images, angles = generate(n, size, seed)
    save_split(directory, key, angles=angles, images=images)
    problem = _cache_problem(directory, n, size, seed)
    if problem is not None:
        raise DataVerificationError(f"pendulum: the cache just written to {directory} does not read back: {problem}")
    log(f"pendulum: generated {n} images {size}x{size} (seed {seed}) in {time.perf_counter() - start:.2f} s, "
        f"cached in {directory / key}_{{images,angles}}.npy")
    return directory


def load(
    root=None, split: str = "train", n: int = 15000, size: int = 16, seed: int = 0, verbose: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 1, size, size), angles float64 (n,))``, preparing the cache if needed.

    The data set has one split, ``"train"``: all ``n`` images (the paper trains on all 15,000).
    Hold-out sets are carved from it by the caller (``HAS_TEST_SPLIT = False`` tells
    ``vaelab.data.load_dataset`` to do so); the angles are i.i.d., so any subset is a random one.
    """
    if split != "train":
        raise ValueError(
            f"split={split!r}: the pendulum data set has only split='train' (all n images); hold out a test set "
            "from it (vaelab.data.load_dataset does so when valid_size is given)"
        )
    directory = prepare(root, n=n, size=size, seed=seed, verbose=verbose)
    return load_split(directory, _key(n, size, seed), ("images", "angles"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaelab.data.pendulum", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: $VAELAB_DATA or ~/.cache/vaelab)")
    parser.add_argument("--n", type=int, default=15000, help="number of images (default 15000, as in the paper)")
    parser.add_argument("--size", type=int, default=16, help="image side in pixels (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the angles (default 0)")
    args = parser.parse_args(argv)
    return run_prepare("pendulum", lambda: prepare(args.root, n=args.n, size=args.size, seed=args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
