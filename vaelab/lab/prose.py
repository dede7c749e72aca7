"""Numbers of a run in a chapter's prose.

A chapter quotes a number of its own run (a run time, a headline result, a count) only through
``glue``: the cell computes it, ``glue("ch01_active_at_1", n)`` stores it in the notebook, and the
Markdown cites it as ``{glue:text}`ch01_active_at_1``` (myst-nb). Text and output then cannot
disagree on any machine, and the book build (``--warningiserror``) fails on a name no cell glued.
Outside a book build (Colab, a plain Jupyter without myst-nb) it does nothing.
"""
from __future__ import annotations

__all__ = ["glue", "glue_figure"]


def glue(name: str, value, fmt: str | None = None) -> None:
    """Store ``format(value, fmt)`` (or ``str(value)``) under ``name`` for the prose.

    Returns nothing, so that a ``glue`` call ending a cell adds no output to the page.

    ``name`` must be unique in the chapter; use a chapter prefix (``ch03_...``) so that a page that
    cites another chapter's number cannot pick up its own by mistake.
    """
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"glue name must be letters, digits and underscores, got {name!r}: "
                         "e.g. glue('ch01_runtime_min', minutes, '.1f')")
    text = str(value) if fmt is None else format(value, fmt)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab or plain Jupyter: nothing to paste into
        return
    myst_glue(name, text, display=False)


def glue_figure(name: str, fig) -> None:
    """Store a matplotlib figure under ``name`` for a numbered, captioned ``{glue:figure}`` in the prose
    and close it; outside a book build (Colab, plain Jupyter) show it where the cell stands instead."""
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"glue name must be letters, digits and underscores, got {name!r}")
    import matplotlib.pyplot as plt
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.display import display
        display(fig)
    else:
        myst_glue(name, fig, display=False)
    plt.close(fig)
