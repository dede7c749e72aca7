"""Tables as the book sets them: the caption attached to the table, numbers right-aligned, no index,
an empty cell for a missing value (chapter 04 first)."""
from __future__ import annotations

__all__ = ["table"]


def table(frame, caption: str, formats=None, *, left=(), precision: int | None = None, na_rep: str = ""):
    """``frame`` (a pandas DataFrame) as a Styler for ``display``: its first column and the columns
    named in ``left`` (text) aligned left, every other column right; ``formats`` and ``precision`` as
    ``Styler.format`` takes them (a format string, a callable, or a dict of them by column)."""
    right = [c for c in frame.columns[1:] if c not in left]
    return (frame.style.format(formats, precision=precision, na_rep=na_rep)
            .set_properties(subset=right, **{"text-align": "right"})
            .set_caption(caption)
            .hide(axis="index"))
