"""posterior(x) of every model: the distributions against the encoders, the KLs against the book's closed
forms, and draw() against the distributions' own densities."""
import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from vaelab.data.images import ImageData
from vaelab.core.densities import kl_normal_diag, kl_normal_full, kl_std_normal, log_normal_diag
from vaelab.models.hebae import mlp_hebae
from vaelab.models.hvae import hvae
from vaelab.core.posteriors import (DiagonalNormal, PointMass, TwoLevel, draw, marginals, normal,
                               standard_normal_like)
from vaelab.models.vae import mlp_vae
from vaelab.models.wae import mlp_wae

SHAPE = (1, 4, 4)


def images(n=12, seed=0):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def tiny(builder, **kw):
    torch.manual_seed(0)
    return builder(latent_dim=3, data_shape=SHAPE, enc_hidden=(8,), dec_hidden=(8,), **kw)


def test_vae_posterior_is_the_encoders_diagonal_gaussian():
    model, x = tiny(mlp_vae), images()
    mu, logvar = model.encode(x)
    q = model.posterior(x)
    assert isinstance(q, DiagonalNormal) and q.batch_shape == (12,) and q.event_shape == (3,)
    torch.testing.assert_close(q.mean, mu)
    torch.testing.assert_close(q.stddev, torch.exp(0.5 * logvar))
    torch.testing.assert_close(q.logvar, logvar)
    z = torch.randn(5, 12, 3)
    torch.testing.assert_close(q.log_prob(z), log_normal_diag(z, mu, logvar))
    with pytest.raises(ValueError, match="x has shape"):
        model.posterior(torch.rand(2, 16))


def test_kl_divergence_uses_the_books_closed_forms():
    model, x = tiny(mlp_vae), images()
    q = model.posterior(x)
    mu, logvar = q.loc, q.logvar
    std = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    torch.testing.assert_close(kl_divergence(q, std), kl_std_normal(mu, logvar))
    torch.testing.assert_close(kl_divergence(q, standard_normal_like(q)), kl_std_normal(mu, logvar))
    p = DiagonalNormal(torch.randn(3), torch.randn(3))
    torch.testing.assert_close(kl_divergence(q, p), kl_normal_diag(mu, logvar, p.loc, p.logvar))
    # HEBAE's exact posterior against N(0, I): torch's MultivariateNormal pair, the closed form of chapter 02
    hebae = tiny(mlp_hebae)
    hebae.population_stats(ImageData.from_float(images(40, seed=1)))
    qh = hebae.posterior(x)
    torch.testing.assert_close(kl_divergence(qh, standard_normal_like(qh)), kl_normal_full(qh.loc, qh.scale_tril))


