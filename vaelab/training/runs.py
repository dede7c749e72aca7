"""A run directory you can trust: its identity, its checkpoint, its one writer (chapter 00).

``vaelab.fit(..., out_dir=...)`` keeps a long run in a directory and resumes it when called again.
Three things make that safe, each here as one small piece:

* **Identity** (``run_identity``): everything that changes what a run computes: the model's class
  and constructor settings (read off every submodule), the schedule and its settings, the training
  (and validation) data's name, size, shape, binarisation, scale, seed and a SHA-256 of the pixels,
  the precision, the learning rate, its factor (by name or ``repr``, and its value at every epoch), batch size, seed, gradient
  clipping, early stopping and the target number of epochs. It is saved in the checkpoint; a
  resume with any difference is refused by ``IdentityError``, which names each differing setting
  with both values. A larger ``epochs`` than the saved target is the one allowed difference: the
  run continues. The speed switches ``channels_last`` and ``compile`` are not part of it (they
  change results only by rounding).
* **Checkpoint file** (``save_checkpoint``, ``load_checkpoint``): ``torch.save`` of
  ``{"format", "sha256", "payload"}`` where ``payload`` is the serialised state (bytes as a uint8
  tensor); it loads with
  ``torch.load(weights_only=True)`` (no pickled code), and a file whose payload does not match its
  checksum (a torn write, a flipped byte) is refused with its path.
* **One writer** (``RunLock``): an exclusive ``flock`` on ``out_dir/.lock`` for the length of a run;
  a second process gets an error naming the holder (pid, host, start time). The kernel releases
  the lock when the holder dies, so ``kill -9`` leaves nothing to clean up. Every file is written
  under a unique temporary name, flushed to disk (fsync) and renamed into place (``atomic_write``);
  the temporary files of a save cut short by a kill are removed by the next run of the directory
  (``remove_stale_temporaries``, called with the lock held).
* **Disk space** (``check_free_space``, ``DiskFullError``): a run refuses to start where its
  checkpoint (estimated from the model and optimiser state) would not fit, and a save that runs
  out of space says which file, that the epoch was not saved, and how much space it needs.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from vaelab.core.files import atomic_path, atomic_write, atomic_write_json, dumps_json  # noqa: F401

__all__ = ["CheckpointError", "IdentityError", "RunLockedError", "DiskFullError", "atomic_path", "atomic_write",
           "atomic_write_json", "check_writable", "check_free_space", "checkpoint_size_estimate",
           "remove_stale_temporaries", "save_checkpoint", "load_checkpoint", "model_settings", "schedule_settings",
           "data_identity", "run_identity", "identity_diff", "RunLock", "FORMAT"]

FORMAT = "vaelab-checkpoint-2"
_PRIMITIVES = (bool, int, float, str, type(None))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not belong to this run."""


class IdentityError(CheckpointError):
    """The run directory holds a run with other settings; the message lists every difference."""


class RunLockedError(RuntimeError):
    """Another process is writing to the run directory."""


