"""Mixture priors (vaelab.models.vamp): densities against brute force, samples against closed-form moments,
pseudo-inputs, the prior-encoder binding, training."""
import copy
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import vaelab
from vaelab.data.images import ImageData
from vaelab.evaluation.likelihood import importance_log_likelihood
from vaelab.objectives.schedules import Constant
from vaelab.models.vamp import (MixtureOfGaussians, ScaledMixtureOfGaussians, VampPrior, log_mixture_diag,
                               log_normal_diag_pairwise, mog_vae, std_vae, vamp_vae)

SHAPE = (1, 6, 6)


def brute_mixture(means, logvars, logits=None):
    """The mixture as torch.distributions: MixtureSameFamily of Independent Normals."""
    logits = torch.zeros(means.shape[0], dtype=means.dtype) if logits is None else logits
    return MixtureSameFamily(Categorical(logits=logits), Independent(Normal(means, torch.exp(0.5 * logvars)), 1))


def mixture_moments(means, logvars, logits=None):
    """Closed-form mean and covariance of sum_k w_k N(m_k, diag v_k)."""
    w = torch.softmax(torch.zeros(means.shape[0], dtype=means.dtype) if logits is None else logits, 0)
    mean = w @ means
    second = (w[:, None, None] * (torch.diag_embed(torch.exp(logvars)) + means[:, :, None] * means[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


def assert_moments(samples, mean, cov, n_se=5.0):
    """Sample mean and covariance within n_se standard errors of the closed form (entry by entry)."""
    n = samples.shape[0]
    m_hat = samples.mean(0)
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert ((m_hat - mean).abs() < n_se * se_mean).all(), (m_hat, mean, se_mean)
    d = samples - m_hat
    prods = d[:, :, None] * d[:, None, :]
    cov_hat = prods.mean(0)
    se_cov = prods.std(0) / math.sqrt(n)
    assert ((cov_hat - cov).abs() < n_se * se_cov + 1e-12).all(), (cov_hat, cov, se_cov)


def toy_images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, w = torch.randn(n, 2, generator=g), 2 * torch.randn(2, 36, generator=torch.Generator().manual_seed(99))
    return torch.sigmoid(a @ w).view(n, *SHAPE)


def toy_vamp(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("n_pseudo", 7)
    return vamp_vae(latent_dim=3, hidden=32, data_shape=SHAPE, **kw)


# -- densities ----------------------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_log_mixture_matches_brute_force(weighted):
    g = torch.Generator().manual_seed(1)
    means = torch.randn(9, 5, generator=g, dtype=torch.float64)
    logvars = torch.randn(9, 5, generator=g, dtype=torch.float64)
    logits = torch.randn(9, generator=g, dtype=torch.float64) if weighted else None
    z = 2 * torch.randn(31, 5, generator=g, dtype=torch.float64)
    expected = brute_mixture(means, logvars, logits).log_prob(z)
    got = log_mixture_diag(z, means, logvars, None if logits is None else torch.log_softmax(logits, 0))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    pair = log_normal_diag_pairwise(z, means, logvars)
    direct = Independent(Normal(means, torch.exp(0.5 * logvars)), 1).log_prob(z[:, None, :])
    torch.testing.assert_close(pair, direct, rtol=0, atol=1e-5)


def test_log_mixture_float32_is_close():
    g = torch.Generator().manual_seed(2)
    means, logvars = torch.randn(50, 40, generator=g), torch.randn(50, 40, generator=g) - 2
    z = torch.randn(100, 40, generator=g)
    exact = log_mixture_diag(z.double(), means.double(), logvars.double())
    torch.testing.assert_close(log_mixture_diag(z, means, logvars).double(), exact, rtol=1e-6, atol=1e-3)


def _pairwise_two_products(z, means, logvars):
    """The former evaluation: two (batch, k) x (k, K) products and the constant added afterwards."""
    prec = torch.exp(-logvars)
    const = -0.5 * (means.shape[1] * math.log(2 * math.pi) + logvars.sum(1) + (means * means * prec).sum(1))
    return const - 0.5 * ((z * z) @ prec.T - 2.0 * (z @ (means * prec).T))


def test_pairwise_one_product_equals_two_products_and_stays_float32_under_autocast():
    g = torch.Generator().manual_seed(5)
    means, logvars = torch.randn(50, 40, generator=g), torch.randn(50, 40, generator=g) - 2
    z = torch.randn(100, 40, generator=g, requires_grad=True)
    exact = _pairwise_two_products(z.detach().double(), means.double(), logvars.double())
    torch.testing.assert_close(log_normal_diag_pairwise(z.double(), means.double(), logvars.double()), exact,
                               rtol=1e-12, atol=1e-9)
    new, old = log_normal_diag_pairwise(z, means, logvars), _pairwise_two_products(z, means, logvars)
    torch.testing.assert_close(new.double(), exact, rtol=1e-6, atol=2e-3)  # float32 cancellation, both ways
    torch.testing.assert_close(new, old, rtol=1e-6, atol=2e-3)
    (gn,), (go,) = torch.autograd.grad(new.sum(), z), torch.autograd.grad(old.sum(), z)
    torch.testing.assert_close(gn, go, rtol=1e-5, atol=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 training: the density stays float32
        amp = log_normal_diag_pairwise(z, means.bfloat16(), logvars)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, log_normal_diag_pairwise(z, means.bfloat16().float(), logvars))


@pytest.mark.parametrize("learn_weights", [False, True])
def test_mog_log_prob_and_samples(learn_weights):
    torch.manual_seed(3)
    prior = MixtureOfGaussians(3, 4, init_scale=2.0, learn_weights=learn_weights).double()
    with torch.no_grad():
        prior.logvars.copy_(torch.randn(4, 3) - 1)
        if learn_weights:
            prior.logits.copy_(torch.randn(4))
    logits = prior.logits.detach() if learn_weights else None
    z = 3 * torch.randn(25, 3, dtype=torch.float64)
    ref = brute_mixture(prior.means.detach(), prior.logvars.detach(), logits)
    torch.testing.assert_close(prior.log_prob(z), ref.log_prob(z), rtol=0, atol=1e-5)
    samples = prior.sample(100_000, generator=torch.Generator().manual_seed(4))
    assert samples.shape == (100_000, 3)
    assert_moments(samples.detach(), *mixture_moments(prior.means.detach(), prior.logvars.detach(), logits))
    assert len(list(prior.parameters())) == (3 if learn_weights else 2)


def test_scaled_mog_is_the_same_density_moved_faster():
    """Stored divided by ``speed``: the same initial density as the MoG of the same seed, and a gradient
    with respect to the stored values ``speed`` times the gradient with respect to the effective ones, so
    that a step of the same size moves the prior ``speed`` times further (chapter 03, the K = 1 check)."""
    torch.manual_seed(5)
    plain = MixtureOfGaussians(3, 4).double()
    torch.manual_seed(5)
    fast = ScaledMixtureOfGaussians(3, 4, speed=10.0).double()
    torch.testing.assert_close(fast.means * 10.0, plain.means)  # stored divided by speed
    assert torch.equal(fast.logvars, plain.logvars)  # zeros
    means, logvars = fast.components()
    torch.testing.assert_close(means, plain.means)
    assert [t.shape for t in plain.components()] == [(4, 3), (4, 3)]
    z = 2 * torch.randn(20, 3, dtype=torch.float64)
    torch.testing.assert_close(fast.log_prob(z), plain.log_prob(z), rtol=1e-5, atol=1e-5)
    (g_fast,) = torch.autograd.grad(fast.log_prob(z).sum(), [fast.means])
    (g_plain,) = torch.autograd.grad(plain.log_prob(z).sum(), [plain.means])
    torch.testing.assert_close(g_fast, 10.0 * g_plain, rtol=1e-5, atol=1e-6)
    assert fast.sample(7, generator=torch.Generator().manual_seed(0)).shape == (7, 3)
    assert "speed=10" in repr(fast)
    for bad in (0.0, -1.0, float("inf"), True):
        with pytest.raises(ValueError, match="speed must be a finite number > 0"):
            ScaledMixtureOfGaussians(3, 4, speed=bad)


@pytest.mark.parametrize("weighted", [False, True])
def test_vampprior_log_prob_matches_brute_force(weighted):
    vae = toy_vamp(pseudo_init="data", data=toy_images(), weighted=weighted).double()
    prior = vae.prior
    if weighted:
        with torch.no_grad():
            prior.logits.copy_(torch.randn(7))
    z = 2 * torch.randn(40, 3, dtype=torch.float64)
    mu, logvar = vae.encode(prior.pseudo_inputs())
    ref = brute_mixture(mu.detach(), logvar.detach(), prior.logits.detach() if weighted else None)
    torch.testing.assert_close(prior.log_prob(z).detach(), ref.log_prob(z), rtol=0, atol=1e-5)
    # the same through the VAE: reg = log q(z|x) - log p(z)
    x = toy_images(5, seed=1).double()
    out = vae(x)
    q = Independent(Normal(out["mu"], torch.exp(0.5 * out["logvar"])), 1)
    torch.testing.assert_close(out["reg"], q.log_prob(out["z"]) - ref.log_prob(out["z"]), rtol=0, atol=1e-5)


def test_vampprior_samples_match_mixture_moments():
    vae = toy_vamp(pseudo_init="data", data=toy_images(), weighted=True).double()
    with torch.no_grad():
        vae.prior.logits.copy_(torch.randn(7))
    mu, logvar = (t.detach() for t in vae.encode(vae.prior.pseudo_inputs()))
    samples = vae.prior.sample(100_000, generator=torch.Generator().manual_seed(5)).detach()
    assert samples.shape == (100_000, 3)
    assert_moments(samples, *mixture_moments(mu, logvar, vae.prior.logits.detach()))
    # uniform weights
    vae = toy_vamp(pseudo_init="data", data=toy_images()).double()
    mu, logvar = (t.detach() for t in vae.encode(vae.prior.pseudo_inputs()))
    samples = vae.prior.sample(100_000, generator=torch.Generator().manual_seed(6)).detach()
    assert_moments(samples, *mixture_moments(mu, logvar))


def test_cache_components_gives_the_same_density():
    vae = toy_vamp()
    z = torch.randn(10, 3)
    before = vae.prior.log_prob(z)
    with vae.prior.cache_components():
        cached = vae.prior.log_prob(z)
        assert vae.prior._cached is not None
    assert vae.prior._cached is None
    torch.testing.assert_close(cached, before.detach())


# -- pseudo-inputs ----------------------------------------------------------------------------------
def test_random_init_and_pseudo_inputs_stay_in_unit_interval():
    vae = toy_vamp(n_pseudo=200)
    raw = vae.prior.pseudo_raw.detach()
    assert abs(raw.mean().item() - 0.05) < 0.002 and abs(raw.std().item() - 0.01) < 0.002  # N(0.05, 0.01^2)
    assert vae.prior.pseudo_inputs().shape == (200, *SHAPE)
    with torch.no_grad():  # raw values far outside [0, 1] are clipped by the Hardtanh
        vae.prior.pseudo_raw.copy_(3 * torch.randn(200, 36))
    u = vae.prior.pseudo_inputs()
    assert u.min() == 0 and u.max() == 1
    # large optimisation steps on the prior alone (the raw values leave [0, 1]), then the pseudo-inputs
    opt = torch.optim.SGD(vae.prior.parameters(), lr=10.0)
    x = toy_images(32)
    for _ in range(5):
        out = vae(x)
        opt.zero_grad()
        (out["rec"] + out["reg"]).mean().backward()
        opt.step()
    u = vae.prior.pseudo_inputs()
    assert torch.isfinite(u).all() and u.min() >= 0 and u.max() <= 1


def test_data_init_learned_and_fixed():
    images = toy_images(20)
    learned = toy_vamp(pseudo_init="data", data=images)
    diff = learned.prior.pseudo_raw.detach().view(7, *SHAPE) - images[:7]
    assert diff.abs().max() < 0.06 and abs(diff.std().item() - 0.01) < 0.003  # the images plus N(0, 0.01^2)
    assert learned.prior.pseudo_raw.requires_grad

    fixed = toy_vamp(pseudo_init="data", data=images, learn_pseudo_inputs=False)
    assert torch.equal(fixed.prior.pseudo_inputs(), images[:7])
    assert "prior.pseudo_raw" not in dict(fixed.named_parameters())
    assert "prior.pseudo_raw" in fixed.state_dict()                  # saved with the model
    out = fixed(images[:5])
    (out["rec"] + out["reg"]).mean().backward()
    assert fixed.prior.pseudo_raw.grad is None and not fixed.prior.pseudo_raw.requires_grad
    # the training loop (which toggles requires_grad of parameters) leaves them untouched
    vaelab.fit(fixed, ImageData.from_float(images), epochs=2, batch_size=10, progress=False)
    assert torch.equal(fixed.prior.pseudo_inputs(), images[:7])


def test_data_init_accepts_image_data_and_rejects_bad_input():
    data = ImageData.from_float(toy_images(10))
    vae = toy_vamp(pseudo_init="data", data=data, learn_pseudo_inputs=False)
    torch.testing.assert_close(vae.prior.pseudo_inputs(), data.batch(torch.arange(7)))
    with pytest.raises(ValueError, match="init='data'"):
        toy_vamp(learn_pseudo_inputs=False)
    with pytest.raises(ValueError, match="fewer than n_pseudo"):
        toy_vamp(pseudo_init="data", data=toy_images(3))
    with pytest.raises(ValueError, match="data_shape"):
        toy_vamp(pseudo_init="data", data=torch.rand(10, 1, 5, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        toy_vamp(pseudo_init="data", data=2 * toy_images(10))
    with pytest.raises(ValueError, match="unknown"):
        toy_vamp(pseudo_init="kmeans")


# -- binding -------------------------------------------------------------------------------------
def test_parameters_are_not_duplicated():
    for weighted, extra in ((False, 1), (True, 2)):
        vae = toy_vamp(weighted=weighted)
        names = [n for n, _ in vae.named_parameters(remove_duplicate=False)]
        assert len(names) == len(set(names)) == len(list(vae.parameters())) == 12 + extra
        assert [n for n in names if n.startswith("prior.")] == ["prior.pseudo_raw", "prior.logits"][:extra]
        assert not any(k.startswith("prior.") and "encoder" in k for k in vae.state_dict())
        assert len({id(p) for p in vae.parameters()}) == sum(1 for _ in vae.parameters())


def test_prior_gradient_reaches_the_encoder_not_the_decoder():
    vae = toy_vamp()
    vae.prior.log_prob(torch.randn(8, 3)).sum().backward()
    enc_grads = [p.grad for p in vae.encoder.parameters()]
    assert all(g is not None for g in enc_grads) and sum(g.abs().sum() for g in enc_grads) > 0
    assert vae.prior.pseudo_raw.grad.abs().sum() > 0
    assert all(p.grad is None for p in vae.decoder.parameters())


def test_binding_errors_copy_and_state_dict():
    prior = VampPrior(None, n_pseudo=4, data_shape=SHAPE)
    with pytest.raises(RuntimeError, match="bind"):
        prior.log_prob(torch.randn(2, 3))
    with pytest.raises(TypeError, match="encode"):
        prior.bind(42)
    vae = toy_vamp()
    prior.bind(vae.encode)            # a callable works as well as a model
    assert prior.is_bound and prior.log_prob(torch.randn(2, 3)).shape == (2,)
    twin = copy.deepcopy(vae)         # the copy's prior uses the copy's encoder
    assert twin.prior._encode.__self__ is twin
    fresh = toy_vamp(seed=1)
    fresh.load_state_dict(vae.state_dict())
    z = torch.randn(6, 3)
    torch.testing.assert_close(fresh.prior.log_prob(z), vae.prior.log_prob(z))
    with pytest.raises(ValueError, match="expected"):
        vae.prior.log_prob(torch.randn(6, 4))


# -- models and training ----------------------------------------------------------------------------
def test_builders_run():
    torch.manual_seed(0)
    x = toy_images(4)
    for model in (std_vae(3, 16, SHAPE), mog_vae(3, 5, 16, SHAPE), toy_vamp(weighted=True)):
        out = model(x)
        assert out["rec"].shape == out["reg"].shape == (4,)
        assert model.sample(3).shape == (3, *SHAPE)
    big = vamp_vae()
    assert big.encoder(torch.zeros(2, 784)).shape == (2, 80) and big.prior.n_pseudo == 500
    assert big.prior.log_prob(torch.randn(100, 40)).shape == (100,)


@pytest.mark.parametrize("kind", ["vamp", "vamp_weighted", "mog"])
def test_a_few_fit_steps_lower_the_loss(kind):
    torch.manual_seed(0)
    if kind == "mog":
        model = mog_vae(3, 7, 32, SHAPE)
    else:
        model = toy_vamp(weighted=kind == "vamp_weighted")
    data = ImageData.from_float(toy_images(256), binarize="fixed")
    before = vaelab.evaluate(model, data)
    vaelab.fit(model, data, epochs=12, batch_size=32, lr=1e-2, progress=False, schedule=Constant(1.0))
    after = vaelab.evaluate(model, data)
    assert after["rec"] + after["reg"] < before["rec"] + before["reg"] - 1.0, (before, after)


def test_importance_log_likelihood_runs_with_the_vampprior():
    model = toy_vamp()
    x = toy_images(6)
    res = importance_log_likelihood(model, x, n_samples=50, batch_size=3,
                                    generator=torch.Generator().manual_seed(0), return_elbo=True)
    assert torch.isfinite(res.log_likelihood).all() and (res.log_likelihood >= res.elbo).all()


def test_vae_binds_an_unbound_vampprior_to_its_own_encoder():
    from vaelab.core.nets import mlp
    from vaelab.models.vae import VAE

    torch.manual_seed(0)
    prior = VampPrior(None, n_pseudo=3, data_shape=(1, 2, 2))
    vae = VAE(mlp([4, 6]), mlp([3, 4]), 3, (1, 2, 2), prior=prior)
    assert prior.is_bound
    mu, logvar = vae.encode(prior.pseudo_inputs())
    torch.testing.assert_close(prior.components()[0], mu)
    out = vae(torch.rand(5, 1, 2, 2))
    assert torch.isfinite(out["reg"]).all()


def test_gated_dense_glu_is_h_times_sigmoid_g():
    """GatedDense computes h * sigmoid(g) with one glu kernel in float32: the same forward values, the same
    gradients up to rounding; under bf16 autocast the two-op form."""
    from vaelab.core.nets import GatedDense
    torch.manual_seed(0)
    layer = GatedDense(7, 5)
    x = torch.randn(11, 7, requires_grad=True)
    h, g = layer.linear(x).split(5, dim=-1)
    ref = h * torch.sigmoid(g)
    out = layer(x)
    assert torch.equal(out, ref)
    gy = torch.randn_like(out)
    new = torch.autograd.grad(out, [x, *layer.parameters()], gy)
    old = torch.autograd.grad(ref, [x, *layer.parameters()], gy)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        h, g = layer.linear(x).split(5, dim=-1)
        assert y.dtype == torch.bfloat16 and torch.equal(y, h * torch.sigmoid(g))
