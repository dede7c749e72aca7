"""Helpers shared by the data scripts: errors, checksums, the ``.npy`` cache and IDX files.

Cache layout (one folder per data set under the data root of ``vaelab.core.config.data_root``)::

    <root>/<name>/<split>_images.npy     uint8, (N, C, H, W)
    <root>/<name>/<split>_labels.npy     int64, (N,)   (or another key, e.g. ``angles``)

Every ``.npy`` file is written under a temporary name in the same folder and then renamed
(``os.replace`` is atomic on POSIX and Windows), so an interrupted run never leaves a
half-written cache file behind under the final name.

IDX is the format of the MNIST / Fashion-MNIST distribution files
(http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, the number of
dimensions, one big-endian uint32 per dimension, then the data in C order, big-endian.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from vaelab.core import compat
from vaelab.core.config import data_root
from vaelab.core.files import atomic_path

__all__ = [
    "DataMissingError",
    "DataVerificationError",
    "IdxFormatError",
    "SplitCheck",
    "sha256_prefix",
    "save_npy",
    "load_npy",
    "save_split",
    "load_split",
    "read_idx",
    "find_idx_split",
    "check_labelled",
    "resolve_checks",
    "SourceUnavailable",
    "prepare_labelled",
    "idx_folder_source",
    "torchvision_source",
]


class DataMissingError(RuntimeError):
    """A data set is not available from any source; the message says what to run or where to put files."""


class DataVerificationError(RuntimeError):
    """Data were found but their content is not what was expected (checksum, counts, shape)."""


class IdxFormatError(ValueError):
    """A file is not a valid IDX file (bad magic number, dtype code, dimensions or length)."""


def sha256_prefix(array: np.ndarray, length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of the C-contiguous bytes of a uint8 array.

    Only uint8 arrays are accepted so that the digest does not depend on the platform's
    byte order or on the dtype the caller happened to use.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"sha256_prefix needs a uint8 array, got dtype {array.dtype}: convert it first")
    digest = hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()
    return digest[:length]


# --------------------------------------------------------------------------- .npy cache


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` atomically (``vaelab.training.runs.atomic_path``: a unique temporary file in the
    same folder, fsync, ``os.replace``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return Path(path)


def load_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """Read a ``.npy`` file written by :func:`save_npy` (never unpickles objects)."""
    return np.load(Path(path), mmap_mode="r" if mmap else None, allow_pickle=False)


def save_split(directory: str | os.PathLike, split: str, **arrays: np.ndarray) -> None:
    """Save ``<directory>/<split>_<key>.npy`` for every keyword; ``images`` is written last.

    A reader checks that ``images`` exists, so a run interrupted between the files leaves a
    split that is recognised as incomplete rather than a mix of old and new arrays.
    """
    directory = Path(directory)
    if "images" in arrays:
        (directory / f"{split}_images.npy").unlink(missing_ok=True)
    for key in sorted(arrays, key=lambda k: k == "images"):
        save_npy(directory / f"{split}_{key}.npy", arrays[key])


def load_split(
    directory: str | os.PathLike, split: str, keys: Sequence[str] = ("images", "labels"), mmap: bool = False
) -> tuple[np.ndarray, ...] | None:
    """The arrays ``<split>_<key>.npy`` in ``directory``, or None when any of them is missing."""
    directory = Path(directory)
    paths = [directory / f"{split}_{key}.npy" for key in keys]
    if not all(p.is_file() for p in paths):
        return None
    return tuple(load_npy(p, mmap=mmap) for p in paths)


# --------------------------------------------------------------------------- IDX files

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected from its content) or raw, into a native-order array.

    Raises :class:`IdxFormatError` naming the file and the fault (corrupt gzip stream, bad magic
    number, unknown dtype code, wrong length) and telling the user to fetch it again.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    raw = path.read_bytes()
    fix = "delete it and fetch the file again"
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise IdxFormatError(f"{path}: the gzip stream is corrupt or truncated ({err}); {fix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected 0000 followed by a "
            f"dtype code and the number of dimensions); {fix}"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise IdxFormatError(
            f"{path}: unknown IDX dtype code 0x{code:02x} (valid: {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}); {fix}"
        )
    if ndim == 0:
        raise IdxFormatError(f"{path}: IDX header declares 0 dimensions; {fix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header}); {fix}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    expected = count * dtype.itemsize
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{path}: IDX data {what}: dimensions {dims} need {expected} bytes of data, found {len(raw) - header}; {fix}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_split(folder: str | os.PathLike, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` in ``folder`` (raw or ``.gz``), or None if either is absent.

    File names as in the MNIST and Fashion-MNIST distributions, e.g. ``train-images-idx3-ubyte.gz``.
    A raw file is preferred to a ``.gz`` file of the same name (torchvision keeps both).
    """
    folder = Path(folder)
    found = []
    for stem in IDX_NAMES[split]:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class SplitCheck:
    """What one split must be. ``None`` fields are not checked.

    n: number of examples; sha256: prefix of :func:`sha256_prefix` of the uint8 images;
    class_counts: number of examples of each class 0, 1, ... (labelled data sets).
    """

    n: int | None = None
    sha256: str | None = None
    class_counts: tuple[int, ...] | None = None


