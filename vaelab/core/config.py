"""Run-wide settings: where data live, which device to use, and the smoke-scale switch.

Every chapter and data script resolves these three the same way (README, "Chapter
conventions"):

* data root: an explicit argument, else ``$VAELAB_DATA``, else a per-user cache
  directory (``$XDG_CACHE_HOME/vaelab`` or ``~/.cache/vaelab``);
* device: ``"auto"`` picks cuda, then mps, then cpu;
* smoke scale: ``VAELAB_SMOKE=1`` shrinks every chapter to a few seconds of work (CI, nbval).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["data_root", "get_device", "is_smoke"]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The one directory under which every data set and weights file is cached."""
    if root is None:
        root = os.environ.get("VAELAB_DATA") or None
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(cache, "vaelab")
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"data root {str(path)!r} exists and is not a directory: pass root=... or set "
            "VAELAB_DATA to a directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_smoke() -> bool:
    """True when ``VAELAB_SMOKE=1``: chapters then run at smoke scale (seconds, meaningless numbers)."""
    value = os.environ.get("VAELAB_SMOKE", "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(f"VAELAB_SMOKE={value!r} is not understood: set it to 1 (smoke scale) or 0 / unset")


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"`` to an available device."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cuda', 'mps' or 'cpu', got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = device.split(":")[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise ValueError(f"device={device!r} is unknown: use 'auto', 'cuda', 'cuda:N', 'mps' or 'cpu'")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but CUDA is not available: use device='auto' or 'cpu'")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(f"device={device!r} was asked for but MPS is not available: use device='auto' or 'cpu'")
    return torch.device(device)
