"""Numbers of a run in a chapter's prose.

A chapter quotes a number of its own run (a run time, a headline result, a count) only through
``glue``: the cell computes it, ``glue("ch01_active_at_1", n)`` stores it in the notebook, and the
Markdown cites it as ``{glue:text}`ch01_active_at_1``` (myst-nb). Text and output then cannot
disagree on any machine, and the book build (``--warningiserror``) fails on a name no cell glued.
Outside a book build (Colab, a plain Jupyter without myst-nb) it does nothing.
"""
from __future__ import annotations

__all__ = ["glue", "glue_figure", "count_text", "range_text", "command_text"]


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


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def count_text(k: int, n: int) -> str:
    """How many of ``n`` things, in words a sentence can take: "none of the five", "all three",
    "two of the six", "one of 12" (numbers up to ten as words)."""
    def word(i):
        return _WORDS[i] if 0 <= i < len(_WORDS) else f"{i:,}"
    if n == 1:
        return "it" if k == 1 else "none"
    if k == 0:
        return f"none of the {word(n)}"
    if k == n:
        return "both" if n == 2 else f"all {word(n)}"
    return f"{word(k)} of the {word(n)}"


def range_text(lo: float, hi: float, fmt: str) -> str:
    """``lo`` to ``hi`` as text, or a single number where both round to the same text
    ("0.07", not "0.07 to 0.07")."""
    a, b = format(lo, fmt), format(hi, fmt)
    return a if a == b else f"{a} to {b}"


def command_text(command: str, width: int = 80) -> str:
    """A long shell command as lines of about ``width`` characters joined by backslashes, broken
    only before an option (``-p name value`` stays on one line), for printing on the page."""
    import re

    lines = [""]
    for part in re.split(r" (?=-p |-y |--|&& )", command):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += (" " if lines[-1] else "") + part
    return " \\\n    ".join(lines)
