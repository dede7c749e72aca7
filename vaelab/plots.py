"""Figures the chapters share: image grids, training curves, saving into ``out_dir``.

Chapters call these instead of re-writing plotting code (DESIGN.md, "Plots").
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["image_grid", "show_images", "plot_history", "save_figure"]


def image_grid(images: torch.Tensor, nrow: int = 10, pad: int = 1, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images into one ``(rows*(H+pad)+pad, nrow*(W+pad)+pad, C)`` array in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be a tensor of shape (N, 1 or 3, H, W), got {getattr(images, 'shape', type(images))}")
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1).numpy()
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i].transpose(1, 2, 0)
    return grid


def show_images(images: torch.Tensor, nrow: int = 10, title: str | None = None, ax=None,
                value_range: tuple[float, float] = (0.0, 1.0)):
    """Draw an image grid on ``ax`` (a new figure when None); returns the axes."""
    grid = image_grid(images, nrow=nrow, value_range=value_range)
    if ax is None:
        _, ax = plt.subplots(figsize=(nrow * 0.6, grid.shape[0] / grid.shape[1] * nrow * 0.6 + 0.4))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(history, keys: Sequence[str], ax=None, per: str = "epochs", logy: bool = False, title: str | None = None):
    """Curves of ``history.epochs[key]`` (or ``history.steps``) against epoch (or step)."""
    table = getattr(history, per)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for key in keys:
        if key not in table:
            raise KeyError(f"history has no {per} record {key!r}; it has {sorted(table)}")
        y = np.asarray(table[key], dtype=float)
        x = np.asarray(table["epoch"]) if per == "epochs" else np.arange(1, len(y) + 1)
        ax.plot(x, y, label=key)
    ax.set_xlabel("epoch" if per == "epochs" else "step")
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def save_figure(fig, out_dir: str | os.PathLike, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``out_dir/name.png`` and return the path."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
