"""Device-resident data sets, binarisation, splits and index batches (vaelab.data)."""
import sys
import types

import numpy as np
import pytest
import torch

from vaelab.data import images as vdata
from vaelab.data.images import ImageData, batch_indices, load_dataset


def grey(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 4, 4, generator=g) * 255).to(torch.uint8)


def test_batch_scales_to_unit_and_signed():
    x = grey(10)
    torch.testing.assert_close(ImageData(x).batch(), x.float() / 255)
    torch.testing.assert_close(ImageData(x, scale="signed").batch(), x.float() / 127.5 - 1)


def test_fixed_binarisation_is_bernoulli_of_the_grey_value_and_fixed():
    x = grey()
    d = ImageData(x, binarize="fixed", seed=3)
    b1, b2 = d.batch(), d.batch()
    assert torch.equal(b1, b2) and set(b1.unique().tolist()) <= {0.0, 1.0}
    # E[b] = p: mean over 32,000 pixels agrees within 4 standard errors
    p = x.float() / 255
    se = (p * (1 - p)).mean().sqrt() / np.sqrt(p.numel())
    assert abs(b1.mean() - p.mean()) < 4 * se
    # same seed, same binarisation; another seed, another one
    assert torch.equal(ImageData(x, binarize="fixed", seed=3).batch(), b1)
    assert not torch.equal(ImageData(x, binarize="fixed", seed=4).batch(), b1)


def test_dynamic_binarisation_resamples_every_batch_and_is_seeded():
    x = grey()
    d = ImageData(x, binarize="dynamic", seed=1)
    b1, b2 = d.batch(), d.batch()
    assert not torch.equal(b1, b2)
    assert set(b1.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close((b1 + b2).mean() / 2, x.float().mean() / 255, atol=5e-3, rtol=0)
    again = ImageData(x, binarize="dynamic", seed=1)
    assert torch.equal(again.batch(), b1)
    state = d.rng_state()
    b3 = d.batch()
    d.set_rng_state(state)
    assert torch.equal(d.batch(), b3)


def test_batch_indices_cover_each_index_once():
    idx = list(batch_indices(103, 10, generator=torch.Generator().manual_seed(0)))
    assert [len(i) for i in idx] == [10] * 10 + [3]
    assert sorted(torch.cat(idx).tolist()) == list(range(103))
    assert [len(i) for i in batch_indices(103, 10, drop_last=True)] == [10] * 10
    assert torch.equal(torch.cat(list(batch_indices(5, 2, shuffle=False))), torch.arange(5))


@pytest.fixture
def fake_source(monkeypatch):
    """A data source module in the vaelab.data interface, registered as 'fake'."""
    mod = types.ModuleType("fake_source")
    train_x = np.arange(500, dtype=np.uint8).reshape(500, 1, 1, 1).repeat(4, axis=2)
    train_y = np.arange(500) % 10
    test_x, test_y = np.full((50, 1, 4, 1), 7, np.uint8), np.zeros(50, np.int64)

    def load(root=None, split="train"):
        return (train_x, train_y) if split == "train" else (test_x, test_y)

    mod.load = load
    monkeypatch.setitem(sys.modules, "fake_source", mod)
    monkeypatch.setitem(vdata.DATASETS, "fake", "fake_source")
    return train_x


def test_load_dataset_splits_are_disjoint_seeded_and_sized(fake_source):
    s = load_dataset("fake", device="cpu", valid_size=100, train_size=300, seed=0)
    assert (len(s.train), len(s.valid), len(s.test)) == (300, 100, 50)
    tr, va = set(s.train.targets.tolist()), set(s.valid.targets.tolist())
    # targets were unique ids 0..499 mod 10; images hold the id itself (uint8 wraps at 256)
    ids_tr = set(s.train.images[:, 0, 0, 0].tolist())
    assert s.train.images.dtype == torch.uint8 and s.train.shape == (1, 4, 1)
    again = load_dataset("fake", device="cpu", valid_size=100, train_size=300, seed=0)
    assert torch.equal(again.train.images, s.train.images)
    other = load_dataset("fake", device="cpu", valid_size=100, train_size=300, seed=1)
    assert not torch.equal(other.train.images, s.train.images)
    assert tr and va and ids_tr


def test_load_dataset_without_test_split_carves_one(fake_source, monkeypatch):
    monkeypatch.setattr(sys.modules["fake_source"], "HAS_TEST_SPLIT", False, raising=False)
    s = load_dataset("fake", device="cpu", valid_size=100)
    assert (len(s.train), len(s.valid), len(s.test)) == (300, 100, 100)


def test_eval_splits_are_binarised_once(fake_source):
    s = load_dataset("fake", device="cpu", valid_size=100, binarize="dynamic")
    assert s.train.binarize == "dynamic" and s.valid.binarize == "fixed" and s.test.binarize == "fixed"
    assert torch.equal(s.test.batch(), s.test.batch())


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "cifar"}, "data set 'cifar' is unknown"),
    ({"binarize": "sometimes"}, "binarize='sometimes' is unknown"),
    ({"valid_size": 600}, "valid_size=600 leaves no training images"),
    ({"train_size": 10_000}, r"train_size=10000 must be in 1\.\.400"),
    ({"device": "tpu"}, "device='tpu' is unknown"),
])
def test_load_dataset_bad_arguments(fake_source, kwargs, match):
    args = {"name": "fake", "device": "cpu", "valid_size": 100, **kwargs}
    name = args.pop("name")
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **args)


@pytest.mark.parametrize("images,match", [
    (torch.rand(3, 1, 4, 4), "must be a uint8 tensor"),
    (torch.zeros(3, 4, 4, dtype=torch.uint8), r"shape \(N, C, H, W\)"),
    (np.zeros((3, 1, 4, 4), np.uint8), "must be a uint8 tensor"),
])
def test_image_data_rejects_wrong_type_or_shape(images, match):
    with pytest.raises(ValueError, match=match):
        ImageData(images)


def test_image_data_rejects_signed_binarised_and_mismatched_targets():
    with pytest.raises(ValueError, match="scale='unit'"):
        ImageData(grey(4), binarize="fixed", scale="signed")
    with pytest.raises(ValueError, match="targets has 3 rows but images has 4"):
        ImageData(grey(4), targets=torch.zeros(3))


def test_from_float_quantises_and_rejects_nan_and_range():
    x = torch.rand(5, 1, 3, 3)
    d = ImageData.from_float(x)
    torch.testing.assert_close(d.batch(), x, atol=0.5 / 255 + 1e-7, rtol=0)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN values"):
        ImageData.from_float(bad)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*\(x \+ 1\) / 2"):
        ImageData.from_float(x * 2 - 1)
    with pytest.raises(ValueError, match="floating point"):
        ImageData.from_float(torch.zeros(2, 1, 3, 3, dtype=torch.int64))


def test_the_uint8_error_points_to_from_float_not_a_cast_that_wraps():
    """(x * 255).round().to(torch.uint8) maps NaN to 0 and wraps 1.5 to 126: the message names from_float."""
    with pytest.raises(ValueError, match=r"ImageData\.from_float\(x\)") as info:
        ImageData(torch.rand(3, 1, 4, 4))
    assert "to(torch.uint8)" not in str(info.value)
    with pytest.raises(ValueError, match="NaN"):  # the way the message names refuses what the cast hid
        ImageData.from_float(torch.full((1, 1, 2, 2), float("nan")))
