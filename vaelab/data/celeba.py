"""CelebA (Liu, Luo, Wang, Tang 2015) at 64x64: the cached face images used by the HEBAE / WAE chapters.

CelebA cannot be fetched offline; get it from the official source, the CelebA project page of
the Multimedia Laboratory (MMLAB), The Chinese University of Hong Kong
(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), "Align&Cropped Images" (Google Drive or
Baidu links there):

* ``Img/img_align_celeba.zip``: 202,599 aligned and cropped JPGs of 178x218 (width x height),
  ``000001.jpg`` ... ``202599.jpg``;
* ``Eval/list_eval_partition.txt``: one line ``<file name> <0|1|2>`` per image, 0/1/2 =
  train/valid/test with 162,770 / 19,867 / 19,962 images.

Put them as::

    <root>/celeba/img_align_celeba/000001.jpg ...   (or only <root>/celeba/img_align_celeba.zip: it is unpacked)
    <root>/celeba/list_eval_partition.txt

This is also the layout that ``torchvision.datasets.CelebA(root=<root>, download=True)``
writes (its Google-Drive download needs ``gdown`` and often hits the quota).
Then run ``python -m vaelab.data.celeba [--root DIR]``.

Preprocessing, as in the WAE code (Tolstikhin et al. 2018, "closecrop") that HEBAE reuses: a
centre crop of ``crop x crop`` = 140x140 pixels (box left = (W - 140) // 2 = 19, top =
(H - 140) // 2 = 39 for 178x218 images), then a PIL resize to ``size x size`` = 64x64 with
``resample="lanczos"`` (PIL's ``LANCZOS``, formerly ``ANTIALIAS``, the filter of the WAE code;
"bilinear", "bicubic" and "box" can be chosen; all of them antialias when shrinking).
The cache holds, per split (``train``, ``valid``, ``test``):

    <root>/celeba/<split>_images.npy   uint8 (N, 3, 64, 64), in the order of the partition file
    <root>/celeba/<split>_ids.npy      int64 (N,), the image number (000001.jpg -> 1)
    <root>/celeba/<split>_meta.json    the settings and counts, written last (the split is complete)

The work runs in chunks over a pool of worker processes and writes into
``<split>_images.npy.partial`` with a ``<split>_progress.json``: an interrupted run resumes at the
last finished chunk, and the final file appears only, by a rename, when the split is complete.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np

from vaelab.core.config import data_root
from vaelab.core.files import atomic_write_json
from vaelab.data.common import DataMissingError, DataVerificationError, load_npy, run_prepare, save_npy

__all__ = ["OFFICIAL_COUNTS", "SPLITS", "crop_resize", "read_partition", "prepare", "load", "main", "make_fake_celeba"]

NAME = "celeba"
SPLITS = ("train", "valid", "test")  # partition codes 0, 1, 2
OFFICIAL_COUNTS = {"train": 162770, "valid": 19867, "test": 19962}
RESAMPLE = ("lanczos", "bilinear", "bicubic", "box")
BLOCK = 256  # images per task sent to a worker process
_NAME_RE = re.compile(r"^(\d+)\.jpg$")

MISSING_HELP = """CelebA is not in {directory} ({why}). Get it from the official source (no offline copy exists):
  1. From the CelebA page of MMLAB, CUHK (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), "Align&Cropped
     Images", download Img/img_align_celeba.zip (202,599 JPGs, 178x218) and Eval/list_eval_partition.txt.
  2. Put them as
       {directory}/img_align_celeba/000001.jpg ... 202599.jpg   (or just {directory}/img_align_celeba.zip)
       {directory}/list_eval_partition.txt
     (torchvision.datasets.CelebA(root={root!s}, split="all", download=True) writes the same layout).
  3. Run:  python -m vaelab.data.celeba --root {root}"""


def _resample(name: str):
    from PIL import Image

    if name not in RESAMPLE:
        raise ValueError(f"resample={name!r} is unknown: use one of {RESAMPLE}")
    return getattr(getattr(Image, "Resampling", Image), name.upper())


def crop_resize(path, size: int = 64, crop: int = 140, resample: str = "lanczos") -> np.ndarray:
    """One image as uint8 (3, size, size): RGB, centre ``crop x crop`` crop, PIL resize to ``size``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except Exception as err:  # PIL.UnidentifiedImageError, OSError (truncated file), ...
        raise DataVerificationError(f"cannot read the image {path} ({err}): replace it from img_align_celeba.zip") from None
    width, height = image.size
    if width < crop or height < crop:
        raise DataVerificationError(f"{path} is {width}x{height}, smaller than crop={crop}: use a smaller crop")
    left, top = (width - crop) // 2, (height - crop) // 2
    image = image.crop((left, top, left + crop, top + crop)).resize((size, size), _resample(resample))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _process_block(task) -> np.ndarray:
    paths, size, crop, resample = task
    return np.stack([crop_resize(p, size, crop, resample) for p in paths])


