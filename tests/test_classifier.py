"""The digit classifier for a Fréchet distance: training raises accuracy, features, the distance, save/load, errors."""
import numpy as np
import pytest
import torch

from vaelab.evaluation.classifier import (FEATURE_DIM, accuracy, features, frechet_distance_features, load_classifier,
                               mnist_classifier, save_classifier, train_classifier)
from vaelab.data.images import ImageData
from vaelab.evaluation.fid import activation_statistics, frechet_distance


def two_patterns(n, seed=0):
    """Class 0: a horizontal bar at a random row; class 1: a vertical bar at a random column; plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(4, 24, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, pos[i]:pos[i] + 3, 4:24] = 1.0
        else:
            x[i, 0, 4:24, pos[i]:pos[i] + 3] = 1.0
    return ImageData.from_float(x, targets=y)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = mnist_classifier(n_classes=2)
    train, test = two_patterns(256, seed=0), two_patterns(128, seed=1)
    before = accuracy(model, test)
    hist = train_classifier(model, train, epochs=3, batch_size=32, lr=2e-3, seed=0, test=test)
    return model, train, test, before, hist


def test_training_raises_accuracy(trained):
    model, _, test, before, hist = trained
    assert set(hist) == {"epoch", "loss", "train_accuracy", "test_accuracy"} and hist["epoch"] == [1, 2, 3]
    assert hist["test_accuracy"][-1] > 0.9 > before + 0.2
    assert hist["loss"][-1] < hist["loss"][0]
    assert accuracy(model, test) == hist["test_accuracy"][-1]


def test_features_and_frechet_distance(trained):
    model, train, test, _, _ = trained
    x = test.batch()
    f = features(model, x, batch_size=50)
    assert f.shape == (128, FEATURE_DIM) and f.dtype == torch.float32 and (f >= 0).all()
    torch.testing.assert_close(features(model, test), f)  # an ImageData gives the same
    total_var = f.double().var(0).sum().item()
    assert abs(frechet_distance_features(f, f)) < 1e-6 * total_var  # 0 up to round-off
    shifted = features(model, (x + 0.3 * torch.rand(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1))
    assert frechet_distance_features(f, shifted) > 1e-2 * total_var
    # the other class only: a different distribution of features
    ones = x[test.targets == 1]
    assert frechet_distance_features(f, features(model, ones)) > frechet_distance_features(f, shifted)
    # it is the FID formula on the features' means and covariances (vaelab.evaluation.fid)
    g = np.random.default_rng(0)
    a, b = g.normal(size=(300, 6)), g.normal(size=(200, 6)) * 1.5 + 0.2
    assert frechet_distance_features(a, b) == pytest.approx(
        frechet_distance(*activation_statistics(a), *activation_statistics(b)), rel=1e-9)


def test_save_and_load(trained, tmp_path):
    model, _, test, _, hist = trained
    path = save_classifier(model, tmp_path / "sub" / "clf.pt", test_accuracy=hist["test_accuracy"][-1])
    loaded = load_classifier(path)
    assert loaded.info == {"test_accuracy": hist["test_accuracy"][-1]} and not loaded.training
    x = test.batch(torch.arange(10))
    torch.testing.assert_close(loaded(x), model.eval()(x))
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        load_classifier(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot be read"):
        load_classifier(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="not a vaelab classifier"):
        load_classifier(tmp_path / "other.pt")


def test_bad_inputs(trained):
    model = trained[0]
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\)"):
        features(model, torch.rand(4, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        features(model, torch.rand(4, 1, 28, 28) * 2 - 1)
    with pytest.raises(TypeError, match="divide uint8"):
        features(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        features(model, torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="no targets"):
        train_classifier(mnist_classifier(), ImageData.from_float(torch.rand(4, 1, 28, 28)), epochs=1)
    with pytest.raises(ValueError, match="class indices"):
        train_classifier(mnist_classifier(n_classes=2),
                         ImageData.from_float(torch.rand(4, 1, 28, 28), targets=torch.tensor([0, 1, 2, 1])))
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(mnist_classifier(n_classes=2), two_patterns(8), epochs=0)
    with pytest.raises(ValueError, match="n_classes"):
        mnist_classifier(n_classes=1)
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance_features(np.zeros((1, 4)), np.zeros((5, 4)))
