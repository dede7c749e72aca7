"""The check of the package's own arguments (sample counts, batch sizes, dimensions): a ``ValueError`` that
names the argument. A chapter's parameters are checked by ``vaelab.lab.checks``, which also converts
papermill's strings."""
from __future__ import annotations

__all__ = ["positive_int"]


def positive_int(name: str, value, hint: str = "") -> int:
    """``value`` if it is an int >= 1 (not a bool), else a ``ValueError`` naming the package's argument ``name``.

    The check of the package's own functions (sample counts, batch sizes, dimensions), which, unlike a
    chapter's parameters, convert nothing.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}{hint}")
    return value
