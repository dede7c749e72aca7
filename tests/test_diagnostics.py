"""Diagnostics over a data set: active units, KL per dimension, covariances, ELBO surgery, MIC/TIC."""
import math

import minepy
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import vaelab
from vaelab.evaluation import diagnostics as dg
from vaelab.data.images import ImageData
from vaelab.models.wae import mlp_wae


def toy_data(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData.from_float(torch.rand(n, 1, 6, 6, generator=g))


def toy_vae():
    torch.manual_seed(0)
    return vaelab.mlp_vae(latent_dim=3, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,))


def toy_wae():
    torch.manual_seed(0)
    return mlp_wae(latent_dim=3, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,))


# ------------------------------------------------------------------ running a model over a data set
def test_posterior_stats_vae_batched_no_grad_and_mode_restored():
    model, data = toy_vae(), toy_data()
    mu, logvar = dg.posterior_stats(model, data, batch_size=7)
    ref_mu, ref_lv = model.encode(data.batch())
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(logvar, ref_lv)
    assert not mu.requires_grad and model.training
    model.eval()
    dg.posterior_stats(model, data)
    assert not model.training


def test_posterior_stats_and_samples_wae():
    model, data = toy_wae(), toy_data()
    z, logvar = dg.posterior_stats(model, data, batch_size=16)
    assert logvar is None
    torch.testing.assert_close(z, model.encode(data.batch()))
    samples = dg.posterior_samples(model, data, n_samples=4)
    assert samples.shape == (50, 4, 3)
    torch.testing.assert_close(samples, z.unsqueeze(1).expand(-1, 4, -1))
    assert torch.equal(samples[:, 0], samples[:, 3])  # S identical copies of the code


def test_posterior_samples_vae():
    model, data = toy_vae(), toy_data()
    mu, logvar = dg.posterior_stats(model, data)
    samples = dg.posterior_samples(model, data, n_samples=3, generator=torch.Generator().manual_seed(4))
    eps = torch.randn(3, 50, 3, generator=torch.Generator().manual_seed(4)).transpose(0, 1)  # draws first
    torch.testing.assert_close(samples, mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps)
    many = dg.posterior_samples(model, data, 4000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(many.mean(1), mu, atol=0.1, rtol=0)
    torch.testing.assert_close(many.var(1).log(), logvar, atol=0.15, rtol=0)


def test_codes_covariance_is_the_means_covariance_plus_the_mean_posterior_variance():
    """Law of total covariance, Cov z = Cov_x mu(x) + E_x diag sigma^2(x): why HEBAE's Fig. 2 (chapter 02b)
    draws the means' matrices, where a collapsed dimension (mu constant, sigma = 1) has variance 0, not 1."""
    model, data = toy_vae(), toy_data()
    mu, logvar = dg.posterior_stats(model, data)
    z = dg.posterior_samples(model, data, 20_000, torch.Generator().manual_seed(1)).reshape(-1, 3)
    cov_z = dg.latent_cov_corr(z)[0]
    cov_mu = torch.cov(mu.T, correction=0)
    torch.testing.assert_close(cov_z, cov_mu + torch.diag(logvar.exp().mean(0)), atol=0.01, rtol=0)
    assert (cov_z - cov_mu).diagonal().min() > 0.5  # the draws' diagonal carries the posterior variances


def test_posterior_stats_rejects_non_image_data():
    with pytest.raises(TypeError, match="data must be a vaelab.data.ImageData"):
        dg.posterior_stats(toy_vae(), torch.rand(4, 1, 6, 6))


# ------------------------------------------------------------------ per-dimension summaries
def test_active_units():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(2000, 5, generator=g) * torch.tensor([1.0, 1.0, 1.0, 1e-2, 1e-2]) + 3.0
    count, var = dg.active_units(mu)
    assert count == 3
    torch.testing.assert_close(var, torch.from_numpy(np.var(mu.numpy(), axis=0, ddof=1)))
    # unbiased variance: 0.2^2 / 2 = 0.02 > 0.01 (the N-normalised 0.01 would not count)
    count, var = dg.active_units(torch.tensor([[0.0], [0.2]], dtype=torch.float64))
    assert count == 1 and var.item() == pytest.approx(0.02)
    assert dg.active_units(mu, threshold=0.0)[0] == 5


def test_kl_per_dim_by_hand():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]], dtype=torch.float64)
    # 1/2 (mu^2 + sigma^2 - 1 - log sigma^2) per entry
    kl = [[0.5, 0.5 * (1 - math.log(2))], [0.5 * (math.log(2) - 0.5), 2.0]]
    expected = torch.tensor([(kl[0][0] + kl[1][0]) / 2, (kl[0][1] + kl[1][1]) / 2], dtype=torch.float64)
    torch.testing.assert_close(dg.kl_per_dim(mu, logvar), expected)


