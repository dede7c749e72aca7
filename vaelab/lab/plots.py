"""Figures the chapters share: one style sized for the book's column, panel grids, image
grids, training curves, saving into ``out_dir``.

The book's text column is about 700 px wide. A figure drawn at ``COLUMN_WIDTH`` inches and
``DPI`` dots per inch is shown at its natural size, so its fonts read as they were set:
call :func:`book_style` once after importing pyplot, lay out several panels with
:func:`subplots` (rows and columns chosen to fit the column), and mark discrete axes with
:func:`integer_ticks`. Chapters call these instead of re-writing plotting code.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

__all__ = ["COLUMN_WIDTH", "DPI", "BOOK_STYLE", "book_style", "grid_shape", "subplots",
           "integer_ticks", "legend_above", "image_grid", "show_images", "plot_history",
           "save_figure"]

COLUMN_WIDTH = 7.0  # inches: 700 px at DPI, the width of the book's text column
DPI = 100

BOOK_STYLE = {
    "figure.figsize": (COLUMN_WIDTH, 3.0),
    "figure.dpi": DPI,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.85,
    "lines.markersize": 4,
    "image.cmap": "viridis",
}


def book_style() -> dict:
    """Apply the book's figure style (``BOOK_STYLE``) to matplotlib; returns the settings.

    Figures default to the column's width at ``DPI`` and lay themselves out with
    constrained layout (no ``tight_layout`` needed)."""
    mpl.rcParams.update(BOOK_STYLE)
    return dict(BOOK_STYLE)


def grid_shape(n: int, max_cols: int = 2) -> tuple[int, int]:
    """(rows, cols) for ``n`` panels, at most ``max_cols`` per row, rows as even as possible.

    ``grid_shape(4) == (2, 2)``, ``grid_shape(3, max_cols=3) == (1, 3)``,
    ``grid_shape(5, max_cols=3) == (2, 3)``, ``grid_shape(7, max_cols=3) == (3, 3)``."""
    if n < 1 or max_cols < 1:
        raise ValueError(f"need n >= 1 panels and max_cols >= 1, got n={n}, max_cols={max_cols}")
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def subplots(n: int, max_cols: int = 2, *, width: float = COLUMN_WIDTH, aspect: float = 0.62,
             height: float | None = None, **kwargs):
    """A figure with ``n`` panels in a grid that fits the column: returns ``(fig, axes)``,
    ``axes`` a flat list of the ``n`` panels (grid cells beyond ``n`` are removed).

    Each panel is ``width / cols`` wide and ``aspect`` times as high, unless ``height`` (of
    the whole figure, inches) is given. Other keyword arguments go to ``plt.subplots``
    (``sharex``, ``sharey``, ``gridspec_kw``, ...)."""
    rows, cols = grid_shape(n, max_cols)
    if height is None:
        height = rows * (width / cols) * aspect
    fig, grid = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, **kwargs)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def integer_ticks(ax, axis: str = "x", nbins: int | str = "auto"):
    """Ticks only at whole numbers on ``axis`` ("x", "y" or "both"): for counts, epochs,
    latent dimensions; at most ``nbins`` intervals (fewer for small panels). A range that
    holds a single whole number (one epoch) gets that one tick. Returns ``ax``."""
    if axis not in ("x", "y", "both"):
        raise ValueError(f"axis must be 'x', 'y' or 'both', got {axis!r}")
    for name in ("x", "y") if axis == "both" else (axis,):
        locator = MaxNLocator(nbins=nbins, integer=True, min_n_ticks=1)
        getattr(ax, f"{name}axis").set_major_locator(locator)
    return ax


def legend_above(fig, ax=None, ncol: int | None = None, **kwargs):
    """One legend for the whole figure, above the panels (outside every axes, so it never
    covers data), from the labelled artists of ``ax`` (default: the first axes); ``ax`` a
    sequence of axes: their artists, each label once (the first artist that carries it)."""
    axs = [fig.axes[0]] if ax is None else list(np.ravel(ax)) if np.ndim(ax) else [ax]
    found = {}
    for a in axs:
        for handle, label in zip(*a.get_legend_handles_labels()):
            found.setdefault(label, handle)
    handles, labels = list(found.values()), list(found)
    return fig.legend(handles, labels, loc="outside upper center", ncol=ncol or len(labels),
                      frameon=False, **kwargs)


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


def plot_history(history, keys: Sequence[str], ax=None, per: str = "epochs", logy: bool = False, title: str | None = None,
                 ylabel: str | None = None):
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
    integer_ticks(ax, "x")
    if ylabel:
        ax.set_ylabel(ylabel)
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