def test_hebae_exact_and_code_forms_share_the_marginals():
    data = ImageData.from_float(images(40, seed=1))
    exact, code = tiny(mlp_hebae, form="exact"), tiny(mlp_hebae, form="code")
    code.load_state_dict(exact.state_dict())
    exact.population_stats(data)
    code.population_stats(data)
    x = images()
    qe, qc = exact.posterior(x), code.posterior(x)
    assert isinstance(qe, MultivariateNormal) and isinstance(qc, DiagonalNormal)
    mu, log_sigma = exact.encode(x)
    s = torch.exp(log_sigma)
    cov = s.unsqueeze(-1) * exact.pop_sigma * s.unsqueeze(-2)  # diag(sigma) Sigma_pop diag(sigma)
    torch.testing.assert_close(qe.covariance_matrix, cov, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(qc.loc, qe.loc)
    torch.testing.assert_close(qc.variance, qe.variance, rtol=1e-5, atol=1e-8)  # the diagonal of the exact one
    me, lve = marginals(qe)
    mc, lvc = marginals(qc)
    torch.testing.assert_close(me, mc)
    torch.testing.assert_close(lve, lvc, rtol=1e-5, atol=1e-5)


TINY = torch.finfo(torch.float32).tiny  # below it float32 is subnormal (digits lost), then 0


@pytest.mark.parametrize("shift", [45.0, 60.0, 95.0, 120.0])
def test_hebae_posterior_stays_exact_when_sigma_underflows(shift):
    """A trained HEBAE drives sigma towards 0 (chapter 02's study: log sigma down to -92 at k = 5). At
    log sigma = -45 the float32 variance sigma^2 Sigma_pop,jj is subnormal (its log has lost digits), at
    -60 it is 0 while scale_tril holds sigma; at -95 scale_tril's diagonal is subnormal, at -120 it is 0
    too. The marginals' log variance is still
    2 log sigma + log Sigma_pop,jj (the code form's, which never squares), and the KL to N(0, I) is still
    its closed form 1/2 (tr Sigma + |mu|^2 - k - log det Sigma) with log det Sigma = 2 sum log sigma +
    log det Sigma_pop, so the standard ELBO is finite; where nothing underflows, both are torch's own
    numbers bit for bit."""
    from vaelab.evaluation.diagnostics import kl_per_dim
    from vaelab.models.hebae import hebae_elbo_std_prior

    data = ImageData.from_float(images(40, seed=1))
    exact, code = tiny(mlp_hebae, form="exact"), tiny(mlp_hebae, form="code")
    exact.population_stats(data)
    x = images()
    before = exact.posterior(x)
    plain = MultivariateNormal(before.loc, scale_tril=before.scale_tril, validate_args=False)
    assert torch.equal(marginals(before)[1], torch.log(before.variance))
    assert torch.equal(kl_divergence(before, standard_normal_like(before)),
                       kl_divergence(plain, standard_normal_like(plain)))
    with torch.no_grad():
        exact.encoder[-1].bias[3:] -= shift  # the log sigma half of the last layer
    code.load_state_dict(exact.state_dict())
    code.population_stats(data)
    qe = exact.posterior(x)
    diag, var = torch.diagonal(qe.scale_tril, dim1=-2, dim2=-1), qe.variance
    assert {45: (var > 0).all() and (var < TINY).all() and (diag >= TINY).all(),
            60: (var == 0).all() and (diag >= TINY).all(),
            95: (var == 0).all() and (diag > 0).all() and (diag < TINY).all(),
            120: (diag == 0).all()}[int(shift)]
    mu, logvar = marginals(qe)
    log_sigma = exact.encode(x).log_sigma.double()
    pop = exact.pop_sigma.double()
    expected = 2 * log_sigma + torch.log(torch.diagonal(pop))
    torch.testing.assert_close(logvar.double(), expected, rtol=0, atol=2e-5)  # float32's rounding at -100
    torch.testing.assert_close(logvar, marginals(code.posterior(x))[1], rtol=1e-5, atol=1e-4)
    kl_j = kl_per_dim(mu, logvar)
    assert torch.isfinite(kl_j).all() and (kl_j > shift - 10).all()  # -logvar / 2 per dimension
    k = mu.shape[1]
    cov = torch.exp(log_sigma).unsqueeze(-1) * pop * torch.exp(log_sigma).unsqueeze(-2)
    kl = 0.5 * (torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) + mu.double().pow(2).sum(-1) - k
                - 2 * log_sigma.sum(-1) - torch.logdet(pop))
    torch.testing.assert_close(kl_divergence(qe, standard_normal_like(qe)).double(), kl, rtol=0, atol=1e-4)
    with torch.no_grad():
        elbo = hebae_elbo_std_prior(exact, x, 1, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(elbo).all()
    _, log_q = draw(qe, 3, torch.Generator().manual_seed(0))  # log q(z), read off the eps behind z
    eps = torch.randn((3, *mu.shape), generator=torch.Generator().manual_seed(0)).double()
    expected = (-0.5 * eps.pow(2).sum(-1) - 0.5 * k * math.log(2 * math.pi)
                - (log_sigma.sum(-1) + 0.5 * torch.logdet(pop)))
    torch.testing.assert_close(log_q.double(), expected, rtol=0, atol=1e-4)


def test_wae_posterior_is_a_point_mass_without_density():
    model, x = tiny(mlp_wae), images()
    q = model.posterior(x)
    assert isinstance(q, PointMass) and q.batch_shape == (12,) and q.event_shape == (3,)
    torch.testing.assert_close(q.mean, model.encode(x))
    z, _ = draw(q, 4, torch.Generator().manual_seed(0), log_prob=False)
    assert z.shape == (4, 12, 3) and torch.equal(z[0], z[3])
    assert marginals(q)[1] is None
    with pytest.raises(ValueError, match="deterministic encoder"):
        draw(q, 2)


@pytest.mark.parametrize("kind", ["vae", "hebae", "hvae"])
def test_draw_reads_log_q_off_the_noise_and_repeats_with_a_generator(kind):
    x = images()
    if kind == "hvae":
        torch.manual_seed(0)
        model = hvae(latent_dim=3, hidden=8, prior="standard", data_shape=SHAPE)
    else:
        model = tiny(mlp_vae if kind == "vae" else mlp_hebae)
        if kind == "hebae":
            model.population_stats(ImageData.from_float(images(40, seed=1)))
    q = model.posterior(x)
    z, log_q = draw(q, 6, torch.Generator().manual_seed(2))
    assert z.shape == (6, 12, q.event_shape[0]) and log_q.shape == (6, 12)
    torch.testing.assert_close(log_q, q.log_prob(z), rtol=1e-5, atol=1e-4)
    again, _ = draw(q, 6, torch.Generator().manual_seed(2))
    assert torch.equal(z, again)
    if kind == "hvae":
        assert isinstance(q, TwoLevel)


def test_normal_draws_on_the_generators_device_in_the_dtype_of_like():
    like = torch.zeros(2, dtype=torch.float64)
    a = normal((3, 2), like, torch.Generator().manual_seed(1))
    assert a.dtype == torch.float64 and torch.equal(a, torch.randn(3, 2, generator=torch.Generator().manual_seed(1),
                                                                   dtype=torch.float64))


@pytest.mark.parametrize("shift", [60.0, 95.0, 120.0])
def test_hebae_code_form_posterior_stays_exact_when_its_scale_underflows(shift):
    """The code form's posterior is the diagonal N(mu, diag(sigma^2 Sigma_pop,jj)), a ``DiagonalNormal``
    that holds log variances, so its marginals never underflow; its scale exp(logvar / 2) is subnormal
    in float32 once log sigma < -87 and 0 once log sigma < -103. At log sigma = -95 and -120 the KL to
    N(0, I) is still its closed form
    1/2 sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j) and log q(z) still -1/2 |eps|^2 - 1/2 sum logvar -
    k/2 log 2 pi; at -60 (nothing underflows) both are the numbers of torch's plain formulas bit for bit."""
    from vaelab.models.hebae import hebae_elbo_std_prior

    data = ImageData.from_float(images(40, seed=1))
    code = tiny(mlp_hebae, form="code")
    with torch.no_grad():
        code.encoder[-1].bias[3:] -= shift  # the log sigma half of the last layer
    code.population_stats(data)
    x = images()
    q = code.posterior(x)
    assert {60: (q.scale >= TINY).all(), 95: (q.scale > 0).all() and (q.scale < TINY).all(),
            120: (q.scale == 0).all()}[int(shift)]
    mu, logvar = marginals(q)
    k = mu.shape[1]
    kl = 0.5 * (logvar.double().exp() + mu.double().pow(2) - 1 - logvar.double()).sum(-1)
    got = kl_divergence(q, standard_normal_like(q))
    torch.testing.assert_close(got.double(), kl, rtol=0, atol=1e-4)
    if shift == 60:  # torch's plain formulas: -sum log diag(scale) in the full-covariance closed form
        assert torch.equal(got, kl_normal_full(q.loc, torch.diag_embed(q.scale),
                                               torch.zeros_like(mu), torch.eye(k).expand(len(x), k, k)))
    with torch.no_grad():
        elbo = hebae_elbo_std_prior(code, x, 1, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(elbo).all()
    _, log_q = draw(q, 3, torch.Generator().manual_seed(0))
    eps = torch.randn((3, *mu.shape), generator=torch.Generator().manual_seed(0)).double()
    expected = -0.5 * eps.pow(2).sum(-1) - 0.5 * k * math.log(2 * math.pi) - 0.5 * logvar.double().sum(-1)
    torch.testing.assert_close(log_q.double(), expected, rtol=0, atol=1e-4)
    if shift == 60:
        assert torch.equal(log_q, -0.5 * (eps.float() ** 2).sum(-1) - torch.log(q.scale).sum(-1)
                           - 0.5 * k * math.log(2 * math.pi))
