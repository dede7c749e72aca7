"""Importance-sampled log-likelihood: exact on a linear-Gaussian model, bounds and monotonicity on real models."""
import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from vaelab.data.images import ImageData
from vaelab.core.densities import log_normal_diag
from vaelab.models.hebae import hebae_elbo_std_prior, mlp_hebae
from vaelab.evaluation.likelihood import importance_log_likelihood, log_importance_weights
from vaelab.models.priors import StandardNormal
from vaelab.training.train import fit
from vaelab.models.vae import mlp_vae
from vaelab.models.wae import mlp_wae


class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I): p(x) = N(b, W W^T + s^2 I) and the posterior is Gaussian.

    The proposal is the exact posterior with its covariance multiplied by ``inflate``."""

    def __init__(self, d=5, k=2, s=0.5, inflate=1.0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(d, k, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64))
        self.s, self.inflate, self.k = s, inflate, k
        self.prior = StandardNormal(k)

    def exact_posterior(self, x):
        eye = torch.eye(self.k, dtype=torch.float64)
        cov = torch.linalg.inv(eye + self.w.T @ self.w / self.s**2)
        mean = (x - self.b) @ self.w @ cov / self.s**2  # cov symmetric
        return mean, cov

    def posterior(self, x):
        mean, cov = self.exact_posterior(x)
        return MultivariateNormal(mean, covariance_matrix=self.inflate * cov.expand(x.shape[0], -1, -1))

    def decode(self, z):
        return z @ self.w.T + self.b

    def log_likelihood(self, x, out):
        return log_normal_diag(x, out, torch.tensor(2 * math.log(self.s), dtype=torch.float64))

    def log_joint(self, x, z):
        return self.log_likelihood(x, self.decode(z)) + self.prior.log_prob(z)

    def exact_log_marginal(self, x):
        cov = self.w @ self.w.T + self.s**2 * torch.eye(self.w.shape[0], dtype=torch.float64)
        return MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)


def test_exact_posterior_proposal_gives_log_marginal_exactly():
    model = LinearGaussian()
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    exact = model.exact_log_marginal(x).detach()
    res = importance_log_likelihood(model, x, n_samples=3, batch_size=4, return_elbo=True,
                                    generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.log_likelihood, exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(res.elbo, exact, rtol=0, atol=1e-10)  # zero-variance weights


def test_wider_proposal_converges_and_elbo_is_below_by_the_kl():
    inflate, k = 2.0, 2
    model = LinearGaussian(inflate=inflate)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = model.exact_log_marginal(x).detach()
    lw = log_importance_weights(model, x, n_samples=20_000, chunk=3000, generator=torch.Generator().manual_seed(3))
    assert lw.shape == (4, 20_000) and lw.dtype == torch.float64
    ll = torch.logsumexp(lw, 1) - math.log(20_000)
    # delta method: sd(log mean w) ~ sd(w) / (sqrt(S) mean(w))
    w = torch.exp(lw - lw.max(1, keepdim=True).values)
    se = w.std(1) / (w.mean(1) * math.sqrt(20_000))
    assert ((ll - exact).abs() < 4 * se + 1e-3).all(), (ll - exact, se)
    # ELBO = log p(x) - KL(q || posterior), KL of N(m, c C) from N(m, C) = k/2 (c - 1 - log c)
    gap = 0.5 * k * (inflate - 1 - math.log(inflate))
    elbo = lw.mean(1)
    elbo_se = lw.std(1) / math.sqrt(20_000)
    assert ((elbo - (exact - gap)).abs() < 4 * elbo_se).all()
    assert (elbo < ll - 0.2).all()


def toy_images(n=200, seed=0, side=8):
    g = torch.Generator().manual_seed(seed)
    base = torch.zeros(2, 1, side, side)
    base[0, :, 2:4, :] = 1.0
    base[1, :, :, 5:7] = 1.0
    labels = torch.randint(0, 2, (n,), generator=g)
    return (0.7 * base[labels] + 0.3 * torch.rand(n, 1, side, side, generator=g)).clamp(0, 1)


def test_vae_is_estimate_above_elbo_increases_with_s_and_encodes_once():
    data = ImageData.from_float(toy_images(256))
    torch.manual_seed(0)
    model = mlp_vae(latent_dim=3, data_shape=(1, 8, 8), enc_hidden=(32,), dec_hidden=(32,))
    fit(model, data, epochs=3, batch_size=32, lr=3e-3, progress=False)
    test = data.subset(48)
    rows = []
    hook = model.encoder.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    res = importance_log_likelihood(model, test, n_samples=500, batch_size=20, chunk=200, return_elbo=True,
                                    generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert rows == [20, 20, 8]  # the encoder ran once per data point, not once per sample
    assert (res.log_likelihood > res.elbo).all()
    assert res.log_likelihood.mean() > res.elbo.mean() + 0.1
    # E[estimate with S samples] increases with S: the mean over disjoint blocks of S log weights
    lw = log_importance_weights(model.eval(), test.batch(), 4000, generator=torch.Generator().manual_seed(1))
    means = [(torch.logsumexp(lw.view(48, 4000 // s, s), -1) - math.log(s)).mean().item() for s in (1, 10, 100, 1000)]
    assert means[0] < means[1] - 0.1 < means[2] - 0.1 and means[2] < means[3]
    assert abs(means[0] - res.elbo.mean().item()) < 0.05  # S = 1: the ELBO's estimate
    # S = 1: log w itself, so the two estimates coincide
    one = importance_log_likelihood(model, test, n_samples=1, return_elbo=True)
    torch.testing.assert_close(one.log_likelihood, one.elbo, rtol=0, atol=0)
    # reproducible with the same generator; the model's mode is restored
    model.train()
    a = importance_log_likelihood(model, test, n_samples=20, generator=torch.Generator().manual_seed(9))
    b = importance_log_likelihood(model, test, n_samples=20, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert model.training and a.shape == (48,) and a.dtype == torch.float64


def _old_log_weights(model, x, n_samples, chunk, generator):
    """The former loop: draws as before (q.sample, or loc + L eps with ``generator``), log q by q.log_prob,
    x copied to every sample (reference for the faster loop)."""
    from torch.distributions import Independent, MultivariateNormal, Normal
    b = x.shape[0]
    q = model.posterior(x)
    out = []
    for start in range(0, n_samples, chunk):
        c = min(chunk, n_samples - start)
        shape = (c, *q.batch_shape, *q.event_shape)
        if generator is None:
            z = q.sample((c,))
        else:
            eps = torch.randn(shape, generator=generator, dtype=x.dtype)
            if isinstance(q, Independent):
                z = q.base_dist.loc + q.base_dist.scale * eps
            else:
                z = q.loc + (q.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        log_q = q.log_prob(z)
        flat = z.reshape(c * b, -1)
        xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * b, *x.shape[1:])
        log_lik = model.log_likelihood(xs, model.decode(flat)).view(c, b)
        out.append((log_lik + model.prior.log_prob(flat).view(c, b) - log_q).T.double())
    return torch.cat(out, 1)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian", "hebae"])
def test_faster_loop_computes_the_former_log_weights(kind):
    """log q read off the draws' eps, x broadcast instead of copied: the same log weights up to float rounding,
    with a generator and without (then the draws are q.sample's own numbers)."""
    torch.manual_seed(0)
    data = ImageData.from_float(toy_images(40, seed=3))
    if kind == "hebae":
        model = mlp_hebae(latent_dim=3, data_shape=(1, 8, 8), enc_hidden=(16,), dec_hidden=(16,))
        model.population_stats(data)
    else:
        model = mlp_vae(latent_dim=3, data_shape=(1, 8, 8), enc_hidden=(16,), dec_hidden=(16,), likelihood=kind)
    model.eval()
    x = data.batch(torch.arange(5))
    with torch.no_grad():
        new = log_importance_weights(model, x, 30, chunk=7, generator=torch.Generator().manual_seed(1))
        old = _old_log_weights(model, x, 30, 7, torch.Generator().manual_seed(1))
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-4)
        torch.manual_seed(2)
        new = log_importance_weights(model, x, 30, chunk=7)
        torch.manual_seed(2)
        old = _old_log_weights(model, x, 30, 7, None)
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-4)


