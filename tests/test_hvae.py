"""The two-level VAE (vaelab.models.hvae): terms against torch.distributions, Monte Carlo KLs, importance
weights, training and warm-up."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal

import vaelab
from vaelab.data.images import ImageData
from vaelab.evaluation.diagnostics import active_units, posterior_stats
from vaelab.core.densities import kl_normal_diag, kl_std_normal
from vaelab.models.hvae import HVAE, hvae
from vaelab.evaluation.likelihood import log_importance_weights
from vaelab.core.posteriors import TwoLevel
from vaelab.models.priors import StandardNormal
from vaelab.objectives.schedules import LinearWarmup
from vaelab.models.vamp import VampPrior

SHAPE = (1, 6, 6)


def toy_images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, w = torch.randn(n, 2, generator=g), 2 * torch.randn(2, 36, generator=torch.Generator().manual_seed(99))
    return torch.sigmoid(a @ w).view(n, *SHAPE)


def toy_hvae(prior="vamp", seed=0, **kw):
    torch.manual_seed(seed)
    return hvae(latent_dim=3, hidden=32, prior=prior, n_pseudo=kw.pop("n_pseudo", 5), data_shape=SHAPE, **kw)


def diag_normal(mean_logvar):
    mean, logvar = mean_logvar
    return Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)


@pytest.mark.parametrize("prior", ["vamp", "standard"])
def test_terms_match_torch_distributions(prior):
    model = toy_hvae(prior, pseudo_init="random").double()
    x = toy_images(7).round().double()  # binary pixels: torch's Bernoulli checks its support
    torch.manual_seed(11)
    out = model(x)
    # the same noise: eps2 then eps1, in that order
    torch.manual_seed(11)
    eps2, eps1 = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    flat = x.flatten(1)
    mu2, lv2 = model.q_z2(flat).chunk(2, -1)
    z2 = mu2 + torch.exp(0.5 * lv2) * eps2
    mu1, lv1 = model.q_z1(flat, z2).chunk(2, -1)
    z1 = mu1 + torch.exp(0.5 * lv1) * eps1
    torch.testing.assert_close(out["z2"], z2)
    torch.testing.assert_close(out["z1"], z1)
    log_q2 = diag_normal((mu2, lv2)).log_prob(z2)
    log_q1 = diag_normal((mu1, lv1)).log_prob(z1)
    log_p1 = diag_normal(model.p_z1(z2).chunk(2, -1)).log_prob(z1)
    if prior == "vamp":
        m, lv = model.q_z2(model.prior.pseudo_inputs().flatten(1)).chunk(2, -1)
        p2 = MixtureSameFamily(Categorical(logits=torch.zeros(5, dtype=torch.float64)), diag_normal((m, lv)))
    else:
        p2 = Independent(Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)), 1)
    log_p2 = p2.log_prob(z2)
    log_px = Independent(Bernoulli(logits=model.p_x(z1, z2)), 1).log_prob(flat)
    tol = dict(rtol=0, atol=1e-8)
    torch.testing.assert_close(out["rec"], -log_px, **tol)
    torch.testing.assert_close(out["kl_z1"], log_q1 - log_p1, **tol)
    torch.testing.assert_close(out["kl_z2"], log_q2 - log_p2, **tol)
    torch.testing.assert_close(out["reg"], log_q1 + log_q2 - log_p1 - log_p2, **tol)
    # rec + reg = -log w, the single importance weight p(x, z1, z2) / q(z1, z2 | x)
    log_w = log_px + log_p1 + log_p2 - log_q1 - log_q2
    torch.testing.assert_close(out["rec"] + out["reg"], -log_w, **tol)


def test_layer_kls_are_unbiased_for_the_analytic_kls():
    """With the standard prior both layers' KLs have closed forms given z2: the one-sample terms match in expectation."""
    model = toy_hvae("standard").double()
    n = 20_000
    x = toy_images(1, seed=3).double().expand(n, *SHAPE)
    with torch.no_grad():
        out = model(x)
        # layer 2: E_q[log q(z2|x) - log p(z2)] = KL(q(z2|x) || N(0, I))
        kl2 = kl_std_normal(out["mu2"][0], out["logvar2"][0])
        d2 = out["kl_z2"] - kl2
        # layer 1: E_{z1 ~ q(z1|x,z2)}[log q(z1|x,z2) - log p(z1|z2)] = KL(q(z1|x,z2) || p(z1|z2)) for each z2
        pm1, plv1 = model.prior_z1(out["z2"])
        d1 = out["kl_z1"] - kl_normal_diag(out["mu1"], out["logvar1"], pm1, plv1)
    for d in (d1, d2):
        assert abs(d.mean().item()) < 5 * d.std().item() / math.sqrt(n)


