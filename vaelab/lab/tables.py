"""Tables as the book sets them: the caption attached to the table, numbers right-aligned, no index,
an empty cell for a missing value (chapter 04 first)."""
from __future__ import annotations

__all__ = ["table", "numbers_table"]


def table(frame, caption: str, formats=None, *, left=(), precision: int | None = None, na_rep: str = ""):
    """``frame`` (a pandas DataFrame) as a Styler for ``display``: its first column and the columns
    named in ``left`` (text) aligned left, every other column right; ``formats`` and ``precision`` as
    ``Styler.format`` takes them (a format string, a callable, or a dict of them by column)."""
    right = [c for c in frame.columns[1:] if c not in left]
    return (frame.style.format(formats, precision=precision, na_rep=na_rep)
            .set_properties(subset=right, **{"text-align": "right"})
            .set_caption(caption)
            .hide(axis="index"))


def numbers_table(frame, caption: str, precision: int = 2, numbers=()):
    """``frame`` as a Styler for ``display`` (chapter 03 and its study): its caption, no index, numbers
    rounded with thousands separators, a dash for a missing value, and right-aligned: every numeric
    column and the text columns of numbers named in ``numbers`` (such as "-84.39 ± 0.22"). A column may
    be both: a column of counts that reads "not run yet" in one row is text until every row is recorded."""
    right = list(dict.fromkeys([*frame.select_dtypes("number").columns, *numbers]))
    return (frame.style.hide(axis="index").format(precision=precision, thousands=",", na_rep="—")
            .set_properties(subset=right, **{"text-align": "right"}).set_caption(caption))
