"""Atomic writes and the book's JSON layout: a reader sees the old file or the new one, never a partial one."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write", "dumps_json", "atomic_write_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temporary file beside ``path`` to write in the block; after it, fsync and rename onto ``path``.

    Readers see the old file or the new one, never a partial one, and two writers never share a
    temporary name. The directory entry is synced too, so the rename survives a power loss. If the
    block raises, the temporary file is removed and ``path`` is untouched. The parent folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # as a plain open() would leave it (mkstemp makes 0600)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _is_flat(value: Any) -> bool:
    """A list of scalars, or a list of such lists (a trace, a matrix of codes)."""
    scalar = (int, float, str, bool, type(None))
    return isinstance(value, list) and all(
        isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(u, scalar) for u in v))
        for v in value)


def dumps_json(obj: Any, indent: int = 2, _level: int = 0) -> str:
    """Key-sorted JSON, indented like ``json.dumps(indent=2)`` except that a list of scalars or
    of lists of scalars (a trace, a matrix of codes) stays on one line: a record that keeps its
    traces and codes is a few hundred lines, not one line per number. ``json.loads`` gives back
    what ``json.dumps`` would."""
    if _is_flat(obj):
        return json.dumps(obj)
    pad, inner = " " * (indent * _level), " " * (indent * (_level + 1))
    if isinstance(obj, dict) and obj:
        # each key as json.dumps writes it (an int key 1 becomes "1")
        items = [f"{inner}{json.dumps({k: 0})[1:-4]}: {dumps_json(obj[k], indent, _level + 1)}"
                 for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)) and obj:
        items = [inner + dumps_json(v, indent, _level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``atomic_write`` of ``obj`` as key-sorted JSON (``dumps_json``)."""
    return atomic_write(path, (dumps_json(obj) + "\n").encode("utf8"))