def resolve_checks(
    verify: bool | Mapping[str, SplitCheck], official: Mapping[str, SplitCheck]
) -> dict[str, SplitCheck]:
    """Turn a ``verify=`` argument into one :class:`SplitCheck` per split.

    ``True``: the data set's official table; ``False``: structural checks only (shape, dtype,
    label range); a mapping ``{split: SplitCheck}``: that table (used by the tests).
    """
    if verify is True:
        return dict(official)
    if verify is False:
        return {split: SplitCheck() for split in official}
    if isinstance(verify, Mapping):
        unknown = set(verify) - set(official)
        missing = set(official) - set(verify)
        if unknown or missing or not all(isinstance(v, SplitCheck) for v in verify.values()):
            raise ValueError(
                f"verify must be True, False or a mapping {{split: SplitCheck}} over the splits "
                f"{sorted(official)}; got {dict(verify)!r}"
            )
        return dict(verify)
    raise TypeError(f"verify must be True, False or a mapping {{split: SplitCheck}}, got {verify!r}")


def check_labelled(
    images: np.ndarray,
    labels: np.ndarray,
    check: SplitCheck,
    *,
    image_shape: tuple[int, ...],
    num_classes: int,
    what: str,
) -> None:
    """Raise :class:`DataVerificationError` unless ``images`` / ``labels`` are well formed and match ``check``.

    ``what`` names the data and their origin for the message, e.g. ``"MNIST train (from /path)"``.
    """
    problems = []
    if images.dtype != np.uint8 or images.ndim != 1 + len(image_shape) or tuple(images.shape[1:]) != image_shape:
        problems.append(f"images are {images.dtype} {images.shape}, expected uint8 (N, {', '.join(map(str, image_shape))})")
    if labels.dtype != np.int64 or labels.ndim != 1 or len(labels) != len(images):
        problems.append(f"labels are {labels.dtype} {labels.shape}, expected int64 ({len(images)},)")
    elif len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        problems.append(f"labels range over [{labels.min()}, {labels.max()}], expected [0, {num_classes - 1}]")
    if not problems:
        if check.n is not None and len(images) != check.n:
            problems.append(f"{len(images)} examples, expected {check.n}")
        if check.class_counts is not None:
            counts = tuple(int(c) for c in np.bincount(labels, minlength=num_classes))
            if counts != tuple(check.class_counts):
                problems.append(f"class counts {list(counts)}, expected {list(check.class_counts)}")
        if check.sha256 is not None:
            digest = sha256_prefix(images, len(check.sha256))
            if digest != check.sha256:
                problems.append(f"sha256 of the image bytes starts {digest}, expected {check.sha256}")
    if problems:
        raise DataVerificationError(f"{what} failed verification: " + "; ".join(problems))


