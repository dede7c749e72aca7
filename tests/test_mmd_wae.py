"""WAE-MMD: the IMQ kernel and unbiased MMD against brute force and their statistics; the WAE model."""
import math

import pytest
import torch

from vaelab.data.images import ImageData
from vaelab.core.densities import log_bernoulli, log_normal_diag
from vaelab.objectives.mmd import IMQ_SCALES, imq_kernel, mmd_imq
from vaelab.objectives.schedules import Constant
from vaelab.training.train import fit
from vaelab.models.wae import WAE, mlp_wae


def brute_mmd(x, y, scales=IMQ_SCALES):
    """The estimator written as three double loops over the rows (float64 Python numbers)."""
    k = x.shape[1]

    def kern(a, b):
        d2 = sum((float(a[i]) - float(b[i])) ** 2 for i in range(k))
        return sum(2 * k * s / (2 * k * s + d2) for s in scales)

    n, m = len(x), len(y)
    kxx = sum(kern(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(kern(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(kern(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def test_mmd_matches_brute_force_double_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = 0.7 * torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.3
    assert abs(mmd_imq(x, y).item() - brute_mmd(x, y)) < 1e-6
    assert abs(mmd_imq(x, y, scales=0.5).item() - brute_mmd(x, y, (0.5,))) < 1e-6
    torch.testing.assert_close(mmd_imq(x, y), mmd_imq(y, x))  # symmetric
    # float32 codes far from the origin: no cancellation (distances from differences, not norms)
    x32, y32 = (x + 1000.0).float(), (y + 1000.0).float()
    assert abs(mmd_imq(x32, y32).item() - brute_mmd(x, y)) < 1e-4


def test_imq_kernel_values():
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    kern = imq_kernel(x, y, scales=(1.0, 2.0))
    d2 = torch.tensor([[0.0, 9.0, 5.0], [5.0, 8.0, 0.0]], dtype=torch.float64)
    expected = 4.0 / (4.0 + d2) + 8.0 / (8.0 + d2)  # C = 2 k s with k = 2
    torch.testing.assert_close(kern, expected)
    # k(x, x) = number of scales (distance 0, clamped against round-off)
    far = torch.randn(50, 4) * 1e3
    torch.testing.assert_close(imq_kernel(far, far).diagonal(), torch.full((50,), float(len(IMQ_SCALES))))


def test_mmd_is_unbiased_and_detects_a_shift():
    g = torch.Generator().manual_seed(1)
    null, vstat = [], []
    for _ in range(300):
        x, y = torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g)
        null.append(mmd_imq(x, y).item())
        kxx, kyy, kxy = imq_kernel(x, x), imq_kernel(y, y), imq_kernel(x, y)
        vstat.append((kxx.mean() + kyy.mean() - 2 * kxy.mean()).item())  # the biased V-statistic
    null, vstat = torch.tensor(null), torch.tensor(vstat)
    se = null.std() / math.sqrt(len(null))
    assert abs(null.mean()) < 4 * se  # E[estimate] = MMD^2 = 0
    assert vstat.mean() > 10 * vstat.std() / math.sqrt(len(vstat))  # keeping the diagonal biases it upwards
    assert (null < 0).any()  # an unbiased estimate of 0 takes both signs
    shifted = torch.tensor([mmd_imq(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 1.5).item()
                            for _ in range(20)])
    assert shifted.min() > null.max()
    # n != m works and stays unbiased
    uneven = torch.tensor([mmd_imq(torch.randn(30, 2, generator=g), torch.randn(11, 2, generator=g)).item()
                           for _ in range(300)])
    assert abs(uneven.mean()) < 4 * uneven.std() / math.sqrt(len(uneven))


def test_mmd_gradient():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: mmd_imq(a, b), (x, y))


@pytest.mark.parametrize("x, y, match", [
    (torch.randn(5, 2), torch.randn(5, 3), "same latent dimension"),
    (torch.randn(1, 2), torch.randn(5, 2), "x has 1 row"),
    (torch.randn(5, 2), torch.randn(1, 2), "y has 1 row"),
    (torch.randn(5), torch.randn(5, 1), "x must be a 2-D tensor"),
    (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.randn(4, 2), "x contains NaN"),
    (torch.randn(4, 2), torch.tensor([[0.0, float("inf")], [1.0, 1.0]]), "y contains NaN or Inf"),
])
def test_mmd_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        mmd_imq(x, y)


def test_bad_scales():
    with pytest.raises(ValueError, match="scales must be positive"):
        imq_kernel(torch.randn(3, 2), torch.randn(3, 2), scales=(1.0, -1.0))
    with pytest.raises(ValueError, match="scales"):
        mlp_wae(2, (1, 6, 6), (8,), (8,), scales="abc")


# ------------------------------------------------------------------ the WAE
def toy_data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, w = torch.randn(n, 2, generator=g), 2 * torch.randn(2, 36, generator=torch.Generator().manual_seed(99))
    return ImageData.from_float(torch.sigmoid(a @ w).view(n, 1, 6, 6))


def toy_wae(seed=0, k=3, **kw):
    torch.manual_seed(seed)
    return mlp_wae(latent_dim=k, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,), **kw)


def test_wae_terms():
    model, x = toy_wae(), toy_data(10).batch()
    torch.manual_seed(5)
    out = model(x)
    assert out["rec"].shape == (10,) and out["reg"].shape == () and out["z"].shape == (10, 3)
    assert "mu" not in out  # the code is "z": a WAE has no posterior mean apart from it
    torch.manual_seed(5)
    z_prior = model.prior.sample(10)
    torch.testing.assert_close(out["z_prior"], z_prior)
    torch.testing.assert_close(out["reg"], mmd_imq(out["z"], z_prior))
    torch.testing.assert_close(out["z"], model.encode(x))  # deterministic
    torch.testing.assert_close(out["rec"], -log_bernoulli(x, model.decode(out["z"]), event_dims=3))
    torch.testing.assert_close(model.reconstruct(x), torch.sigmoid(model.decode(model.encode(x))))
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 6, 6) and 0 <= samples.min() and samples.max() <= 1
    out["reg"].backward()  # the MMD trains the encoder
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_wae_gaussian_likelihood():
    model, x = toy_wae(likelihood="gaussian", obs_sigma=0.5), toy_data(8).batch()
    out = model(x)
    expected = -log_normal_diag(x, model.decode(out["z"]), torch.tensor(2 * math.log(0.5)), event_dims=3)
    torch.testing.assert_close(out["rec"], expected)
    torch.testing.assert_close(model.reconstruct(x), model.decode(model.encode(x)))


def test_mlp_wae_is_hebae_mlp():
    model = mlp_wae()
    sizes = [(m.in_features, m.out_features) for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert sizes == [(784, 784), (784, 800), (800, 20)]
    sizes = [(m.in_features, m.out_features) for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert sizes == [(20, 800), (800, 800), (800, 784)]
    assert isinstance(model, WAE)


def test_wae_bad_input():
    model = toy_wae()
    with pytest.raises(ValueError, match="at least 2"):
        model(toy_data(1).batch())
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 6, 6\)"):
        model(torch.rand(4, 1, 5, 5))
    with pytest.raises(ValueError, match="likelihood"):
        toy_wae(likelihood="poisson")


def test_wae_training_lowers_the_loss():
    model = toy_wae()
    hist = fit(model, toy_data(600), epochs=6, batch_size=64, progress=False, lr=3e-3, schedule=Constant(10.0))
    assert hist.epochs["loss"][-1] < hist.epochs["loss"][0] - 1.0
    assert len(hist.steps["reg"]) == 6 * 10 and all(math.isfinite(v) for v in hist.steps["reg"])  # per step