class DiskFullError(OSError):
    """No room for a checkpoint: the message names the file, what was not saved and the space needed."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


# ----------------------------------------------------------------------------- files
def check_writable(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and prove it writable by writing and removing a file; else a clear error.

    Called before any training, so a run never fails after its first epoch for want of a directory.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"out_dir {str(out)!r} is not a writable directory ({err.strerror or err}): "
                              "pass an out_dir you can write to") from None
    return out


def remove_stale_temporaries(out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Remove ``out_dir/.<name>.*.tmp``: the temporary files of a save of ``name`` that was killed
    before its rename (``atomic_path``). Call it only while holding the directory's ``RunLock``
    (no other writer can be mid-save). Returns the files removed."""
    removed = []
    for tmp in sorted(Path(out_dir).glob(f".{name}.*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


# ----------------------------------------------------------------------------- disk space
def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def checkpoint_size_estimate(model: nn.Module, steps: int, logged: int = 8, best_copy: bool = False) -> int:
    """About how many bytes a checkpoint of ``fit`` takes: the model's state, Adam's two moments per
    parameter (the same size as the parameters), a copy of the weights for early stopping
    (``best_copy``), ``logged`` numbers per step for ``steps`` steps of history, and 64 KiB of the rest."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return state + 2 * params + (state if best_copy else 0) + 10 * logged * steps + 2**16


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the file system of ``path`` (for an unprivileged user)."""
    return shutil.disk_usage(path).free


def check_free_space(out_dir: str | os.PathLike, needed: int) -> None:
    """Raise ``DiskFullError`` before any training when ``out_dir`` has less than ``needed`` bytes free."""
    free = free_bytes(out_dir)
    if free < needed:
        raise DiskFullError(
            f"not enough space for the checkpoint in {out_dir}: it needs about {_mb(needed)} (model and optimiser "
            f"state), {_mb(free)} are free, so no epoch could be saved; nothing was trained. Free at least "
            f"{_mb(needed - free)} there, or pass another out_dir")


def _disk_full(path: Path, size: int, epoch: int | None, last_good: str | None) -> DiskFullError:
    what = f"epoch {epoch} was not saved" if epoch is not None else "nothing was saved"
    free = free_bytes(path.parent)
    then = f"it resumes from {last_good}" if last_good else "it starts afresh (no earlier state was saved)"
    return DiskFullError(
        f"no space left on the device of {path}: {what} (the checkpoint is {_mb(size)}, {_mb(free)} are free). "
        f"Free at least {_mb(max(size - free, 0) + 2**20)} there, or move the run directory elsewhere, and run "
        f"again: {then}")


# ----------------------------------------------------------------------------- checkpoint file
def save_checkpoint(state: dict, path: str | os.PathLike, *, epoch: int | None = None,
                    last_good: str | None = None) -> Path:
    """Serialise ``state`` with ``torch.save``, wrap it with its SHA-256, and write it atomically.

    A full disk (or quota) raises ``DiskFullError`` naming ``path``, that ``epoch`` was not saved,
    the space needed and ``last_good`` (where a rerun resumes, e.g. "the checkpoint of epoch 3";
    None: nothing saved yet); the old file is left as it was.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, outer)
    data = outer.getvalue()
    path = Path(path)
    try:
        return atomic_write(path, data)
    except OSError as err:
        if err.errno in _DISK_FULL:
            raise _disk_full(path, len(data), epoch, last_good) from None
        raise


def _load_failure(err: Exception) -> str:
    """Why ``torch.load`` failed, in our words: torch's advice to load with ``weights_only=False`` (running
    whatever code the file holds) is never passed on."""
    text = str(err)
    if "weights_only" in text or "Weights only" in text:
        return f"{type(err).__name__}: its contents are not a plain state (a corrupt header, or pickled code)"
    first = (text.strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:200]}"


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``: ``weights_only`` loading, checksum verified.

    Raises ``CheckpointError`` naming the file when it cannot be read, is not a vaelab checkpoint,
    or its contents do not match their checksum (corrupted); ``FileNotFoundError`` when absent.
    """
    path = Path(path)
    fix = "delete it to start afresh, or pass resume=False to overwrite it"
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated file, wrong format, pickled objects
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({_load_failure(err)}); it is "
                              f"corrupt or not a vaelab checkpoint: {fix}") from None
    payload = outer.get("payload") if isinstance(outer, dict) else None
    if (not isinstance(outer, dict) or outer.get("format") != FORMAT or not isinstance(payload, torch.Tensor)
            or payload.dtype != torch.uint8):
        raise CheckpointError(f"{str(path)!r} is not a vaelab checkpoint (format {FORMAT!r}): {fix}")
    payload = payload.numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted (its contents do not match their "
                              f"SHA-256): {fix}")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({_load_failure(err)}): {fix}") from None