# --------------------------------------------------------------------------- labelled data sets


class SourceUnavailable(Exception):
    """Raised by a source function when its data are not present; the message says why."""


def _logger(verbose: bool):
    return (lambda message: print(message, flush=True)) if verbose else (lambda message: None)


def _cache_problem(directory: Path, checks: Mapping[str, SplitCheck], image_shape, num_classes, title) -> str | None:
    """None when the cache in ``directory`` holds every split and passes ``checks``; "missing" when a file
    of it is absent; else why it is not usable, naming the file(s)."""
    for split, check in checks.items():
        paths = [directory / f"{split}_{key}.npy" for key in ("images", "labels")]
        if not all(p.is_file() for p in paths):
            return "missing"
        arrays = []
        for path in paths:
            try:
                arrays.append(load_npy(path))
            except (ValueError, OSError, EOFError) as err:
                return f"{path} is unreadable ({type(err).__name__}: {err})"
        try:
            check_labelled(*arrays, check, image_shape=image_shape, num_classes=num_classes, what=f"{title} {split}")
        except DataVerificationError as err:
            return f"{paths[0]} and {paths[1]}: {err}"
    return None


def prepare_labelled(
    *,
    name: str,
    title: str,
    root,
    checks: Mapping[str, SplitCheck],
    sources: Sequence[tuple[str, object]],
    image_shape: tuple[int, ...],
    num_classes: int,
    missing_help: str,
    verbose: bool = True,
) -> Path:
    """Shared ``prepare`` of MNIST-like data sets: a valid cache, else the first source that has the data.

    ``sources`` is a list of ``(description, function)``; ``function(directory)`` returns
    ``{split: (images uint8 (N, *image_shape), labels int64 (N,))}`` or raises
    :class:`SourceUnavailable`. Data from a source are verified before they are cached and the
    cache is verified again after writing; a source whose data fail verification stops the run
    with :class:`DataVerificationError` (no silent fall-through to another source).
    """
    log = _logger(verbose)
    directory = data_root(root) / name
    problem = _cache_problem(directory, checks, image_shape, num_classes, title)
    if problem is None:
        log(f"{title}: valid cache in {directory}")
        return directory
    if problem != "missing":
        log(f"{title}: the cache in {directory} is not usable ({problem}); rebuilding it")
    reasons = []
    for description, source in sources:
        try:
            splits = source(directory)
        except SourceUnavailable as err:
            reasons.append(f"{description}: {err}")
            continue
        log(f"{title}: read from {description}")
        for split, (images, labels) in splits.items():
            try:
                check_labelled(
                    images, labels, checks[split], image_shape=image_shape, num_classes=num_classes,
                    what=f"{title} {split} from {description}",
                )
            except DataVerificationError as err:
                raise DataVerificationError(
                    f"{err}. Fix: delete or replace the files of this source and run again "
                    "(verify=False skips the content checks, for data you know to differ)"
                ) from None
        for split, (images, labels) in splits.items():
            save_split(directory, split, labels=labels, images=images)
        problem = _cache_problem(directory, checks, image_shape, num_classes, title)
        if problem is not None:
            raise DataVerificationError(f"{title}: the cache just written to {directory} does not read back: {problem}")
        sizes = ", ".join(f"{split} {len(arrays[0])}" for split, arrays in splits.items())
        log(f"{title}: verified and cached ({sizes}) in {directory}")
        return directory
    tried = "\nSources tried:\n  - " + "\n  - ".join(reasons)
    if problem != "missing":  # a corrupt cache and nothing to rebuild it from: name the file
        raise DataMissingError(f"{title}: the cache is not usable: {problem}; no source could rebuild it. Delete "
                               f"the cache files ({directory}/*.npy) and get the data again:\n" + missing_help + tried)
    raise DataMissingError(missing_help + tried)


