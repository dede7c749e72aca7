"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 60,000 + 10,000 28x28 grey images of 10 clothing classes.

``python -m vaelab.data.fashion_mnist [--root DIR] [--no-download]`` prepares the cache
``<root>/fashion_mnist/{train,test}_{images,labels}.npy`` (images uint8 (N, 1, 28, 28), labels
int64) from the first source that has the data:

1. a valid cache (returns at once);
2. the four IDX files placed by the user, raw or ``.gz``, in ``<root>/fashion_mnist/raw/`` or
   ``<root>/fashion_mnist/FashionMNIST/raw/`` (torchvision's layout);
3. the Debian package ``dataset-fashion-mnist`` (``sudo apt-get install dataset-fashion-mnist``),
   which installs the four ``.gz`` files in ``/usr/share/datasets/fashion-mnist/``. Debian
   recompressed them, so their gzip checksums differ from the upstream ones: the check here is on
   the decompressed content;
4. ``torchvision.datasets.FashionMNIST(download=True)`` (internet).

Checks before caching (:data:`CHECKS`): sha256 of the uint8 image bytes, 6,000 (train) and
1,000 (test) images of each class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from vaelab.core.config import data_root
from vaelab.data.common import (
    load_labelled,
    labelled_main,
    SplitCheck,
    idx_folder_source,
    prepare_labelled,
    resolve_checks,
    torchvision_source,
)

__all__ = ["CHECKS", "CLASSES", "prepare", "load", "main"]

NAME = "fashion_mnist"
IMAGE_SHAPE = (1, 28, 28)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
#: the official content (sha256 prefix of the decompressed uint8 image bytes, class counts)
CHECKS = {
    "train": SplitCheck(60000, "2e487a6c89124f78", (6000,) * 10),
    "test": SplitCheck(10000, "c867c93ff9536059", (1000,) * 10),
}
#: where the Debian package puts the files (tests point it elsewhere to simulate its absence)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

MISSING_HELP = (
    "Fashion-MNIST is not available offline and could not be downloaded. Either\n"
    "  * install the Debian package:  sudo apt-get install dataset-fashion-mnist\n"
    "    (files in /usr/share/datasets/fashion-mnist/), then run:  python -m vaelab.data.fashion_mnist\n"
    "  * or run with internet access:  python -m vaelab.data.fashion_mnist  (torchvision download)\n"
    "  * or put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
    "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into {raw}"
)


def prepare(
    root=None, *, verify: bool | Mapping[str, SplitCheck] = True, download: bool = True, verbose: bool = True
) -> Path:
    """Make sure ``<root>/fashion_mnist/`` holds the verified cache; return that folder.

    Arguments as in :func:`vaelab.data.mnist.prepare`: ``verify`` is ``True`` (:data:`CHECKS`),
    ``False`` (shapes, dtypes, label range only) or a ``{split: SplitCheck}`` table; ``download``
    allows the torchvision download as the last resort.
    """
    directory = data_root(root) / NAME
    folders = [directory / "raw", directory / "FashionMNIST" / "raw"]
    sources = [
        (f"IDX files in {folders[0]} or {folders[1]}", idx_folder_source(folders, IMAGE_SHAPE)),
        (f"the Debian package dataset-fashion-mnist ({DEBIAN_DIR})", idx_folder_source([DEBIAN_DIR], IMAGE_SHAPE)),
        ("torchvision.datasets.FashionMNIST(download=True)", torchvision_source("FashionMNIST", download, IMAGE_SHAPE)),
    ]
    return prepare_labelled(
        name=NAME, title="Fashion-MNIST", root=root, checks=resolve_checks(verify, CHECKS), sources=sources,
        image_shape=IMAGE_SHAPE, num_classes=10, missing_help=MISSING_HELP.format(raw=folders[0]), verbose=verbose,
    )


def load(root=None, split: str = "train", **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of ``split`` ("train" or "test"): uint8 (N, 1, 28, 28) and int64 (N,).

    Calls :func:`prepare` first (keyword arguments go to it).
    """
    return load_labelled("Fashion-MNIST", prepare, CHECKS, root, split, **kwargs)


def main(argv=None) -> int:
    return labelled_main('fashion_mnist', 'Fashion-MNIST', __doc__, prepare, CHECKS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