# ----------------------------------------------------------------------------- identity
def _plain(value):
    """``value`` as JSON-like data when it is a setting (numbers, strings, tuples of them), else None."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, torch.Size):
        return list(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, _PRIMITIVES) for v in value):
        return list(value)
    if isinstance(value, torch.dtype):
        return str(value)
    return None


def model_settings(model: nn.Module) -> dict[str, Any]:
    """The model's class and constructor settings, read off every submodule.

    For each submodule (``""`` is the model): its class, every public attribute that is a number,
    string or tuple of them (``latent_dim``, ``likelihood``, HEBAE's ``form``, ``in_features``, ...)
    and the shape of every parameter and buffer it owns. Flat keys such as ``"encoder.0.in_features"``.
    """
    out: dict[str, Any] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        out[f"{prefix}class"] = f"{type(module).__module__}.{type(module).__qualname__}"
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            plain = _plain(value)
            if plain is not None or value is None:
                out[prefix + key] = plain
        for key, tensor in list(module._parameters.items()) + list(module._buffers.items()):
            if tensor is not None:
                out[f"{prefix}{key}.shape"] = list(tensor.shape)
    return out


def schedule_settings(schedule) -> str:
    """The schedule's class and settings: its ``repr`` (every schedule of vaelab shows its settings there)."""
    return _describe(schedule)


def _describe(obj) -> str:
    """``repr(obj)`` when its class defines one (settings, no memory address), else its qualified name."""
    if type(obj).__repr__ is object.__repr__ or callable(obj) and hasattr(obj, "__code__"):
        owner = obj if hasattr(obj, "__qualname__") else type(obj)
        return f"{owner.__module__}.{owner.__qualname__}"
    return repr(obj)


def data_identity(data) -> dict[str, Any]:
    """Name, size, image shape, binarisation, scale, seed and the SHA-256 of the pixels of an ``ImageData``.

    The hash is computed once per ``ImageData`` (on the host; about 0.1 s for MNIST) and cached on it.
    """
    digest = getattr(data, "_sha256", None)
    if digest is None:
        pixels = data.images.detach().contiguous().cpu().numpy()
        digest = hashlib.sha256(memoryview(pixels).cast("B")).hexdigest()
        data._sha256 = digest
    return {"name": getattr(data, "name", "") or "unnamed", "size": len(data), "shape": list(data.shape),
            "binarize": data.binarize, "scale": data.scale, "seed": data.seed, "sha256": digest}


def run_identity(*, model: nn.Module, schedule, train, valid, epochs: int, batch_size: int, lr: float,
                 lr_factor: Callable[[int], float], seed: int, precision: str, grad_clip, drop_last: bool,
                 patience, patience_after: int) -> dict[str, Any]:
    """Everything that changes what ``fit`` computes, as flat JSON-like data (module docstring)."""
    ident: dict[str, Any] = {f"model.{k}": v for k, v in model_settings(model).items()}
    ident["schedule"] = schedule_settings(schedule)
    for split, data in (("train", train), ("valid", valid)):
        if data is None:
            ident[f"{split}_data"] = None
        else:
            ident.update({f"{split}_data.{k}": v for k, v in data_identity(data).items()})
    ident.update({"epochs": epochs, "batch_size": batch_size, "lr": float(lr), "seed": seed,
                  "precision": precision, "grad_clip": grad_clip, "drop_last": drop_last,
                  "patience": patience, "patience_after": patience_after,
                  "lr_factor": _describe(lr_factor),
                  "lr_factors": [float(lr_factor(e)) for e in range(1, epochs + 1)]})
    return ident


def identity_diff(saved: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The settings that differ between two identities, as (name, saved value, this run's value).

    ``epochs``: only a smaller target than the saved one differs (a larger one continues the run);
    ``lr_factors`` are compared over the epochs both runs cover.
    """
    missing = object()
    diffs = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key, missing), now.get(key, missing)
        if key == "epochs":
            if a is not missing and b is not missing and b < a:
                diffs.append((key, a, b))
            continue
        if key == "lr_factors" and isinstance(a, list) and isinstance(b, list):
            n = min(len(a), len(b))
            bad = [e + 1 for e in range(n) if not math.isclose(a[e], b[e], rel_tol=1e-12, abs_tol=0.0)]
            if bad:
                diffs.append((f"lr_factors (first differing epoch {bad[0]})", a[bad[0] - 1], b[bad[0] - 1]))
            continue
        if a != b:
            diffs.append((key, "(absent)" if a is missing else a, "(absent)" if b is missing else b))
    return diffs


def describe_diff(path: Path, diffs: list[tuple[str, Any, Any]], limit: int = 12) -> str:
    """The ``IdentityError`` message: each differing setting with both values, then the fix."""
    lines = [f"  {key}: checkpoint has {_short(a)}, this run has {_short(b)}" for key, a, b in diffs[:limit]]
    if len(diffs) > limit:
        lines.append(f"  ... and {len(diffs) - limit} more")
    return (f"{path} was written by a run with other settings ({len(diffs)} differ):\n" + "\n".join(lines)
            + "\nUse another out_dir for the new settings, pass the old ones to continue that run, "
              "or resume=False to overwrite it.")


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


# ----------------------------------------------------------------------------- one writer
class RunLock:
    """Exclusive lock on ``out_dir/.lock`` while a run writes there (``with RunLock(out_dir): ...``).

    The lock file holds the holder's pid, host and start time, which a refused second writer is
    shown. ``flock`` locks belong to the open file, so the kernel drops them when the holder exits
    or is killed; a stale ``.lock`` file is harmless. ``name`` picks another lock file in the same
    directory (a sweep's driver locks ``--out/.sweep.lock``, leaving ``.lock`` to the chapter).
    ``held_by()`` says whether someone holds it, without taking it.
    """

    def __init__(self, out_dir: str | os.PathLike, name: str = ".lock"):
        self.path = Path(out_dir) / name
        self._fd: int | None = None

    def holder(self) -> str:
        """What the lock file says of its holder (pid, host, start), or "unknown"."""
        try:
            return self.path.read_text(encoding="utf8").strip() or "unknown"
        except OSError:
            return "unknown"

    def held_by(self) -> str | None:
        """The holder's description (pid, host, start) when another open file holds the lock, else None.
        Takes the lock for an instant when it is free, and writes nothing."""
        if not self.path.parent.is_dir():
            return None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            return self.holder()
        finally:
            os.close(fd)  # closing drops our lock, if we got it
        return None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.holder()
            raise RunLockedError(f"{self.path.parent} is in use by another run ({holder}): wait for it to "
                                 "finish, or use another out_dir") from None
        info = (f"pid {os.getpid()} on {socket.gethostname()}, started "
                f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode("utf8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