def read_partition(path) -> dict[str, list[str]]:
    """``{"train": [file names], "valid": [...], "test": [...]}`` in file order from list_eval_partition.txt."""
    path = Path(path)
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    seen = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2") or not _NAME_RE.match(parts[0]) or parts[0] in seen:
            raise DataVerificationError(
                f"{path}, line {number}: {line!r} is not '<NNNNNN>.jpg <0|1|2>' (or repeats a file): "
                "use the list_eval_partition.txt of the CelebA Eval folder"
            )
        seen.add(parts[0])
        splits[SPLITS[int(parts[1])]].append(parts[0])
    return splits


def _unpack(zip_path: Path, directory: Path, log) -> None:
    """Unpack img_align_celeba.zip into ``directory/img_align_celeba`` atomically (temp folder, then rename)."""
    tmp = directory / ".img_align_celeba.unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"celeba: unpacking {zip_path} ...")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataVerificationError(f"{zip_path} is not a readable zip file ({err}): download it again") from None
    inner = tmp / "img_align_celeba"
    os.replace(inner if inner.is_dir() else tmp, directory / "img_align_celeba")
    shutil.rmtree(tmp, ignore_errors=True)


def _find_source(directory: Path, root_arg, log) -> tuple[Path, Path]:
    def missing(why):
        return DataMissingError(MISSING_HELP.format(directory=directory, why=why, root=root_arg or directory.parent))

    partition = next((p for p in (directory / "list_eval_partition.txt", directory / "Eval" / "list_eval_partition.txt")
                      if p.is_file()), None)
    images = directory / "img_align_celeba"
    if not images.is_dir() and (directory / "img_align_celeba.zip").is_file():
        if partition is None:
            raise missing("list_eval_partition.txt is missing")
        _unpack(directory / "img_align_celeba.zip", directory, log)
    if not images.is_dir():
        raise missing("no img_align_celeba/ folder and no img_align_celeba.zip")
    if partition is None:
        raise missing("list_eval_partition.txt is missing")
    return images, partition


def _settings(size, crop, resample, partition_sha, split, n) -> dict:
    return {"size": size, "crop": crop, "resample": resample, "partition_sha256": partition_sha, "split": split, "n": n}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _split_problem(directory: Path, split: str, settings: dict | None, ids: np.ndarray | None) -> str | None:
    """None when ``split`` is cached completely with ``settings`` (and ``ids``, when given); else why not."""
    meta = _read_json(directory / f"{split}_meta.json")
    if meta is None:
        return "missing"
    if settings is not None and meta != settings:
        return f"built with other settings {meta}"
    if not isinstance(meta, dict) or not isinstance(meta.get("size"), int) or not isinstance(meta.get("n"), int):
        return f"{split}_meta.json is malformed"
    size = meta["size"]
    try:
        images = load_npy(directory / f"{split}_images.npy", mmap=True)
        cached_ids = load_npy(directory / f"{split}_ids.npy")
    except (OSError, ValueError) as err:
        return f"unreadable ({err})"
    if images.dtype != np.uint8 or images.shape != (meta["n"], 3, size, size):
        return f"images are {images.dtype} {images.shape}, expected uint8 {(meta['n'], 3, size, size)}"
    if cached_ids.shape != (meta["n"],) or (ids is not None and not np.array_equal(cached_ids, ids)):
        return "the image ids differ from the partition file"
    return None