def idx_folder_source(folders: Sequence[Path], image_shape: tuple[int, ...], splits: Sequence[str] = ("train", "test")):
    """A source function reading the IDX files of every split from the first folder that has them all."""

    def source(directory: Path):
        for folder in folders:
            found = {split: find_idx_split(folder, split) for split in splits}
            if all(found.values()):
                return {split: _read_idx_pair(*found[split], image_shape) for split in splits}
        raise SourceUnavailable("no complete set of the four IDX files there")

    return source


def _read_idx_pair(image_path: Path, label_path: Path, image_shape: tuple[int, ...]):
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or tuple(images.shape[1:]) != tuple(image_shape[-2:]):
        raise DataVerificationError(
            f"{image_path}: IDX images are {images.dtype} {images.shape}, expected uint8 (N, "
            f"{image_shape[-2]}, {image_shape[-1]}); delete the file and fetch it again"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataVerificationError(
            f"{label_path}: {labels.shape} labels for {len(images)} images in {image_path}; delete both and fetch them again"
        )
    return images.reshape((len(images),) + tuple(image_shape)), labels.astype(np.int64)


def torchvision_source(dataset: str, download: bool, image_shape: tuple[int, ...]):
    """A source function: ``torchvision.datasets.<dataset>(root=directory, download=True)``, then its IDX files.

    torchvision writes to ``<directory>/<dataset>/raw``; the files are read back with :func:`read_idx`
    so that every source goes through the same reader and checks.
    """

    def source(directory: Path):
        if not download:
            raise SourceUnavailable("download=False (--no-download)")
        torchvision = compat.import_torchvision()  # looked up at call time (the tests replace it)
        raw = directory / dataset / "raw"
        try:
            for train in (True, False):
                getattr(torchvision.datasets, dataset)(root=str(directory), train=train, download=True)
        except Exception as err:  # URLError, RuntimeError("Error downloading ..."), ...
            raise SourceUnavailable(f"torchvision download into {raw} failed: {err}") from None
        return idx_folder_source([raw], image_shape)(directory)

    return source


def load_labelled(title: str, prepare, splits, root=None, split: str = "train", **kwargs):
    """``(images, labels)`` of ``split`` of a labelled image data set, after its ``prepare(root, **kwargs)``
    (quiet unless ``verbose=True``; the first call may build the cache). The ``load`` of ``mnist`` and
    ``fashion_mnist``."""
    if split not in splits:
        raise ValueError(f"split={split!r} is unknown for {title}: use 'train' or 'test'")
    kwargs.setdefault("verbose", False)
    return load_split(prepare(root, **kwargs), split)


def labelled_main(name: str, title: str, doc: str, prepare, splits, argv=None) -> int:
    """The command line of a labelled image data set (``python -m vaelab.data.<name>``)."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m vaelab.data.{name}", description=doc.split("\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: $VAELAB_DATA or ~/.cache/vaelab)")
    parser.add_argument("--no-download", action="store_true", help="never try the internet download")
    args = parser.parse_args(argv)

    def describe(directory):
        for split in splits:
            images, labels = load_split(directory, split, mmap=True)
            print(f"  {directory / f'{split}_images.npy'}: {images.dtype} {images.shape}; "
                  f"labels {labels.dtype} {labels.shape}")

    return run_prepare(title, lambda: prepare(args.root, download=not args.no_download), describe)


def run_prepare(title: str, call, describe=None) -> int:
    """Run a data script's ``prepare`` for its command line: 0 on success, 1 with the error's instructions."""
    import sys
    import time

    start = time.perf_counter()
    try:
        directory = call()
    except (DataMissingError, DataVerificationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if describe is not None:
        describe(directory)
    print(f"{title} ready in {directory} ({time.perf_counter() - start:.1f} s)")
    return 0
