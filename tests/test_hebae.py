"""HEBAE: the loss against an independent computation, where gradients flow (Sigma, sigma), the Cholesky
reparameterisation's covariance, population estimates, the standard-prior ELBO, training with vaelab.fit."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from vaelab.data.images import ImageData
from vaelab.models.hebae import HEBAE, JITTER, batch_moments, hebae_elbo_std_prior, mlp_hebae
from vaelab.core.posteriors import marginals
from vaelab.objectives.schedules import Constant
from vaelab.training.train import fit

SHAPE = (1, 4, 4)


def tiny(k=3, form="exact", sigma="vector", **kwargs):
    torch.manual_seed(0)
    return mlp_hebae(latent_dim=k, data_shape=SHAPE, enc_hidden=(12,), dec_hidden=(12,), form=form, sigma=sigma,
                     **kwargs).double()


def images(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g, dtype=dtype)


def sigma_rows(model):
    """The last encoder layer and the index of its rows that produce log sigma."""
    last = model.encoder[-1]
    return last, slice(model.latent_dim, None)


@pytest.mark.parametrize("form", ["exact", "code"])
def test_loss_matches_independent_computation(form):
    model, x = tiny(form=form), images(9)
    torch.manual_seed(123)
    terms = model(x)
    torch.manual_seed(123)
    eps = torch.randn(9, 3, dtype=torch.float64).numpy()
    with torch.no_grad():
        h = model.encoder(x.flatten(1)).numpy()
    mu, sig = h[:, :3], np.exp(h[:, 3:])
    beta = mu.mean(0)
    cov = np.cov(mu, rowvar=False, bias=True) + JITTER * np.eye(3)
    kl = kl_divergence(MultivariateNormal(torch.from_numpy(beta), torch.from_numpy(cov)),
                       MultivariateNormal(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)))
    assert terms["reg"].shape == ()
    torch.testing.assert_close(terms["reg"], kl)
    closed = 0.5 * (np.trace(cov) - 3 - np.linalg.slogdet(cov)[1] + beta @ beta)
    assert abs(terms["reg"].item() - closed) < 1e-10
    if form == "exact":
        z = mu + sig * (eps @ np.linalg.cholesky(cov).T)
    else:
        z = mu + eps * np.sqrt(np.diag(cov)) * sig
    with torch.no_grad():
        p = torch.sigmoid(model.decoder(torch.from_numpy(z))).numpy()
    xn = x.flatten(1).numpy()
    rec = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(terms["rec"].detach().numpy(), rec, rtol=1e-9)
    np.testing.assert_allclose(terms["z"].detach().numpy(), z, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(terms["sigma_mean"].numpy(), sig.mean(1), rtol=1e-12)
    assert abs(terms["beta_norm2"].item() - beta @ beta) < 1e-12
    assert abs(terms["logdet_sigma"].item() - np.linalg.slogdet(cov)[1]) < 1e-9


@pytest.mark.parametrize("form", ["exact", "code"])
def test_gradient_through_sigma_only_in_exact_form(form):
    """z_0 depends on x_1 only through the batch covariance Sigma: the exact form (Eq. 8) lets that gradient
    through, the official code's diagonal approximation (Sigma detached) does not."""
    model = tiny(form=form)
    x = images(8).requires_grad_(True)
    torch.manual_seed(1)
    z = model(x)["z"]
    (grad,) = torch.autograd.grad(z[0].sum(), x)
    assert grad[0].abs().sum() > 0  # through mu_0 and sigma_0
    if form == "exact":
        assert grad[1:].abs().sum() > 1e-6
    else:
        assert torch.count_nonzero(grad[1:]) == 0
    # the KL term always depends on the whole batch (beta and Sigma), in both forms
    (greg,) = torch.autograd.grad(model(x)["reg"], x)
    assert (greg.flatten(1).abs().sum(1) > 0).all()


def test_sigma_appears_in_no_loss_term_but_reconstruction():
    model, x = tiny(), images(10)
    last, rows = sigma_rows(model)
    terms = model(x)
    gw, gb = torch.autograd.grad(terms["reg"], (last.weight, last.bias), retain_graph=True)
    assert torch.count_nonzero(gw[rows]) == 0 and torch.count_nonzero(gb[rows]) == 0
    assert gw[:model.latent_dim].abs().sum() > 0  # the mu head gets the KL's gradient
    gw_rec, = torch.autograd.grad(terms["rec"].mean(), last.weight)
    assert gw_rec[rows].abs().sum() > 0  # sigma is shaped only by the noise it adds to rec


