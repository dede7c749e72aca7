"""Log-densities and KLs against torch.distributions, closed forms against Monte Carlo."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from vaelab.core import densities as D
from toys import log_normal_full



@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_tril(d, batch=(), gen=None):
    a = torch.randn(*batch, d, d, generator=gen)
    spd = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d)
    return torch.linalg.cholesky(spd)


def test_log_normal_diag_matches_torch():
    g = torch.Generator().manual_seed(0)
    x, mu, lv = (torch.randn(7, 5, generator=g) for _ in range(3))
    ref = Normal(mu, torch.exp(0.5 * lv)).log_prob(x).sum(-1)
    torch.testing.assert_close(D.log_normal_diag(x, mu, lv), ref)
    torch.testing.assert_close(D.log_standard_normal(x), Normal(0.0, 1.0).log_prob(x).sum(-1))


def test_log_normal_diag_event_dims_sums_images():
    g = torch.Generator().manual_seed(1)
    x, mu = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    lv = torch.tensor(-1.3)
    ref = Normal(mu, math.exp(-0.65)).log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(D.log_normal_diag(x, mu, lv, event_dims=3), ref)


def test_log_bernoulli_binary_and_grey():
    g = torch.Generator().manual_seed(2)
    logits = 4 * torch.randn(6, 10, generator=g)
    xb = torch.bernoulli(torch.full((6, 10), 0.3), generator=g)
    torch.testing.assert_close(D.log_bernoulli(xb, logits), Bernoulli(logits=logits).log_prob(xb).sum(-1))
    xg = torch.rand(6, 10, generator=g)  # grey values: the continuous relaxation used by HEBAE
    p = torch.sigmoid(logits)
    torch.testing.assert_close(D.log_bernoulli(xg, logits), (xg * p.log() + (1 - xg) * (1 - p).log()).sum(-1))


def test_log_normal_full_matches_torch():
    g = torch.Generator().manual_seed(3)
    L = random_tril(4, (5,), g)
    mu, x = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    torch.testing.assert_close(log_normal_full(x, mu, L), MultivariateNormal(mu, scale_tril=L).log_prob(x))


def test_kl_diag_matches_torch_and_std_special_case():
    g = torch.Generator().manual_seed(4)
    mq, lq, mp, lp = (torch.randn(8, 6, generator=g) for _ in range(4))
    ref = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    torch.testing.assert_close(D.kl_normal_diag(mq, lq, mp, lp), ref)
    zeros = torch.zeros_like(mq)
    torch.testing.assert_close(D.kl_std_normal(mq, lq), D.kl_normal_diag(mq, lq, zeros, zeros))
    torch.testing.assert_close(D.kl_std_normal_per_dim(mq, lq).sum(-1), D.kl_std_normal(mq, lq))


def test_kl_std_normal_against_monte_carlo():
    g = torch.Generator().manual_seed(5)
    mu, lv = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    q = Normal(mu, (0.5 * lv).exp())
    z = mu + (0.5 * lv).exp() * torch.randn(400_000, 3, 4, generator=g)
    ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)
    se = ratio.std(0) / math.sqrt(len(z))
    assert ((D.kl_std_normal(mu, lv) - ratio.mean(0)).abs() < 4 * se).all()


def test_kl_full_matches_torch_both_forms():
    g = torch.Generator().manual_seed(6)
    Lq, Lp = random_tril(5, (3,), g), random_tril(5, (3,), g)
    mq, mp = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    ref = kl_divergence(MultivariateNormal(mq, scale_tril=Lq), MultivariateNormal(mp, scale_tril=Lp))
    torch.testing.assert_close(D.kl_normal_full(mq, Lq, mp, Lp), ref)
    ref0 = kl_divergence(MultivariateNormal(mq, scale_tril=Lq), MultivariateNormal(torch.zeros(5), torch.eye(5)))
    torch.testing.assert_close(D.kl_normal_full(mq, Lq), ref0)
    # a diagonal scale_tril gives the diagonal KL
    lv = torch.randn(3, 5, generator=g)
    torch.testing.assert_close(D.kl_normal_full(mq, torch.diag_embed((0.5 * lv).exp())), D.kl_std_normal(mq, lv))


def test_kl_std_normal_gradient_matches_derivation():
    """d KL / d mu = mu and d KL / d logvar = (exp(logvar) - 1) / 2 (from the closed form)."""
    g = torch.Generator().manual_seed(7)
    mu = torch.randn(4, 3, generator=g, requires_grad=True)
    lv = torch.randn(4, 3, generator=g, requires_grad=True)
    D.kl_std_normal(mu, lv).sum().backward()
    torch.testing.assert_close(mu.grad, mu.detach())
    torch.testing.assert_close(lv.grad, 0.5 * (lv.detach().exp() - 1))
