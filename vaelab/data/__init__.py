"""Data: device-resident image sets and each data set's source and cache.

``images`` holds ``ImageData`` (uint8 images on the device, index batches, binarisation) and
``load_dataset``. ``mnist``, ``fashion_mnist``, ``pendulum`` (rendered here; Klushyn et al. 2019,
chapter 04) and ``celeba`` each offer ``prepare(root)`` (build and verify the cache under the data root)
and ``load(root, split)``. Each is also a command, ``python -m vaelab.data.NAME [--root DIR]``.

Modules:

* ``images``: ImageData, Splits, load_dataset; encode_images and decode_images (a few images in a record)
* ``common``: what the sources share
* ``mnist``: MNIST
* ``fashion_mnist``: Fashion-MNIST
* ``pendulum``: the pendulum images
* ``celeba``: CelebA at 64 x 64
"""
from vaelab.data.images import *  # noqa: F401,F403  (ImageData, Splits, load_dataset, ...)
from vaelab.data.images import __all__  # noqa: F401
