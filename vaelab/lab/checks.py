"""Checks of a chapter's parameters, run right after its parameters (and smoke) cell.

A chapter is run with papermill (``papermill book/NN.ipynb out.ipynb -p name value``), which
passes each value as the command line spells it: ``-p train_size 1e3`` arrives as the float
1000.0, ``-p lam '[1,2]'`` as the string ``"[1,2]"`` and ``-p resume false`` as the string
``"false"`` (only ``True``, ``False`` and ``None`` are converted). Without a check, such a value
fails minutes later, deep inside slicing or training, or is silently misread (a string iterated
character by character). Every check here converts what can be converted without guessing (an
integral float to an int, a numeric string to a number, ``"false"`` to False, a list literal to a
list) and otherwise raises :class:`ParameterError` (a ``ValueError``) whose message names the
parameter as the chapter calls it, the bad value and the fix, e.g.
``latent_dim must be an integer >= 1, got 0: pass -p latent_dim 20``. The package's own functions
check their arguments with :func:`positive_int` (a plain ``ValueError``, nothing converted).

:func:`replace_params` is the smoke cell's helper: it replaces parameters (smoke scale) and prints
what it replaced, old -> new.
"""
from __future__ import annotations

import ast
import builtins  # the checks take keyword arguments named min and max
import json
import math
import numbers
import os
import re
from collections.abc import Mapping, MutableMapping, Sequence

from vaelab.core.validate import positive_int

__all__ = ["ParameterError", "check_int", "check_float", "check_bool", "check_choice", "check_number_list",
           "check_choice_list", "check_number_dict", "check_path", "check_device", "replace_params", "positive_int"]

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ParameterError(ValueError):
    """A chapter parameter has a wrong type or value; the message names it and the fix."""


# ----------------------------------------------------------------------------- messages
def _fmt(value) -> str:
    """A value as a papermill command line would spell it (strings without quotes)."""
    return value if isinstance(value, str) else repr(value)


def _fail(name: str, value, what: str, example, *, yaml: bool = False, detail: str = "",
          note: str = "") -> ParameterError:
    """The error: "<name> must be <what> (<note>), got <value> (<detail>): pass -p <name> <example>"."""
    if note:
        what = f"{what} ({note})"
    if yaml:  # lists and dicts: papermill's -y takes YAML
        fix = f'pass -y "{name}: {_fmt(example)}"'
    else:
        fix = f"pass -p {name} {_fmt(example)}"
    detail = f" ({detail})" if detail else ""
    return ParameterError(f"{name} must be {what}, got {value!r}{detail}: {fix}")