@pytest.mark.parametrize("prior", ["vamp", "standard"])
def test_importance_weights(prior):
    model = toy_hvae(prior)
    x = toy_images(40, seed=2)
    g = torch.Generator().manual_seed(0)
    lw = log_importance_weights(model, x, n_samples=200, chunk=7, generator=g)
    assert lw.shape == (40, 200) and lw.dtype == torch.float64 and torch.isfinite(lw).all()
    ll = torch.logsumexp(lw, 1) - math.log(200)
    assert (ll >= lw.mean(1)).all()                                  # the IS estimate is above the ELBO
    # the same estimator as training: mean log w agrees with -(rec + reg) from forward in expectation
    with torch.no_grad():
        neg = torch.stack([-(lambda o: o["rec"] + o["reg"])(model(x)) for _ in range(200)], 1).double()
    diff = lw.mean() - neg.mean()
    se = math.sqrt(lw.var(1).mean().item() / lw.numel() + neg.var(1).mean().item() / neg.numel())
    assert abs(diff.item()) < 5 * se + 1e-3, (diff, se)
    # E[logsumexp_S - log S] increases with S (Burda et al. 2016, Theorem 1): 1,000 weights per point split
    # into groups of S = 1, 10, 100; the mean estimate per point rises with S by many standard errors
    lw = log_importance_weights(model, x, 1000, generator=g)
    est = {s: (torch.logsumexp(lw.view(40, 1000 // s, s), 2) - math.log(s)).mean(1) for s in (1, 10, 100)}
    for a, b in ((1, 10), (10, 100)):
        gain = est[b] - est[a]
        assert gain.mean() > 3 * gain.std() / math.sqrt(40), (a, b, gain)
    # reproducible with a generator; independent of the model's mode
    a = log_importance_weights(model, x[:3], 9, chunk=4, generator=torch.Generator().manual_seed(5))
    b = log_importance_weights(model, x[:3], 9, chunk=4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="n_samples"):
        log_importance_weights(model, x, 0)
    assert model.prior._cached is None if prior == "vamp" else True  # the cache is dropped after the call


def test_encode_layers_and_generic_tools():
    model = toy_hvae()
    x = toy_images(10)
    layers = model.encode_layers(x)
    assert set(layers) == {"z1", "z2"} and all(m.shape == lv.shape == (10, 3) for m, lv in layers.values())
    torch.testing.assert_close(layers["z2"][0], model.q_z2(x.flatten(1)).chunk(2, -1)[0])
    torch.testing.assert_close(layers["z1"][0], model.q_z1(x.flatten(1), layers["z2"][0]).chunk(2, -1)[0])
    data = ImageData.from_float(toy_images(25))
    mean, logvar = posterior_stats(model, data, batch_size=10)
    assert mean.shape == (25, 6) and logvar is None  # z = [z1, z2]; the joint has no closed-form variance
    with torch.no_grad():
        ref = model.encode_layers(data.batch())
    torch.testing.assert_close(mean, torch.cat([ref["z1"][0], ref["z2"][0]], 1))
    n_active, _ = active_units(mean[:, 3:])
    assert 0 <= n_active <= 3
    # the generic tools serve it through its joint posterior
    q = model.posterior(x)
    assert isinstance(q, TwoLevel) and q.batch_shape == (10,) and q.event_shape == (6,)
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, *SHAPE)
    assert model.reconstruct(x).shape == x.shape


def _former_hvae_log_weights(model, x, n_samples, chunk, generator):
    """The HVAE's own importance-sampling loop before the joint posterior (the reference): z2 then z1 noise
    per chunk from ``generator``, log q from z by log_normal_diag."""
    from vaelab.core.densities import log_normal_diag
    b = x.shape[0]
    flat = x.flatten(1)
    mu2, logvar2 = model.encode_z2(x)
    h_x = model.q_z1.embed_a(flat)
    out = torch.empty((b, n_samples), dtype=torch.float64)
    for start in range(0, n_samples, chunk):
        c = min(chunk, n_samples - start)
        z2 = mu2 + torch.exp(0.5 * logvar2) * torch.randn((c, b, 3), generator=generator)
        mu1, logvar1 = model.q_z1.from_embedded(h_x, z2).split(3, dim=-1)
        z1 = mu1 + torch.exp(0.5 * logvar1) * torch.randn((c, b, 3), generator=generator)
        pm1, plogvar1 = model.prior_z1(z2)
        z1f, z2f = z1.reshape(c * b, -1), z2.reshape(c * b, -1)
        xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * b, *x.shape[1:])
        log_lik = model.log_likelihood(xs, model.decode(z1f, z2f)).view(c, b)
        log_p = log_lik + log_normal_diag(z1, pm1, plogvar1) + model.prior.log_prob(z2f).view(c, b)
        log_q = log_normal_diag(z1, mu1, logvar1) + log_normal_diag(z2, mu2, logvar2)
        out[:, start:start + c] = (log_p - log_q).T.to(torch.float64)
    return out


@pytest.mark.parametrize("prior", ["vamp", "standard"])
def test_generic_importance_weights_equal_the_former_hvae_loop(prior):
    """Same generator, same log weights: the one loop of vaelab.evaluation.likelihood over the joint posterior gives
    the numbers of the HVAE's former loop (up to float rounding: log q is now read off the noise)."""
    model = toy_hvae(prior).eval()
    x = toy_images(5, seed=4)
    with torch.no_grad():
        new = log_importance_weights(model, x, 23, chunk=6, generator=torch.Generator().manual_seed(3))
        old = _former_hvae_log_weights(model, x, 23, 6, torch.Generator().manual_seed(3))
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-4)


def test_joint_posterior_log_prob_is_the_sum_of_its_factors():
    model = toy_hvae().double()
    x = toy_images(4).double()
    q = model.posterior(x)
    z = q.rsample((5,))
    assert z.shape == (5, 4, 6)
    z1, z2 = z[..., :3], z[..., 3:]
    mu2, lv2 = model.encode_z2(x)
    mu1, lv1 = model.q_z1(x.flatten(1).expand(5, 4, 36), z2).chunk(2, -1)
    expected = diag_normal((mu1, lv1)).log_prob(z1) + diag_normal((mu2, lv2)).log_prob(z2)
    torch.testing.assert_close(q.log_prob(z), expected)
    # the mean is the plug-in mean: q(z2|x)'s, and q(z1|x, z2)'s at it
    layers = model.encode_layers(x)
    torch.testing.assert_close(q.mean, torch.cat([layers["z1"][0], layers["z2"][0]], 1))


def test_prior_binding_parameters_and_gradients():
    model = toy_hvae("vamp", weighted=True)
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    assert len(names) == len(set(names)) == len(list(model.parameters()))
    assert [n for n in names if n.startswith("prior.")] == ["prior.pseudo_raw", "prior.logits"]
    assert isinstance(model.prior, VampPrior) and model.prior._encode.__func__ is HVAE.encode_z2
    model.prior.log_prob(torch.randn(6, 3)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.q_z2.parameters())
    assert all(p.grad is None for p in model.q_z1.parameters())
    assert isinstance(toy_hvae("standard").prior, StandardNormal)
    with pytest.raises(ValueError, match="unknown"):
        toy_hvae("mog")
    big = hvae()
    assert big.prior.n_pseudo == 500 and big(torch.rand(2, 1, 28, 28).round())["reg"].shape == (2,)


@pytest.mark.parametrize("prior", ["vamp", "standard"])
def test_fit_with_warmup_lowers_the_loss(prior):
    model = toy_hvae(prior)
    data = ImageData.from_float(toy_images(256), binarize="fixed")
    before = vaelab.evaluate(model, data)
    hist = vaelab.fit(model, data, epochs=12, batch_size=32, lr=1e-2, progress=False,
                      schedule=LinearWarmup(4, unit="epoch"))
    after = vaelab.evaluate(model, data)
    assert after["rec"] + after["reg"] < before["rec"] + before["reg"] - 1.0, (before, after)
    steps = 8  # 256 / 32 per epoch
    w = torch.tensor(hist.steps["weight"])
    assert torch.allclose(w[:steps], torch.zeros(steps)) and torch.allclose(w[steps:2 * steps], torch.full((steps,), 0.25))
    assert torch.allclose(w[-steps:], torch.ones(steps))
    loss = torch.tensor(hist.steps["loss"])
    torch.testing.assert_close(loss, torch.tensor(hist.steps["rec"]) + w * torch.tensor(hist.steps["reg"]))
    torch.testing.assert_close(torch.tensor(hist.steps["reg"]),
                               torch.tensor(hist.steps["kl_z1"]) + torch.tensor(hist.steps["kl_z2"]))


def test_importance_log_likelihood_dispatches_to_the_hvae():
    from vaelab.models.hvae import hvae
    from vaelab.evaluation.likelihood import importance_log_likelihood

    torch.manual_seed(0)
    model = hvae(latent_dim=3, hidden=8, prior="vamp", n_pseudo=4, data_shape=(1, 4, 4))
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.3))
    res = importance_log_likelihood(model, x, n_samples=200, return_elbo=True,
                                    generator=torch.Generator().manual_seed(1))
    assert res.log_likelihood.shape == (6,)
    assert (res.log_likelihood >= res.elbo).all()  # log-mean-exp >= mean, for every data point