def _build_split(directory, split, names, image_dir, settings, workers, chunk, log) -> None:
    """Write ``<split>_images.npy`` chunk by chunk, resumably, then ids and meta."""
    n, size = len(names), settings["size"]
    (directory / f"{split}_meta.json").unlink(missing_ok=True)  # the split is incomplete until rewritten
    if n == 0:  # a subset without this split (verify=False)
        save_npy(directory / f"{split}_images.npy", np.zeros((0, 3, size, size), dtype=np.uint8))
        save_npy(directory / f"{split}_ids.npy", np.zeros(0, dtype=np.int64))
        atomic_write_json(directory / f"{split}_meta.json", settings)
        return
    partial = directory / f"{split}_images.npy.partial"
    progress_path = directory / f"{split}_progress.json"
    progress = _read_json(progress_path)
    done = 0
    if progress is not None and progress.get("settings") == settings and partial.is_file():
        out = np.lib.format.open_memmap(partial, mode="r+")
        done = int(progress["done"]) if out.shape == (n, 3, size, size) else 0
        if done:
            log(f"celeba {split}: resuming at image {done} of {n}")
    if not done:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
    paths = [str(image_dir / name) for name in names]
    block = BLOCK
    workers_cm = contextlib.nullcontext()  # gives None: work inline
    if workers > 1 and n - done > block:
        workers_cm = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(workers)
    start, first = time.perf_counter(), done
    with workers_cm as pool:  # a Pool is terminated on leaving, also after an error or Ctrl-C
        while done < n:
            stop = min(done + chunk, n)
            tasks = [(paths[i:min(i + block, stop)], size, settings["crop"], settings["resample"])
                     for i in range(done, stop, block)]
            blocks = pool.map(_process_block, tasks) if pool else [_process_block(t) for t in tasks]
            out[done:stop] = np.concatenate(blocks)
            out.flush()
            done = stop
            atomic_write_json(progress_path, {"settings": settings, "done": done})
            rate = (done - first) / max(time.perf_counter() - start, 1e-9)
            log(f"celeba {split}: {done}/{n} images ({rate:.0f} images/s)")
    del out
    # verify the finished file before it gets its final name: three images recomputed directly
    check = load_npy(partial, mmap=True)
    for i in sorted({0, n // 2, n - 1}):
        if not np.array_equal(check[i], crop_resize(paths[i], size, settings["crop"], settings["resample"])):
            raise DataVerificationError(f"celeba {split}: cached image {i} differs from {paths[i]}; delete {partial}")
    del check
    os.replace(partial, directory / f"{split}_images.npy")
    save_npy(directory / f"{split}_ids.npy", np.array([int(name[:-4]) for name in names], dtype=np.int64))
    atomic_write_json(directory / f"{split}_meta.json", settings)
    progress_path.unlink(missing_ok=True)


def prepare(
    root=None, size: int = 64, crop: int = 140, resample: str = "lanczos", *, verify: bool = True,
    workers: int | None = None, chunk: int = 4096, verbose: bool = True,
) -> Path:
    """Make sure ``<root>/celeba/`` holds the 64x64 cache of every split; return that folder.

    size, crop, resample: see the module docstring. verify: ``True`` requires the official
    split sizes (162,770 / 19,867 / 19,962) in the partition file; ``False`` accepts any subset
    (tests, a quick look). Always checked: every listed file exists, the cached split sizes equal
    the partition file's, and the first and last image of each split equal a direct computation.
    workers: processes (default: up to 2); chunk: images per resumable step.
    """
    for name, value, low in (("size", size, 1), ("crop", crop, 1), ("chunk", chunk, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    _resample(resample)
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    log = (lambda m: print(m, flush=True)) if verbose else (lambda m: None)
    directory = data_root(root) / NAME
    directory.mkdir(parents=True, exist_ok=True)
    partition_file = next((p for p in (directory / "list_eval_partition.txt", directory / "Eval" / "list_eval_partition.txt")
                           if p.is_file()), None)
    if partition_file is None and all(_split_problem(directory, s, None, None) is None for s in SPLITS):
        meta = _read_json(directory / "train_meta.json")
        if (meta["size"], meta["crop"], meta["resample"]) == (size, crop, resample):
            log(f"celeba: valid cache in {directory} (the source files are gone; not re-checked against them)")
            return directory
    image_dir, partition_file = _find_source(directory, root, log)
    partition_sha = hashlib.sha256(partition_file.read_bytes()).hexdigest()
    names = read_partition(partition_file)
    counts = {split: len(names[split]) for split in SPLITS}
    if verify and counts != OFFICIAL_COUNTS:
        raise DataVerificationError(
            f"{partition_file} lists {counts} images per split, the official CelebA has {OFFICIAL_COUNTS}: "
            "use the official Eval/list_eval_partition.txt, or pass verify=False (--no-verify) for a subset"
        )
    for split in SPLITS:
        settings = _settings(size, crop, resample, partition_sha, split, counts[split])
        ids = np.array([int(name[:-4]) for name in names[split]], dtype=np.int64)
        problem = _split_problem(directory, split, settings, ids)
        if problem is None:
            log(f"celeba {split}: valid cache ({counts[split]} images)")
            continue
        if problem != "missing":
            log(f"celeba {split}: the cache is not usable ({problem}); rebuilding it")
        absent = [name for name in names[split] if not (image_dir / name).is_file()]
        if absent:
            raise DataMissingError(
                f"{len(absent)} of the {counts[split]} {split} images listed in {partition_file} are missing from "
                f"{image_dir} (first: {absent[:3]}): unpack img_align_celeba.zip there again"
            )
        _build_split(directory, split, names[split], image_dir, settings, workers, chunk, log)
        problem = _split_problem(directory, split, settings, ids)
        if problem is not None:
            raise DataVerificationError(f"celeba {split}: the cache just written to {directory} does not read back: {problem}")
        log(f"celeba {split}: cached {counts[split]} images in {directory / f'{split}_images.npy'}")
    return directory


def load(root=None, split: str = "train", *, mmap: bool = False, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 64, 64), ids int64 (N,))`` of ``split`` ("train", "valid" or "test").

    Calls :func:`prepare` first (keyword arguments go to it); ``mmap=True`` maps the file instead
    of reading it (the train split is 2.0 GB).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown for CelebA: use 'train', 'valid' or 'test'")
    kwargs.setdefault("verbose", False)
    directory = prepare(root, **kwargs)
    return load_npy(directory / f"{split}_images.npy", mmap=mmap), load_npy(directory / f"{split}_ids.npy")


def make_fake_celeba(root, n: tuple[int, int, int] = (8, 2, 2), seed: int = 0) -> Path:
    """Write a small fake CelebA source in the official layout under ``<root>/celeba``; return ``root``.

    ``n`` = (train, valid, test) image counts; the JPGs are 178x218 like the aligned CelebA files
    (a smooth colour ramp, a bright ellipse where a face would be, and noise) and are numbered
    000001.jpg ... with a matching ``list_eval_partition.txt``. For tests and smoke-scale runs of
    the real preparation path (``prepare(root, verify=False)``): the pictures are not faces, and
    every number computed from them is meaningless. Existing files are overwritten.
    """
    from PIL import Image

    if len(n) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in n) or n[0] < 1:
        raise ValueError(f"n must be three image counts (train >= 1, valid, test), got {n!r}")
    root = Path(root)
    folder = root / NAME / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:218, 0:178]
    lines, number = [], 0
    for code, count in enumerate(n):
        for _ in range(count):
            number += 1
            base = rng.uniform(0, 160, size=3)
            ramp = base + rng.uniform(-60, 60, size=3) * (cols[..., None] / 178.0)
            cy, cx = 109 + rng.normal(0, 6), 89 + rng.normal(0, 6)
            face = ((rows - cy) / 45.0) ** 2 + ((cols - cx) / 35.0) ** 2 < 1.0
            pixels = ramp + face[..., None] * rng.uniform(40, 110, size=3) + rng.normal(0, 12, size=(218, 178, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{number:06d}.jpg", quality=90)
            lines.append(f"{number:06d}.jpg {code}")
    (root / NAME / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaelab.data.celeba", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: $VAELAB_DATA or ~/.cache/vaelab)")
    parser.add_argument("--size", type=int, default=64, help="output side in pixels (default 64)")
    parser.add_argument("--crop", type=int, default=140, help="centre crop side before resizing (default 140)")
    parser.add_argument("--resample", choices=RESAMPLE, default="lanczos", help="PIL resize filter (default lanczos)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")
    parser.add_argument("--no-verify", action="store_true", help="accept a partition file that is not the official one")
    args = parser.parse_args(argv)
    return run_prepare("CelebA", lambda: prepare(args.root, args.size, args.crop, args.resample,
                                                 verify=not args.no_verify, workers=args.workers))


if __name__ == "__main__":
    raise SystemExit(main())
