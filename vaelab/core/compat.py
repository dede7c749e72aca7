"""Import torchvision on a CPU-only torch whose torchvision wheel was built for CUDA.

torchvision 0.28.0 (the only release for torch 2.13.0) ships a CUDA-built ``_C.so``. With a
CPU build of torch it cannot load, and ``import torchvision`` then dies in
``torchvision/_meta_registrations.py`` with ``operator torchvision::nms does not exist``.
Declaring the two operator schemas that module registers kernels for lets every pure-Python
part import (datasets, transforms, ``utils.make_grid``, models with random weights).
The fix is applied only when torch is a CPU build *and* the import actually fails; on a
CUDA machine or in Colab it never runs.
"""
from __future__ import annotations

import sys

import torch

_LIB = None  # keeps the operator library alive for the process


def _declare_torchvision_ops() -> None:
    global _LIB
    if _LIB is not None:
        return
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def import_torchvision():
    """``import torchvision`` that also works with a CPU torch and a CUDA-built torchvision wheel."""
    try:
        import torchvision
        return torchvision
    except RuntimeError as err:
        if "torchvision::nms" not in str(err) or torch.version.cuda is not None:
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _declare_torchvision_ops()
    import torchvision
    return torchvision