def _range_text(kind: str, lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {hi}"
    return kind


def _in_range(x, lo, hi, lo_open=False, hi_open=False) -> bool:
    if lo is not None and (x < lo or (lo_open and x == lo)):
        return False
    if hi is not None and (x > hi or (hi_open and x == hi)):
        return False
    return True


def _int_example(lo, hi):
    return lo if lo is not None else (hi if hi is not None else 0)


def _float_example(lo, hi, lo_open, hi_open):
    if lo is not None and hi is not None:
        return (lo + hi) / 2 if (lo_open or hi_open) else float(lo)
    if lo is not None:
        return float(lo) + 1.0 if lo_open else float(lo)
    if hi is not None:
        return float(hi) - 1.0 if hi_open else float(hi)
    return 1.0


# ----------------------------------------------------------------------------- scalars
def _as_int(value):
    """value as an int, or None when it is not an integer (bools are not integers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number.is_integer() else None
    return None


def _as_float(value):
    """value as a finite float, or None (bools are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _none_text(text: str) -> bool:
    return isinstance(text, str) and text.strip() in ("None", "none", "null")


def check_int(name: str, value, *, min: int | None = None, max: int | None = None, example=None,
              none_ok: bool = False, note: str = "") -> int | None:
    """``value`` as an int in ``[min, max]`` (either bound may be None).

    Accepts ints, integral floats (papermill's ``-p train_size 1e3`` is 1000.0) and numeric strings
    (``"20"``, ``"1e3"``); refuses bools, non-integral numbers (``1000.5``: the message suggests the
    nearest integer when it is in range) and anything else. ``none_ok=True`` also lets None (and the
    string ``"None"``) through, returned as None. ``example`` is the valid value the message suggests
    (default: a bound, else 0); ``note`` says in the message where a bound comes from.
    """
    what = _range_text("an integer", min, max)
    if none_ok:
        what = f"None or {what}"
    if example is None:
        example = _int_example(min, max)
    if none_ok and (value is None or _none_text(value)):
        return None
    number = _as_int(value)
    if number is None:
        as_float = _as_float(value)
        if as_float is None:
            raise _fail(name, value, what, example, note=note)
        if _in_range(round(as_float), min, max):
            example = round(as_float)
        raise _fail(name, value, what, example, detail="not a whole number", note=note)
    if not _in_range(number, min, max):
        raise _fail(name, value, what, example, note=note)
    return number


def check_float(name: str, value, *, min: float | None = None, max: float | None = None,
                min_open: bool = False, max_open: bool = False, example=None, note: str = "") -> float:
    """``value`` as a finite float in the range given by ``min`` and ``max``.

    ``min_open`` / ``max_open`` exclude the bound itself (``min=0, min_open=True``: a number > 0).
    Accepts ints, floats and numeric strings (``"1e-3"``); refuses bools, NaN, infinities and
    anything else. ``example`` is the valid value the message suggests; ``note`` says in the message
    where a bound comes from.
    """
    what = _range_text("a number", min, max, min_open, max_open)
    if example is None:
        example = _float_example(min, max, min_open, max_open)
    number = _as_float(value)
    if number is None or not _in_range(number, min, max, min_open, max_open):
        raise _fail(name, value, what, example, note=note)
    return number


def check_bool(name: str, value) -> bool:
    """``value`` as a bool: True/False, the ints 1/0, or the strings ``"true"``/``"false"``/``"1"``/``"0"``
    in any case (papermill passes ``-p resume false`` as the string ``"false"``). Anything else raises:
    a non-empty string such as ``"false"`` must never count as True."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(int(value))
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype == bool:
        return bool(value)  # a numpy bool
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ParameterError(f"{name} must be True or False, got {value!r}: pass -p {name} True or -p {name} False")


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    """``value`` as one of the strings ``choices`` (matched exactly, else ignoring case; the canonical
    spelling is returned)."""
    choices = tuple(choices)
    if isinstance(value, str):
        if value in choices:
            return value
        folded = [c for c in choices if c.lower() == value.strip().lower()]
        if len(folded) == 1:
            return folded[0]
    listed = ", ".join(repr(c) for c in choices)
    raise _fail(name, value, f"one of {listed}", choices[0])


def check_path(name: str, value, *, none_ok: bool = False, example="runs/out") -> str | None:
    """``value`` as a path string (a non-empty str or an ``os.PathLike``; None too with ``none_ok``)."""
    if none_ok and (value is None or _none_text(value)):
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.strip():
        return value
    what = "None or a path (a non-empty string)" if none_ok else "a path (a non-empty string)"
    raise _fail(name, value, what, example)


def check_device(name: str, value) -> str:
    """``value`` as a device string: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Only the spelling is checked; whether the device exists is ``vaelab.get_device``'s question.
    """
    if hasattr(value, "type") and hasattr(value, "index") and not isinstance(value, str):
        value_text = str(value)  # a torch.device
    else:
        value_text = value.strip().lower() if isinstance(value, str) else None
    if value_text is not None and _DEVICE.match(value_text):
        return value_text
    raise _fail(name, value, "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", "auto")


# ----------------------------------------------------------------------------- lists and dicts
def _parse_literal(value):
    """A string holding a JSON or Python literal, parsed safely; other values unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _listed(value, scalar: bool):
    """value as a list of items, or None when it is not a list (a scalar counts when ``scalar``)."""
    value = _parse_literal(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays and scalars
    if isinstance(value, (list, tuple)):
        return list(value)
    if scalar and isinstance(value, (numbers.Real, str)) and not isinstance(value, bool):
        return [value]
    return None


def check_number_list(name: str, value, *, integer: bool = False, min: float | None = None,
                      max: float | None = None, min_open: bool = False, min_len: int = 1,
                      scalar: bool = False, example=None) -> list:
    """``value`` as a list of numbers (ints when ``integer``), each in the range of ``min``/``max``.

    Accepts a list or tuple, or a string holding a JSON/Python list literal such as ``'[1, 2]'``
    (papermill's ``-p lam '[1,2]'``), parsed with ``json``/``ast.literal_eval`` (never ``eval``);
    with ``scalar=True`` a single number (or numeric string) is the list of that number. Items are
    converted as by :func:`check_int` / :func:`check_float`. At least ``min_len`` items.
    """
    kind = "integers" if integer else "numbers"
    what = _range_text(f"a list of {kind}", min, max, min_open)
    if min_len > 1:
        what += f", at least {min_len} of them"
    if scalar:
        what = f"a number or {what}"
    if example is None:
        one = _int_example(min, max) if integer else _float_example(min, max, min_open, False)
        example = [one] * builtins.max(1, min_len)
    items = _listed(value, scalar)
    if items is None:
        raise _fail(name, value, what, example, yaml=True)
    if len(items) < min_len:
        raise _fail(name, value, what, example, yaml=True, detail=f"{len(items)} item(s)")
    out = []
    for i, item in enumerate(items):
        number = _as_int(item) if integer else _as_float(item)
        if number is None or not _in_range(number, min, max, min_open):
            raise _fail(name, value, what, example, yaml=True, detail=f"item {i} is {item!r}")
        out.append(number)
    return out


def check_choice_list(name: str, value, choices: Sequence[str], *, min_len: int = 1) -> list[str]:
    """``value`` as a list of distinct strings from ``choices``: one name, a list or tuple of names, or
    a string holding a list literal (``'["vae", "wae"]'``)."""
    choices = tuple(choices)
    what = f"one of {', '.join(repr(c) for c in choices)} or a list of them"
    example = list(choices)
    items = _listed(value, scalar=True)
    if items is None or len(items) < min_len:
        raise _fail(name, value, what, example, yaml=True)
    out = []
    for i, item in enumerate(items):
        try:
            out.append(check_choice(name, item, choices))
        except ParameterError:
            raise _fail(name, value, what, example, yaml=True, detail=f"item {i} is {item!r}") from None
    if len(set(out)) != len(out):
        raise _fail(name, value, what, example, yaml=True, detail="a name is repeated")
    return out


def check_number_dict(name: str, value, *, key_min: int | None = None, value_min: float | None = None,
                      value_min_open: bool = False, example=None) -> dict[int, float]:
    """``value`` as a dict of int keys to float values (``{30: 2, 50: 5}``): a mapping, or a string
    holding a JSON/Python dict literal. Keys may be strings of integers (JSON's keys always are)."""
    what = (f"a dict of {_range_text('integers', key_min, None)} to "
            f"{_range_text('numbers', value_min, None, value_min_open)}")
    if example is None:
        example = {_int_example(key_min, None): _float_example(value_min, None, value_min_open, False)}
    parsed = _parse_literal(value)
    if not isinstance(parsed, Mapping):
        raise _fail(name, value, what, example, yaml=True)
    out = {}
    for key, item in parsed.items():
        k, v = _as_int(key), _as_float(item)
        if k is None or not _in_range(k, key_min, None):
            raise _fail(name, value, what, example, yaml=True, detail=f"key {key!r}")
        if v is None or not _in_range(v, value_min, None, value_min_open):
            raise _fail(name, value, what, example, yaml=True, detail=f"value {item!r} of key {key!r}")
        out[k] = v
    return out


# ----------------------------------------------------------------------------- smoke scale
def _short(value, width: int = 36) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def replace_params(namespace: MutableMapping, why: str = "smoke scale", *, quiet: bool = False,
                   **values) -> dict:
    """Set parameters in ``namespace`` (a notebook's ``globals()``) and print what changed, old -> new.

    Used by the smoke cell: ``replace_params(globals(), epochs=1, train_size=2_000)`` prints
    ``smoke scale replaces: epochs 10 -> 1, train_size 50000 -> 2000``. Every name must already be a
    parameter of the namespace (a misspelt name raises ``KeyError`` instead of adding a variable).
    Returns ``{name: (old, new)}`` for the values that changed.
    """
    unknown = [key for key in values if key not in namespace]
    if unknown:
        raise KeyError(f"replace_params: {unknown} are not parameters of this notebook (misspelt?)")
    changed = {}
    for key, new in values.items():
        old = namespace[key]
        if not (type(old) is type(new) and old == new):
            changed[key] = (old, new)
        namespace[key] = new
    if changed and not quiet:
        parts = [f"{key} {_short(old)} -> {_short(new)}" for key, (old, new) in changed.items()]
        lines, line = [], f"{why} replaces:"
        for i, part in enumerate(parts):  # lines of at most 100 characters, broken between items
            piece = part + ("," if i < len(parts) - 1 else "")
            if len(line) + 1 + len(piece) > 100 and i > 0:
                lines.append(line)
                line = " "
            line += " " + piece
        print("\n".join([*lines, line]))
    return changed