def test_cholesky_sampling_has_covariance_sigma():
    """Rows of eps @ L.T have covariance L L^T = Sigma; those of eps @ L (the official code's commented-out
    version) have L^T L != Sigma. Then the model's own samples: with sigma = 1, z - mu ~ N(0, Sigma_batch)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(3, dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    assert not torch.allclose(chol, chol.T)
    eps = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    emp_right = torch.cov((eps @ chol.T).T)
    emp_wrong = torch.cov((eps @ chol).T)
    scale = cov.abs().max()
    assert (emp_right - cov).abs().max() < 0.03 * scale
    assert (emp_wrong - cov).abs().max() > 0.2 * scale
    torch.testing.assert_close(emp_wrong, chol.T @ chol, atol=0.03 * scale.item(), rtol=0)

    model, x = tiny(), images(250)
    last, rows = sigma_rows(model)
    with torch.no_grad():
        last.weight[rows] = 0.0
        last.bias[rows] = 0.0  # log sigma = 0
        torch.manual_seed(2)
        diffs = []
        for _ in range(40):  # every row of every draw: z - mu ~ N(0, Sigma_batch), 10,000 draws
            t = model(x)
            diffs.append(t["z"] - t["mu"])
        mu = t["mu"]
    _, batch_cov = batch_moments(mu)
    emp = torch.cov(torch.cat(diffs).T)
    assert (emp - batch_cov).abs().max() < 0.06 * batch_cov.abs().max()


def test_small_batch_and_bad_arguments_raise_clear_errors():
    model = tiny(k=5)
    with pytest.raises(ValueError, match=r"batch of 5 image.*k=5.*at least k \+ 1 = 6"):
        model(images(5))
    model(images(6))  # k + 1 is enough
    with pytest.raises(ValueError, match="form='cholesky' is unknown"):
        tiny(form="cholesky")
    with pytest.raises(ValueError, match="sigma='matrix' is unknown"):
        tiny(sigma="matrix")
    with pytest.raises(ValueError, match="jitter"):
        tiny(jitter=-1.0)
    bad = HEBAE(torch.nn.Linear(16, 5), torch.nn.Linear(3, 16), 3, SHAPE)
    with pytest.raises(ValueError, match="expected latent_dim \\+ latent_dim = 6"):
        bad(images(8, dtype=torch.float32))
    with pytest.raises(RuntimeError, match="population_stats"):
        model.posterior(images(6))
    # identical images: Sigma = 0; without jitter the Cholesky factorisation fails with a clear error
    same = images(1).expand(8, *SHAPE)
    with pytest.raises(RuntimeError, match="Cholesky.*failed"):
        tiny(jitter=0.0)(same)
    t = tiny()(same)  # with the default jitter Sigma = 1e-6 I: defined, and the KL is large
    assert math.isfinite(t["reg"].item()) and t["reg"].item() > 3 * 0.5 * (-math.log(JITTER) - 1) - 1e-6


@pytest.mark.parametrize("sigma", ["vector", "scalar"])
def test_population_stats_posterior_and_std_prior_elbo(sigma):
    model = tiny(sigma=sigma)
    data = ImageData.from_float(images(50, seed=3))
    beta, cov = model.population_stats(data, batch_size=16)
    with torch.no_grad():
        mu = model.encoder(data.batch().double().flatten(1))[:, :3]
    torch.testing.assert_close(beta, mu.mean(0))
    torch.testing.assert_close(cov, torch.cov(mu.T, correction=0) + JITTER * torch.eye(3, dtype=torch.float64))
    assert int(model.pop_n) == 50
    x = data.batch(torch.arange(7)).double()
    q = model.posterior(x)
    m, tril = q.loc, q.scale_tril
    log_sigma = model.encode(x).log_sigma
    assert log_sigma.shape == (7, 3 if sigma == "vector" else 1)
    s = torch.exp(log_sigma).expand(7, 3)
    expected = s.unsqueeze(-1) * cov * s.unsqueeze(-2)  # diag(sigma) Sigma diag(sigma)
    torch.testing.assert_close(tril @ tril.transpose(-1, -2), expected)
    assert torch.all(tril.triu(1) == 0)
    mu_d, logvar = marginals(q)
    torch.testing.assert_close(logvar, torch.log(torch.diagonal(expected, dim1=-2, dim2=-1)))
    # buffers travel with the state dict
    other = tiny(sigma=sigma)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.posterior(x).scale_tril, tril)

    # ELBO with the N(0, I) prior: the same draws by hand, with torch.distributions' KL
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    with torch.no_grad():
        elbo = hebae_elbo_std_prior(model, x, n_samples=4, generator=g1)
        eps = torch.randn(4, 7, 3, generator=g2, dtype=torch.float64)
        z = m + (tril @ eps.unsqueeze(-1)).squeeze(-1)
        logits = model.decoder(z.reshape(28, 3)).view(4, 7, -1)
        xs = x.flatten(1).expand(4, 7, 16)
        loglik = (xs * torch.nn.functional.logsigmoid(logits) + (1 - xs) * torch.nn.functional.logsigmoid(-logits))
        q = MultivariateNormal(m, scale_tril=tril)
        p = MultivariateNormal(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
        expected_elbo = loglik.sum(-1).mean(0) - kl_divergence(q, p)
    torch.testing.assert_close(elbo, expected_elbo)


@pytest.mark.parametrize("form", ["exact", "code"])
def test_fit_lowers_the_loss(form):
    g = torch.Generator().manual_seed(0)
    base = torch.zeros(2, 1, 8, 8)
    base[0, :, 2:4, :] = 1.0
    base[1, :, :, 5:7] = 1.0
    labels = torch.randint(0, 2, (256,), generator=g)
    x = (0.8 * base[labels] + 0.2 * torch.rand(256, 1, 8, 8, generator=g)).clamp(0, 1)
    data = ImageData.from_float(x)
    torch.manual_seed(0)
    model = mlp_hebae(latent_dim=4, data_shape=(1, 8, 8), enc_hidden=(32,), dec_hidden=(32,), form=form)
    hist = fit(model, data, epochs=4, batch_size=32, schedule=Constant(1.0), lr=3e-3, progress=False)
    loss = hist.epochs["loss"]
    assert loss[-1] < loss[0] - 3.0
    for key in ("rec", "reg", "sigma_mean", "beta_norm2", "logdet_sigma"):
        assert key in hist.steps and all(math.isfinite(v) for v in hist.steps[key])


def test_diagnostics_use_hebae_marginals_not_log_sigma():
    """posterior_stats must read HEBAE's (mu, log sigma) through its posterior, not as (mu, logvar)."""
    from vaelab.data.images import ImageData
    from vaelab.evaluation.diagnostics import posterior_stats
    from vaelab.models.hebae import mlp_hebae

    torch.manual_seed(0)
    model = mlp_hebae(latent_dim=3, data_shape=(1, 4, 4), enc_hidden=(8,), dec_hidden=(8,))
    data = ImageData((torch.rand(40, 1, 4, 4) * 255).to(torch.uint8))
    model.population_stats(data)
    mu, logvar = posterior_stats(model, data)
    ref_mu, ref_logvar = marginals(model.posterior(data.batch()))
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(logvar, ref_logvar)
    _, log_sigma = model.encode(data.batch())
    assert not torch.allclose(logvar, log_sigma)