def test_latent_cov_corr_matches_numpy():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(300, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g, dtype=torch.float64)
    cov, corr = dg.latent_cov_corr(z)
    torch.testing.assert_close(cov, torch.from_numpy(np.cov(z.numpy(), rowvar=False)))
    torch.testing.assert_close(corr, torch.from_numpy(np.corrcoef(z.numpy(), rowvar=False)))
    cov0, corr0 = dg.latent_cov_corr(z, correction=0)
    torch.testing.assert_close(cov0, cov * 299 / 300)
    torch.testing.assert_close(corr0, corr)
    m = torch.tensor([[1.0, -0.5, 0.2], [-0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    assert dg.mean_abs_offdiag(m).item() == pytest.approx((0.5 + 0.2 + 0.3) / 3)


@pytest.mark.parametrize("call, match", [
    (lambda: dg.active_units(torch.randn(10, 3), threshold=-0.1), "threshold must be a number >= 0"),
    (lambda: dg.active_units(torch.randn(10)), "mu must be a 2-D tensor"),
    (lambda: dg.active_units(torch.randn(1, 3)), "mu has 1 row"),
    (lambda: dg.active_units(torch.tensor([[0.0], [float("nan")]])), "mu contains NaN"),
    (lambda: dg.kl_per_dim(torch.randn(5, 3), None), "logvar is None"),
    (lambda: dg.kl_per_dim(torch.randn(5, 3), torch.randn(5, 2)), "logvar has shape"),
    (lambda: dg.latent_cov_corr(torch.randn(10, 3, 2)), "z must be a 2-D tensor"),
    (lambda: dg.mean_abs_offdiag(torch.randn(3, 2)), "m must be a square matrix"),
    (lambda: dg.mean_abs_offdiag(torch.ones(1, 1)), "m must be a square matrix"),
    (lambda: dg.posterior_samples(toy_vae(), toy_data(), 0), "n_samples must be a positive"),
    (lambda: dg.elbo_surgery(torch.randn(5, 3), None), "logvar is None"),
    (lambda: dg.log_aggregate_posterior(torch.randn(4, 2), torch.randn(5, 3), torch.zeros(5, 3)), "z has 2 latent"),
    (lambda: dg.mic_tic_index(torch.randn(10, 3)), r"z must have shape \(N, S, k\)"),
    (lambda: dg.mic_tic_index(torch.randn(10, 2, 3), rank_by=torch.randn(10, 2)), "rank_by must have shape"),
    (lambda: dg.mic_tic_index(torch.full((10, 2, 3), float("nan"))), "z contains NaN"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ ELBO surgery
def test_log_aggregate_posterior_matches_mixture():
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(30, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(30, 3, generator=g, dtype=torch.float64) - 1.0
    z = 1.5 * torch.randn(10, 3, generator=g, dtype=torch.float64)
    mix = MixtureSameFamily(Categorical(logits=torch.zeros(30, dtype=torch.float64)),
                            Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    torch.testing.assert_close(dg.log_aggregate_posterior(z, mu, logvar, chunk_size=3), mix.log_prob(z))
    # float32 inputs give the float64 answer (computed in float64)
    torch.testing.assert_close(dg.log_aggregate_posterior(z.float(), mu.float(), logvar.float()),
                               mix.log_prob(z.float().double()), atol=1e-5, rtol=0)


def synthetic_posteriors(n=200, seed=3):
    g = torch.Generator().manual_seed(seed)
    mu = 0.8 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    logvar = -1.0 + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return mu, logvar


def test_elbo_surgery_adds_up():
    mu, logvar = synthetic_posteriors()
    out = dg.elbo_surgery(mu, logvar, n_samples=20, generator=torch.Generator().manual_seed(0))
    assert out["avg_kl"] == pytest.approx(dg.kl_per_dim(mu, logvar).sum().item(), rel=1e-12)
    assert out["log_n"] == pytest.approx(math.log(200))
    assert out["mutual_info"] + out["marginal_kl"] == pytest.approx(out["mc_avg_kl"], abs=1e-9)
    combined = math.hypot(out["mutual_info_se"], out["marginal_kl_se"])
    assert abs(out["mc_avg_kl"] - out["avg_kl"]) < 4 * combined
    assert abs(out["mc_avg_kl"] - out["avg_kl"]) < 4 * out["mc_avg_kl_se"]
    assert 0 < out["mutual_info"] <= out["log_n"] and out["marginal_kl"] > 0
    assert 0 < out["mutual_info_se"] < 0.05
    # the same generator seed gives the same numbers
    again = dg.elbo_surgery(mu, logvar, n_samples=20, generator=torch.Generator().manual_seed(0))
    assert again == out


def test_elbo_surgery_identical_posteriors_have_no_information():
    mu = torch.tensor([[0.7, -0.4]], dtype=torch.float64).expand(200, -1)
    logvar = torch.tensor([[-0.5, 0.3]], dtype=torch.float64).expand(200, -1)
    out = dg.elbo_surgery(mu, logvar, n_samples=10, generator=torch.Generator().manual_seed(1))
    assert abs(out["mutual_info"]) < 1e-9
    assert abs(out["marginal_kl"] - out["avg_kl"]) < 4 * out["marginal_kl_se"]


def test_elbo_surgery_separated_posteriors_reach_log_n():
    grid = torch.stack(torch.meshgrid(torch.arange(20.0), torch.arange(10.0), indexing="ij"), -1).reshape(200, 2)
    mu = (grid - grid.mean(0)).double() * 0.5
    logvar = torch.full_like(mu, -12.0)  # sd 0.0025, components 0.5 apart
    out = dg.elbo_surgery(mu, logvar, n_samples=5, generator=torch.Generator().manual_seed(2))
    assert out["mutual_info"] == pytest.approx(math.log(200), abs=1e-6)
    assert out["mutual_info"] <= out["log_n"]


# ------------------------------------------------------------------ MIC / TIC
def test_mic_tic_index():
    n, s = 100, 5
    g = torch.Generator().manual_seed(5)
    index = torch.arange(n, dtype=torch.float64)
    code = torch.randn(n, generator=g, dtype=torch.float64)  # distinct per index, not monotone in it
    z = torch.stack([
        (0.1 * index).unsqueeze(1).expand(n, s),              # a deterministic, monotone code
        torch.randn(n, s, generator=g, dtype=torch.float64),  # noise that ignores the index
        code.unsqueeze(1).expand(n, s),                       # a deterministic, shuffled code
    ], -1)
    mic, tic = dg.mic_tic_index(z)
    assert mic.shape == (3,) and tic.shape == (3,)
    assert mic[0] > 0.99 and mic[1] < 0.3 and mic[2] > mic[1]
    ranked, _ = dg.mic_tic_index(z, rank_by=torch.stack([index, index, code], 1))
    assert ranked[0] > 0.99 and ranked[2] > 0.99 and ranked[1] < 0.3
    mine = minepy.MINE(alpha=0.6, c=15)
    mine.compute_score(np.repeat(np.arange(n, dtype=float), s), z[:, :, 1].reshape(-1).numpy())
    assert mic[1].item() == pytest.approx(mine.mic()) and tic[1].item() == pytest.approx(mine.tic())
    _, tic_norm = dg.mic_tic_index(z, tic_norm=True)
    assert tic_norm[1].item() == pytest.approx(mine.tic(norm=True)) and 0 <= tic_norm.min() and tic_norm.max() <= 1


def test_prior_hole_ratio_by_hand():
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])  # nearest others: 1, 1, 2
    prior = torch.tensor([[0.0, 2.0], [3.0, 0.5], [1.0, 4.0]])  # nearest codes: 2, 0.5, 4
    assert dg.prior_hole_ratio(prior, codes) == pytest.approx(2.0)


def test_prior_hole_ratio_is_one_for_two_samples_of_one_distribution():
    """Uniform points in the unit square: for a Poisson process the distance from a fresh point to
    its nearest point of the process has the law of the distance from a point of the process to
    its nearest other point (Slivnyak), median sqrt(ln 2 / (n pi)); a prior spread over the plane
    around codes on a ring falls into holes."""
    g = torch.Generator().manual_seed(0)
    n = 4000
    codes, prior = torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g)
    assert dg.prior_hole_ratio(prior, codes) == pytest.approx(1.0, abs=0.05)
    d = torch.cdist(codes, codes).fill_diagonal_(float("inf")).min(1).values.median()
    assert d.item() == pytest.approx(math.sqrt(math.log(2) / (n * math.pi)), rel=0.05)
    angle = 2 * math.pi * torch.rand(600, generator=g)
    ring = torch.stack([angle.cos(), angle.sin()], 1)
    assert dg.prior_hole_ratio(torch.randn(600, 2, generator=g), ring) > 5
    angle2 = 2 * math.pi * torch.rand(600, generator=g)
    on_ring = torch.stack([angle2.cos(), angle2.sin()], 1)
    assert dg.prior_hole_ratio(on_ring, ring) == pytest.approx(1.0, abs=0.2)


def test_prior_hole_ratio_bad_input():
    with pytest.raises(ValueError, match="same latent space"):
        dg.prior_hole_ratio(torch.zeros(3, 2), torch.rand(3, 3))
    with pytest.raises(ValueError, match="spacing is 0"):
        dg.prior_hole_ratio(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="at least 2"):
        dg.prior_hole_ratio(torch.zeros(3, 2), torch.zeros(1, 2))
