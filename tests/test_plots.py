"""vaelab.lab.plots: the book's figure style, panel grids, integer ticks, image grids."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vaelab.lab import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_rc():
    with matplotlib.rc_context():
        yield
    plt.close("all")


@pytest.mark.parametrize("n, max_cols, shape", [
    (1, 2, (1, 1)), (2, 2, (1, 2)), (3, 2, (2, 2)), (4, 2, (2, 2)), (3, 3, (1, 3)),
    (4, 3, (2, 2)), (5, 3, (2, 3)), (6, 3, (2, 3)), (7, 3, (3, 3)), (4, 4, (1, 4)), (9, 4, (3, 3)),
])
def test_grid_shape(n, max_cols, shape):
    rows, cols = plots.grid_shape(n, max_cols)
    assert (rows, cols) == shape
    assert rows * cols >= n and cols <= max_cols and (rows - 1) * cols < n  # no empty row


def test_grid_shape_refuses_nonsense():
    with pytest.raises(ValueError):
        plots.grid_shape(0)
    with pytest.raises(ValueError):
        plots.grid_shape(3, max_cols=0)


def test_book_style_draws_at_column_width():
    plots.book_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # at figure.dpi, as the notebook shows it
    width_px = int.from_bytes(buf.getvalue()[16:20], "big")
    assert width_px == round(plots.COLUMN_WIDTH * plots.DPI) == 700
    assert matplotlib.rcParams["font.size"] >= 9 and matplotlib.rcParams["xtick.labelsize"] >= 8


def test_subplots_fits_the_column_and_drops_spare_cells():
    plots.book_style()
    fig, axes = plots.subplots(3, max_cols=2)
    assert len(axes) == 3 and len(fig.axes) == 3
    width, height = fig.get_size_inches()
    assert width == pytest.approx(plots.COLUMN_WIDTH)
    assert height == pytest.approx(2 * plots.COLUMN_WIDTH / 2 * 0.62)
    fig2, axes2 = plots.subplots(4, max_cols=4, height=2.5, sharey=True)
    assert fig2.get_size_inches()[1] == pytest.approx(2.5) and len(axes2) == 4


def test_integer_ticks():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.2, 0.5, 0.1])
    plots.integer_ticks(ax, "x")
    fig.canvas.draw()
    ticks = ax.get_xticks()
    assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks))
    with pytest.raises(ValueError):
        plots.integer_ticks(ax, "z")


def test_integer_ticks_on_a_single_epoch():
    fig, ax = plt.subplots()
    ax.plot([1], [0.5], "o")   # one epoch: matplotlib pads the range to about 0.94..1.06
    plots.integer_ticks(ax, "x")
    fig.canvas.draw()
    visible = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert visible == [1.0]


def test_integer_ticks_fewer_bins_for_small_panels():
    fig, ax = plt.subplots(figsize=(1.6, 1.6))
    ax.imshow(np.zeros((20, 20)))
    plots.integer_ticks(ax, "both", nbins=4)
    fig.canvas.draw()
    assert len([t for t in ax.get_xticks() if -0.5 <= t <= 19.5]) <= 5


def test_legend_above_sits_outside_the_axes():
    plots.book_style()
    fig, axes = plots.subplots(2, max_cols=1)
    for name in ("VAE", "HEBAE", "WAE"):
        axes[0].bar(np.arange(20), np.random.default_rng(0).random(20), label=name)
    legend = plots.legend_above(fig, axes[0])
    fig.canvas.draw()
    box = legend.get_window_extent()
    top_of_axes = max(ax.get_window_extent().y1 for ax in axes)
    assert box.y0 >= top_of_axes - 1, "the legend overlaps the panels"
    assert [t.get_text() for t in legend.get_texts()] == ["VAE", "HEBAE", "WAE"]


def test_legend_above_joins_the_labels_of_several_axes_once_each():
    plots.book_style()
    fig, axes = plt.subplots(1, 2)
    axes[0].plot([0, 1], label="REWO", color="C0")
    axes[0].plot([0, 1], label="GECO", color="C1")
    axes[1].plot([0, 1], label="GECO", color="C1")
    axes[1].plot([0, 1], label="WU 20", color="C2")
    legend = plots.legend_above(fig, axes)
    assert [t.get_text() for t in legend.get_texts()] == ["REWO", "GECO", "WU 20"]
    assert plots.legend_above(fig, axes[1]).get_texts()[0].get_text() == "GECO"
    plt.close(fig)


def test_image_grid_tiles_in_order():
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1) / 3
    grid = plots.image_grid(images, nrow=2, pad=1)
    assert grid.shape == (5, 5, 1)
    assert grid[1, 1, 0] == 0 and grid[1, 3, 0] == pytest.approx(1 / 3)
    assert grid[3, 1, 0] == pytest.approx(2 / 3) and grid[3, 3, 0] == 1
    assert grid[0, 0, 0] == 1  # padding is white
    with pytest.raises(ValueError):
        plots.image_grid(torch.zeros(2, 2, 4, 4))