def test_hebae_proposal_is_its_population_posterior():
    data = ImageData.from_float(toy_images(128, seed=1))
    torch.manual_seed(0)
    model = mlp_hebae(latent_dim=3, data_shape=(1, 8, 8), enc_hidden=(32,), dec_hidden=(32,))
    fit(model, data, epochs=2, batch_size=32, lr=3e-3, progress=False)
    with pytest.raises(RuntimeError, match="population_stats"):
        importance_log_likelihood(model, data.subset(4), n_samples=5)
    model.population_stats(data)
    x = data.batch(torch.arange(6))
    q = model.posterior(x)
    mu, log_sigma = model.encode(x)
    tril = torch.exp(log_sigma).unsqueeze(-1) * model.pop_scale_tril
    assert isinstance(q, MultivariateNormal) and q.batch_shape == (6,) and q.event_shape == (3,)
    torch.testing.assert_close(q.loc, mu)
    torch.testing.assert_close(q.scale_tril, tril)
    res = importance_log_likelihood(model, data.subset(6), n_samples=2000, return_elbo=True,
                                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        elbo = hebae_elbo_std_prior(model, x, n_samples=2000, generator=torch.Generator().manual_seed(1))
    # the mean log weight and the closed-form-KL ELBO estimate the same number
    assert (res.elbo - elbo.double()).abs().max() < 1.0
    assert (res.log_likelihood > res.elbo).all()


def test_vae_proposal_and_bad_inputs():
    vae = mlp_vae(latent_dim=2, data_shape=(1, 4, 4), enc_hidden=(8,), dec_hidden=(8,))
    x = torch.rand(5, 1, 4, 4)
    q = vae.posterior(x)
    mu, logvar = vae.encode(x)
    assert isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.batch_shape == (5,)
    torch.testing.assert_close(q.base_dist.scale, torch.exp(0.5 * logvar))
    wae = mlp_wae(latent_dim=2, data_shape=(1, 4, 4), enc_hidden=(8,), dec_hidden=(8,))
    with pytest.raises(ValueError, match="deterministic encoder"):
        importance_log_likelihood(wae, x, n_samples=3)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        importance_log_likelihood(vae, x, n_samples=0)
    with pytest.raises(ValueError, match="batch_size"):
        importance_log_likelihood(vae, x, batch_size=0)
    with pytest.raises(TypeError, match="ImageData"):
        importance_log_likelihood(vae, [x], n_samples=3)
    with pytest.raises(TypeError, match="floating point"):
        importance_log_likelihood(vae, (x * 255).to(torch.uint8), n_samples=3)

    class BadProposal(nn.Module):
        def posterior(self, x):
            return Normal(torch.zeros(x.shape[0], 2), 1.0)  # batch shape (B, 2), no event shape

    with pytest.raises(ValueError, match="event shape"):
        log_importance_weights(BadProposal(), x, 3)


def test_with_proposal_estimates_the_same_log_marginal_for_any_proposal():
    """WithProposal changes q only: with proposals of several widths the IS estimates agree with the exact
    log p(x) of the linear-Gaussian model (within 4 s.e.), and the generative parts are the model's."""
    from vaelab.evaluation.likelihood import WithProposal

    model = LinearGaussian()
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = model.exact_log_marginal(x).detach()
    for c in (0.7, 1.5, 3.0):
        def widened(m, xb, c=c):
            mean, cov = m.exact_posterior(xb)
            return MultivariateNormal(mean, covariance_matrix=c * cov.expand(xb.shape[0], -1, -1))
        wrapped = WithProposal(model, widened)
        assert wrapped.prior is model.prior
        lw = log_importance_weights(wrapped, x, n_samples=20_000, generator=torch.Generator().manual_seed(5))
        ll = torch.logsumexp(lw, 1) - math.log(20_000)
        w = torch.exp(lw - lw.max(1, keepdim=True).values)
        se = w.std(1) / (w.mean(1) * math.sqrt(20_000))
        assert ((ll - exact).abs() < 4 * se + 1e-3).all(), (c, ll - exact, se)
    with pytest.raises(TypeError, match="proposal_fn must be a function"):
        WithProposal(model, 3)


def test_hebae_population_proposal_has_covariance_tau2_sigma_pop():
    from vaelab.models.hebae import population_proposal
    from vaelab.evaluation.likelihood import WithProposal

    data = ImageData.from_float(toy_images(64, seed=2))
    torch.manual_seed(0)
    model = mlp_hebae(latent_dim=3, data_shape=(1, 8, 8), enc_hidden=(16,), dec_hidden=(16,))
    model.population_stats(data)
    x = data.batch(torch.arange(5))
    q = WithProposal(model, population_proposal(0.3)).posterior(x)
    torch.testing.assert_close(q.loc, model.encode(x).mu)
    torch.testing.assert_close(q.covariance_matrix[2], 0.09 * model.pop_sigma, rtol=1e-5, atol=1e-7)
    ll = importance_log_likelihood(WithProposal(model, population_proposal(0.3)), data.subset(4), n_samples=50)
    assert ll.shape == (4,) and torch.isfinite(ll).all()
    with pytest.raises(ValueError, match="tau must be a positive finite number"):
        population_proposal(0.0)