def test_posterior_samples_carry_the_full_posterior_covariance():
    """diagnostics.posterior_samples draws HEBAE's z from N(mu, S) with the full S = L L^T (Fig. 2's
    correlations), not from the diagonal marginals: the sample covariance per image matches S."""
    from vaelab.evaluation.diagnostics import posterior_samples

    model = tiny(k=3).float()
    data = ImageData((torch.rand(40, *SHAPE, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8))
    with torch.no_grad():  # make Sigma strongly correlated: mix the mean rows of the encoder
        last = model.encoder[-1]
        mix = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.5, 0.5, 0.2]])
        last.weight[:3] = mix @ last.weight[:3]
        last.bias[:3] = mix @ last.bias[:3]
    model.population_stats(data)
    z = posterior_samples(model, data.subset(2), n_samples=40_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 40_000, 3)
    q = model.posterior(data.subset(2).batch())
    mu, tril = q.loc, q.scale_tril
    for i in range(2):
        s = (tril[i] @ tril[i].T).detach()
        emp = torch.cov(z[i].T)
        torch.testing.assert_close(z[i].mean(0), mu[i].detach(), atol=4 * s.diagonal().max().sqrt() / 200 + 1e-6,
                                   rtol=0)
        torch.testing.assert_close(emp, s, atol=0.03 * s.diagonal().max(), rtol=0)
        corr = s[0, 1] / (s[0, 0] * s[1, 1]).sqrt()
        assert corr.abs() > 0.3  # the check is about correlations: there are some


def test_batch_moments_of_half_precision_means_are_float32_and_positive_definite():
    """Under mixed precision the encoder's means arrive in bf16; Sigma is computed in float32 from them."""
    g = torch.Generator().manual_seed(0)
    mu32 = torch.randn(100, 64, generator=g) @ torch.randn(64, 64, generator=g) / 8
    beta, sigma = batch_moments(mu32.bfloat16())
    assert beta.dtype == sigma.dtype == torch.float32
    assert int(torch.linalg.cholesky_ex(sigma)[1]) == 0
    ref_beta, ref_sigma = batch_moments(mu32.bfloat16().float())
    torch.testing.assert_close(sigma, ref_sigma)
    torch.testing.assert_close(beta, ref_beta)
