"""The CelebA chapter's data path: the fake folder, its preparation, and the clear error without CelebA.

The chapter itself runs at smoke scale under nbval (``--nbval-lax book``); here the full scale is
started without CelebA to check that it stops at once, before any training, naming the command.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vaelab.data import celeba
from vaelab.data.common import DataMissingError, DataVerificationError

REPO = Path(__file__).resolve().parents[1]


def test_fake_folder_has_celeba_layout_and_prepares(tmp_path):
    root = celeba.make_fake_celeba(tmp_path, n=(5, 2, 3), seed=1)
    folder = root / "celeba" / "img_align_celeba"
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.jpg" for i in range(1, 11)]
    names = celeba.read_partition(root / "celeba" / "list_eval_partition.txt")
    assert {k: len(v) for k, v in names.items()} == {"train": 5, "valid": 2, "test": 3}
    from PIL import Image

    with Image.open(folder / "000001.jpg") as image:
        assert image.size == (178, 218) and image.mode == "RGB"
    # the real preparation path; the official counts are refused, a subset is accepted
    with pytest.raises(DataVerificationError, match="verify=False"):
        celeba.prepare(root, workers=1, verbose=False)
    celeba.prepare(root, verify=False, workers=1, verbose=False)
    for split, n in (("train", 5), ("valid", 2), ("test", 3)):
        images, ids = celeba.load(root, split, verify=False)
        assert images.shape == (n, 3, 64, 64) and images.dtype == np.uint8
    images, ids = celeba.load(root, "test", verify=False)
    assert ids.tolist() == [8, 9, 10]
    np.testing.assert_array_equal(images[0], celeba.crop_resize(folder / "000008.jpg"))
    assert images.std() > 10  # not blank: a ramp, an ellipse and noise


def test_fake_folder_is_reproducible_and_checked(tmp_path):
    a = celeba.make_fake_celeba(tmp_path / "a", n=(2, 0, 1), seed=3)
    b = celeba.make_fake_celeba(tmp_path / "b", n=(2, 0, 1), seed=3)
    for name in ("000001.jpg", "000003.jpg"):
        assert (a / "celeba/img_align_celeba" / name).read_bytes() == (b / "celeba/img_align_celeba" / name).read_bytes()
    with pytest.raises(ValueError, match="three image counts"):
        celeba.make_fake_celeba(tmp_path, n=(0, 1, 1))


def test_missing_celeba_names_the_command(tmp_path):
    with pytest.raises(DataMissingError, match=r"python -m vaelab\.data\.celeba --root"):
        celeba.prepare(tmp_path, verbose=False)


def test_chapter_at_full_scale_without_celeba_stops_at_once(tmp_path):
    import papermill
    env = {k: v for k, v in os.environ.items() if k != "VAELAB_SMOKE"}
    start = time.perf_counter()
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with pytest.raises(papermill.PapermillExecutionError) as info:
            papermill.execute_notebook(str(REPO / "book" / "celeba.ipynb"), str(tmp_path / "out.ipynb"),
                                       parameters={"data_root": str(tmp_path / "data"), "out_dir": str(tmp_path / "runs"),
                                                   "device": "cpu", "precision": "fp32"},
                                       kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                                       log_output=False)
    finally:
        os.environ.clear()
        os.environ.update(old)
    message = str(info.value)
    assert "DataMissingError" in message and "python -m vaelab.data.celeba --root" in message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("checkpoint.pt"))
    assert time.perf_counter() - start < 120  # no training before the data check
