# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # VampPrior: the optimal prior, its gradients, and a two-level model
#
# [Chapter 1](01_vae_collapse.ipynb) split the VAE's KL term into the information a code carries about its image and the
# mismatch between the aggregate posterior $q(z) = \frac1N\sum_n q(z\mid x_n)$ and the prior.
# {cite:t}`tomczak2018vampprior` take the second part at its word: if the prior is free, the best
# prior *is* the aggregate posterior, and a cheap approximation of it, a mixture of the encoder's own
# posteriors at $K$ learned pseudo-inputs, is the VampPrior. This chapter derives that claim and checks it;
# writes the VampPrior, the mixture-of-Gaussians prior and the two-level model by hand and checks each
# against `vaelab`'s version; derives the gradients the VampPrior gives the encoder and checks them against
# autograd; validates the importance-sampled log-likelihood on a model with an exact marginal; and trains
# the paper's MNIST models at a reduced scale. The paper's own schedule (up to 2,000 epochs per model) is
# the work of the study page {doc}`03b_vampprior_study`, one model per execution; this page reads its
# records and sets them beside the paper's Table 1.

# %% tags=["parameters"]
# Parameters (papermill: -p name value). Default scale: the book build, minutes on
# 2 CPU cores. The paper's schedule runs on the study page (book/03b_vampprior_study),
# one model per execution; this page reads its records.
epochs = 12            # the paper: up to 2000 with early stopping
warmup_epochs = 4      # KL weight rises linearly to 1 over these epochs; the paper: 100
patience = 0           # early-stopping look-ahead in epochs (0: off); the paper: 50
train_size = 10_000    # training images (dynamically binarised); the paper: 50,000
n_pseudo = 100         # K pseudo-inputs / mixture components; the paper: 500
k_grid = (1, 10, 100)  # K values for the ELBO-vs-K comparison (Fig. 2 style)
latent_dim = 40
hidden = 300
batch_size = 100
lr = 5e-4
ll_samples = 5000      # importance samples per test image (the paper: 5,000)
ll_images = 200        # test images for the log-likelihood; the paper: all 10,000
seed = 0
device = "auto"
data_root = None
out_dir = "runs/03_vampprior"
resume = True

# %%
# Colab: install vaelab (the package this book is built on) when it is missing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vaelab @ git+https://github.com/vaelab/vaelab"], check=True)

from vaelab.lab.chapter import setup

ch = setup(globals(), "03_vampprior")  # checks every parameter; smoke scale (CI)

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from torch import nn
from torch.distributions import (Categorical, Independent, MixtureSameFamily,
                                 MultivariateNormal, Normal)

import vaelab
from vaelab.core.densities import log_normal_diag, log_standard_normal
from vaelab.evaluation.likelihood import importance_log_likelihood
from vaelab.experiments import vamp_runs as vr
from vaelab.lab import vamp_study as vs
from vaelab.lab.compare import paired_difference
from vaelab.lab.plots import integer_ticks, save_figure, show_images
from vaelab.lab.prose import glue, glue_figure
from vaelab.lab.tables import numbers_table
from vaelab.models.hvae import hvae
from vaelab.models.priors import StandardNormal
from vaelab.models.vamp import (MixtureOfGaussians, ScaledMixtureOfGaussians, VampPrior,
                                mog_vae, vamp_vae)
from vaelab.training.train import evaluate

dev = ch.device


def show(df, caption, precision=2, numbers=()):
    """A table as the reader sees it (``numbers``: text columns of numbers, such as
    "-84.39 ± 0.22", aligned right with the numeric ones)."""
    display(numbers_table(df, caption, precision, numbers))

# %% [markdown]
# ## 1. Two regularisers, and the prior that minimises them
#
# Average the ELBO over the data, $\frac1N\sum_n$, and split the KL term into its two halves (the paper's
# Eqs. 4-6):
#
# $$
# \frac1N\sum_n \mathrm{ELBO}(x_n) = \frac1N\sum_n \mathbb E_{q(z\mid x_n)}[\log p(x_n\mid z)]
#   + \underbrace{\frac1N\sum_n \mathbb H[q(z\mid x_n)]}_{\text{expected entropy}}
#   + \underbrace{\mathbb E_{q(z)}[\log p(z)]}_{-\,\text{cross-entropy}(q(z),\,p(z))}.
# $$
#
# Only the last term involves the prior. Maximising it over densities $p$ with $\int p = 1$ (a Lagrange
# multiplier $\beta$ for the constraint, the paper's Eqs. 7-8) gives $q(z)/p(z) = \beta$, so
# $p^\star(z) = q(z) = \frac1N\sum_n q(z\mid x_n)$: the aggregate posterior. Equivalently, by Gibbs'
# inequality, $\mathbb E_q[\log p] = \mathbb E_q[\log q] - \mathrm{KL}(q\,\|\,p) \le \mathbb E_q[\log q]$.
#
# **Check.** Fix $N = 300$ Gaussian posteriors (from random encoder outputs) and estimate
# $\mathbb E_{q(z)}[\log p(z)]$ for several priors with the same samples: the aggregate posterior must beat
# every other prior, including the best single Gaussian (moment-matched) and mixtures of subsets (the
# paired difference of the estimates is a Monte Carlo estimate of $\mathrm{KL}(q\,\|\,p) \ge 0$; it must
# not be negative beyond 4 standard errors).

# %%
g = torch.Generator().manual_seed(1)
N, k = 300, 2
mu_n = torch.randn(N, k, generator=g, dtype=torch.float64) * 2
lv_n = -1.5 + 0.5 * torch.randn(N, k, generator=g, dtype=torch.float64)


def draw():
    """20 samples of each of the N posteriors, as one (20 N, k) tensor."""
    eps = torch.randn(20, N, k, generator=g, dtype=torch.float64)
    return (mu_n + torch.exp(0.5 * lv_n) * eps).reshape(-1, k)


def mixture_logp(zz, means, logvars):
    """log (1/K) sum_k N(zz | means_k, diag exp(logvars_k)): (B, k), (K, k) -> (B,)."""
    log_comp = log_normal_diag(zz[:, None], means[None], logvars[None])   # (B, K)
    return torch.logsumexp(log_comp, 1) - math.log(len(means))


def beats_all(cands, best_name):
    """E_q[log q - log p] = KL(q || p) >= 0 for every other prior p: paired Monte Carlo,
    within 4 s.e."""
    for name, v in cands.items():
        if name != best_name:
            d = cands[best_name] - v
            assert d.mean() > -4 * d.std() / math.sqrt(len(d)), (
                f"{name} beats the aggregate posterior")

# %%
z = draw()
# an independent draw to fit the moment-matched Gaussian (fitted on z itself it would
# overfit z)
z_fit = draw()
zc = z_fit - z_fit.mean(0)
candidates = {
    "aggregate posterior (N components)": mixture_logp(z, mu_n, lv_n),
    "standard normal": log_standard_normal(z),
    "moment-matched Gaussian": MultivariateNormal(z_fit.mean(0),
                                                  zc.T @ zc / len(zc)).log_prob(z),
    "mixture of the first 30 posteriors": mixture_logp(z, mu_n[:30], lv_n[:30]),
    "aggregate posterior, variances x 2": mixture_logp(z, mu_n, lv_n + math.log(2)),
}
scores = {name: v.mean().item() for name, v in candidates.items()}
show(pd.DataFrame({"prior p": list(scores), "E_q(z)[log p(z)]": list(scores.values())}),
     "The prior's term E_q(z)[log p(z)] of the averaged ELBO for five priors, "
     "estimated on the same 6,000 draws of the aggregate posterior of 300 synthetic "
     "posteriors (higher is better).", precision=3)
beats_all(candidates, "aggregate posterior (N components)")

# %% [markdown]
# ## 2. Priors: mixture of Gaussians and VampPrior
#
# The aggregate posterior has $N$ components and overfits; the VampPrior (Eq. 9) keeps the form but uses
# $K \ll N$ learned pseudo-inputs $u_k$ (images, kept in $[0, 1]$ by a hard tanh):
#
# $$
# p_\lambda(z) = \frac1K\sum_{k=1}^K q_\phi(z\mid u_k),
# \qquad
# \log p_\lambda(z) = \operatorname{logsumexp}_k \log q_\phi(z\mid u_k) - \log K ,
# $$
#
# so the prior is coupled to the encoder $\phi$. "VampPrior data" fixes $u_k$ to training images; the
# weighted VampPrior (Eq. 16) learns mixture weights $w_k$; the mixture-of-Gaussians (MoG) prior learns $K$
# free means and variances instead. The MoG's density is `mixture_logp` of Section 1 with free means and
# log-variances; the VampPrior is the same mixture with its components taken from the encoder, one encoder
# pass over the $K$ pseudo-inputs:

# %%
def log_vamp(zz, encode, u):
    """The VampPrior's log p(z) for codes zz (B, k): the mixture of the encoder's
    posteriors q(z | u_k) at the pseudo-inputs u (K, ...)."""
    mu_u, logvar_u = encode(u)         # (K, k) each: one pass over the K pseudo-inputs
    return mixture_logp(zz, mu_u, logvar_u)

# %% [markdown]
# **Check 1: the hand-written priors against `vaelab`'s.** `vaelab.models.vamp` evaluates every mixture
# with matrix products (no $(B, K, k)$ tensor; its docstring gives the expansion). On one small model of
# each kind, in float64, the two must give the same $\log p(z)$ for the same codes, and the same gradient
# with respect to every parameter the prior depends on: the MoG's means and log-variances; the VampPrior's
# pseudo-inputs *and the encoder's weights*, the path by which the prior shapes the encoder (Section 3).

# %%
gc = torch.Generator().manual_seed(2)
mog_model = mog_vae(latent_dim=5, n_components=7, hidden=32).double()
vamp_model = vamp_vae(latent_dim=5, n_pseudo=7, hidden=32).double()
with torch.no_grad():
    mog_model.prior.logvars.normal_(0, 0.3, generator=gc)
zz = 1.5 * torch.randn(64, 5, generator=gc, dtype=torch.float64)
mog_p, vamp_p = mog_model.prior, vamp_model.prior
checks = {  # prior: (by hand, vaelab's, the parameters it depends on)
    "MoG": (mixture_logp(zz, mog_p.means, mog_p.logvars), mog_p.log_prob(zz),
            [mog_p.means, mog_p.logvars]),
    "VampPrior": (log_vamp(zz, vamp_model.encode, vamp_p.pseudo_inputs()),
                  vamp_p.log_prob(zz),
                  [vamp_p.pseudo_raw, *vamp_model.encoder.parameters()]),
}
hand_rows = []
for name, (mine, theirs, params) in checks.items():
    torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-9)
    g_mine = torch.autograd.grad(mine.sum(), params)
    g_theirs = torch.autograd.grad(theirs.sum(), params)
    for a, b in zip(g_mine, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    worst = max((a - b).abs().max() for a, b in zip(g_mine, g_theirs))
    hand_rows.append({"prior": name, "parameters": sum(p.numel() for p in params),
                      "largest |Δ log p(z)|": f"{(mine - theirs).abs().max():.0e}",
                      "largest |Δ gradient|": f"{worst:.0e}"})
show(pd.DataFrame(hand_rows), "The priors written by hand against vaelab's on 64 "
     "codes, float64: the largest differences of log p(z) and of its gradient.",
     numbers=["largest |Δ log p(z)|", "largest |Δ gradient|"])

# %% [markdown]
# **Check 2: the package's priors against `torch.distributions`.** The weighted forms (learned mixture
# weights) against `torch.distributions.MixtureSameFamily`, and the mean and covariance of the
# VampPrior's samples against the mixture's closed forms.

# %%
def brute_mixture(means, logvars, logits):
    comp = Independent(Normal(means, torch.exp(0.5 * logvars)), 1)
    return MixtureSameFamily(Categorical(logits=logits), comp)


torch.manual_seed(2)
mog = MixtureOfGaussians(3, 7, learn_weights=True)
with torch.no_grad():
    mog.logits.normal_()
zq = 2 * torch.randn(50, 3)
ref = brute_mixture(mog.means, mog.logvars, mog.logits).log_prob(zq)
torch.testing.assert_close(mog.log_prob(zq), ref, rtol=1e-5, atol=1e-5)

enc = nn.Linear(16, 6)  # a tiny encoder: 4x4 images -> (mu, logvar) of 3 latents
vp = VampPrior(lambda u: enc(u.flatten(1)).split(3, 1), n_pseudo=5,
               data_shape=(1, 4, 4), weighted=True)
with torch.no_grad():
    vp.logits.normal_()
    vp.pseudo_raw.uniform_(0, 1)
mu_u, lv_u = enc(vp.pseudo_inputs().flatten(1)).split(3, 1)
ref = brute_mixture(mu_u, lv_u, vp.logits).log_prob(zq)
torch.testing.assert_close(vp.log_prob(zq), ref, rtol=1e-5, atol=1e-5)

with torch.no_grad():
    s = vp.sample(200_000, generator=torch.Generator().manual_seed(3))
    w = torch.softmax(vp.logits, 0)
    mean = w @ mu_u
    comp_second = torch.diag_embed(lv_u.exp()) + mu_u[:, :, None] * mu_u[:, None, :]
    second = (w[:, None, None] * comp_second).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    se_mean = (torch.diagonal(cov) / len(s)).sqrt()
    assert ((s.mean(0) - mean).abs() < 5 * se_mean).all()
    torch.testing.assert_close(torch.cov(s.T), cov, atol=0.03, rtol=0.02)
print("MoG and (weighted) VampPrior log_prob = brute-force mixtures; "
      "sample moments = closed forms")

# %% [markdown]
# ## 3. The gradients the prior sends to the encoder
#
# Take one data point, one sample $z = \mu(x) + \sigma(x)\odot\varepsilon$, and the regulariser of the
# single-sample objective, $R = \log q(z\mid x) - \log p(z)$. With the reparameterisation,
# $\log q(z\mid x) = -\frac12\sum_m(\log 2\pi + \log\sigma_m^2 + \varepsilon_m^2)$ does not depend on the
# encoder's mean weights at all. For a linear encoder $\mu = Ax + a$, $\log\sigma^2 = Bx + b$, the derivative
# with respect to one mean weight $A_{ij}$ (which moves $z_i$ by $x_j$) is, for the three priors
# (the paper's supplement, Eqs. 17-21, in our notation):
#
# $$
# \text{standard normal:}\quad \frac{\partial R}{\partial A_{ij}} = z_i\,x_j ,\qquad
# \text{MoG:}\quad \frac{\partial R}{\partial A_{ij}} = \sum_k r_k\,\frac{z_i - m_{ki}}{s_{ki}^2}\,x_j ,
# $$
#
# $$
# \text{VampPrior:}\quad \frac{\partial R}{\partial A_{ij}}
#   = \sum_k r_k\,\frac{z_i - \mu_i(u_k)}{\sigma_i^2(u_k)}\,\big(x_j - u_{kj}\big),
# $$
#
# with responsibilities $r_k = w_k\,\mathcal N(z; \text{component } k)/p(z)$. The VampPrior term has a
# second path, through the components' means $\mu(u_k) = Au_k + a$, and it enters with the opposite sign:
# the factor $x_j - u_{kj}$ **vanishes when the data point equals the pseudo-input**, i.e. when $q(z\mid x)$
# and $q(z\mid u_k)$ coincide; a pseudo-input close to $x$ exerts no pull on the encoder's mean weights
# for it. For a log-variance weight $B_{ij}$ (which moves $z_i$ by $\frac12\sigma_i\varepsilon_i x_j$ and
# $\log q$ by $-\frac12 x_j$):
#
# $$
# \text{VampPrior:}\quad \frac{\partial R}{\partial B_{ij}} = -\tfrac12 x_j
#   + \sum_k r_k\Big[\frac{z_i - \mu_i(u_k)}{\sigma_i^2(u_k)}\,\tfrac12\sigma_i\varepsilon_i x_j
#   + \tfrac12\Big(1 - \frac{(z_i - \mu_i(u_k))^2}{\sigma_i^2(u_k)}\Big)u_{kj}\Big].
# $$
#
# The last term is the prior's own pull on the *components'* variances: it is negative (it increases
# $\sigma^2(u_k)$) whenever $z$ lies more than one standard deviation from a component's mean, so the
# components, and with them the encoder's variances, are pushed up until they cover the codes. We
# implement the three expressions and check them against autograd in float64.

# %%
torch.manual_seed(4)
D, kk, K = 6, 3, 4
A, a = torch.randn(kk, D, dtype=torch.float64), torch.randn(kk, dtype=torch.float64)
B = 0.3 * torch.randn(kk, D, dtype=torch.float64)
b = -0.5 + 0.1 * torch.randn(kk, dtype=torch.float64)
x1 = torch.rand(D, dtype=torch.float64)
U = torch.rand(K, D, dtype=torch.float64)
eps = torch.randn(kk, dtype=torch.float64)
m_mog = torch.randn(K, kk, dtype=torch.float64)
lv_mog = 0.2 * torch.randn(K, kk, dtype=torch.float64)


def regulariser(A, B, prior):
    """R = log q(z | x) - log p(z) at z = mu + sigma * eps, through autograd's eyes."""
    mu, lv = A @ x1 + a, B @ x1 + b
    z = mu + torch.exp(0.5 * lv) * eps
    log_q = log_normal_diag(z, mu, lv)
    if prior == "standard":
        log_p = log_standard_normal(z)
    elif prior == "mog":
        log_p = torch.logsumexp(log_normal_diag(z, m_mog, lv_mog), 0) - math.log(K)
    else:
        log_p = torch.logsumexp(log_normal_diag(z, U @ A.T + a, U @ B.T + b),
                                0) - math.log(K)
    return log_q - log_p

# %%
def derived(prior):
    """dR/dA and dR/dB from the formulas above."""
    mu, lv = A @ x1 + a, B @ x1 + b
    sig = torch.exp(0.5 * lv)
    z = mu + sig * eps
    dz_dB = 0.5 * sig * eps                    # dz_i / dB_ij = this_i * x_j
    if prior == "standard":
        g_z = z                                # d(-log p)/dz
        dB = torch.outer(g_z * dz_dB, x1) - 0.5 * x1.expand(kk, D)
        return torch.outer(g_z, x1), dB
    means, lvs = (m_mog, lv_mog) if prior == "mog" else (U @ A.T + a, U @ B.T + b)
    logs = log_normal_diag(z, means, lvs)
    r = torch.softmax(logs, 0)                 # responsibilities (K,)
    t = (z - means) * torch.exp(-lvs)          # (K, k)
    g_z = (r[:, None] * t).sum(0)
    dA = torch.outer(g_z, x1)
    dB = torch.outer(g_z * dz_dB, x1) - 0.5 * x1.expand(kk, D)
    if prior == "vamp":                        # second path: through u_k's components
        dA = dA - (r[:, None] * t).T @ U
        dB = dB + (r[:, None] * 0.5 * (1 - (z - means) ** 2 * torch.exp(-lvs))).T @ U
    return dA, dB

# %%
grad_diffs = {}
for prior in ("standard", "mog", "vamp"):
    Ag, Bg = A.clone().requires_grad_(), B.clone().requires_grad_()
    regulariser(Ag, Bg, prior).backward()
    dA, dB = derived(prior)
    torch.testing.assert_close(dA, Ag.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(dB, Bg.grad, rtol=0, atol=1e-6)
    grad_diffs[prior] = max((dA - Ag.grad).abs().max(), (dB - Bg.grad).abs().max())
print("derived gradients = autograd for the standard, MoG and VampPrior priors "
      f"(largest difference {max(grad_diffs.values()):.0e} in float64)")
# the coupling term vanishes for a data point equal to a pseudo-input of a one-component
# VampPrior
x_saved, U_saved, K_saved = x1.clone(), U, K
U, K = x1[None].clone(), 1
dA_self, _ = derived("vamp")
assert dA_self.abs().max() < 1e-12
U, K, x1 = U_saved, K_saved, x_saved

# %% [markdown]
# ## 4. The importance-sampled log-likelihood
#
# Test log-likelihoods are estimated by importance sampling {cite:p}`burda2016iwae`:
# $\log p(x) \approx \log\frac1S\sum_s p(x, z_s)/q(z_s\mid x)$, $z_s\sim q(z\mid x)$, a lower bound in
# expectation that tightens as $S$ grows (the paper: $S = 5000$). `vaelab.evaluation.likelihood` computes
# it with the encoder run once per image and all samples batched; it needs of a model only its proposal
# `posterior(x)` and its `log_joint(x, z)` $= \log p(x, z)$. **Check** on a linear-Gaussian model whose
# marginal is known exactly: $p(z) = \mathcal N(0, I)$, $p(x\mid z) = \mathcal N(Wz + c, s^2 I)$, so
# $p(x) = \mathcal N(c, WW^\top + s^2 I)$. With columns of $W$ orthogonal the exact posterior is diagonal;
# used as the proposal it makes every importance weight equal to $p(x)$, and a wider proposal must
# converge to the same value with the ELBO strictly below.

# %%
class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + c, s^2 I); posterior(x), the proposal, is the
    exact posterior, optionally widened."""

    def __init__(self, W, c, s2, widen=0.0):
        super().__init__()
        self.W, self.c, self.s2, self.widen = W, c, s2, widen
        self.prior = StandardNormal(W.shape[1])
        self.data_shape = (W.shape[0],)

    def posterior(self, x):
        prec = 1 + (self.W**2).sum(0) / self.s2                  # W^T W is diagonal
        mean = ((x - self.c) @ self.W / self.s2) / prec
        scale = (1 / prec).sqrt().expand_as(mean) * math.exp(self.widen)
        return Independent(Normal(mean, scale), 1)

    def decode(self, z):
        return z @ self.W.T + self.c

    def log_likelihood(self, x, out):
        return log_normal_diag(x, out, torch.tensor(math.log(self.s2), dtype=x.dtype))

    def log_joint(self, x, z):  # log p(x | z) + log p(z) for draws z (S, B, k)
        return self.log_likelihood(x, self.decode(z)) + self.prior.log_prob(z)

# %%
Q, _ = torch.linalg.qr(torch.randn(8, 3, dtype=torch.float64))
W = Q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
c, s2 = torch.randn(8, dtype=torch.float64), 0.3
marginal = MultivariateNormal(c, W @ W.T + s2 * torch.eye(8, dtype=torch.float64))
xs = marginal.sample((5,))
exact = marginal.log_prob(xs)
ll_exact_q = importance_log_likelihood(LinearGaussian(W, c, s2), xs, n_samples=10)
torch.testing.assert_close(ll_exact_q, exact, rtol=0, atol=1e-8)
res = importance_log_likelihood(LinearGaussian(W, c, s2, widen=0.5), xs,
                                n_samples=20_000, return_elbo=True,
                                generator=torch.Generator().manual_seed(5))
show(pd.DataFrame({"point": range(1, len(xs) + 1), "exact log p(x)": exact.numpy(),
                   "IS, S = 20,000": res.log_likelihood.numpy(),
                   "ELBO": res.elbo.numpy()}),
     "The importance-sampled log p(x) of five points of a linear-Gaussian model, with "
     "a proposal wider than the exact posterior, against the exact marginal; the ELBO "
     "of the same draws stays below.", precision=3)
torch.testing.assert_close(res.log_likelihood, exact, rtol=0, atol=0.02)
assert (res.elbo < exact - 0.1).all()

# %% [markdown]
# ## 5. The two-level model
#
# The paper's hierarchical VAE (Eqs. 10-15) has two stochastic layers of 40 units:
# $q(z_1, z_2\mid x) = q(z_1\mid x, z_2)\,q(z_2\mid x)$ and $p(x, z_1, z_2) = p(x\mid z_1, z_2)\,p(z_1\mid z_2)\,
# p(z_2)$, with the VampPrior on the top layer $z_2$, $p_\lambda(z_2) = \frac1K\sum_k q(z_2\mid u_k)$. With
# one sample, $z_2 = \mu_2(x) + \sigma_2(x)\odot\varepsilon_2$ and then
# $z_1 = \mu_1(x, z_2) + \sigma_1(x, z_2)\odot\varepsilon_1$, the objective is again `rec + weight * reg`:
#
# $$
# \texttt{rec} = -\log p(x\mid z_1, z_2), \qquad
# \texttt{reg} = \underbrace{\log q(z_1\mid x, z_2) - \log p(z_1\mid z_2)}_{\text{KL term of } z_1}
#   + \underbrace{\log q(z_2\mid x) - \log p_\lambda(z_2)}_{\text{KL term of } z_2},
# $$
#
# with the weight warmed up linearly from 0 to 1 as in the paper, and $\texttt{rec} + \texttt{reg} =
# -\log w$ for the single importance weight $w = p(x, z_1, z_2)/q(z_1, z_2\mid x)$ of Section 4. Written
# out from the model's four networks (in `vaelab.models.hvae.HVAE` each returns a mean and a log-variance
# side by side, `p_x` Bernoulli logits):

# %%
def hvae_terms(m, x, eps2, eps1):
    """One-sample terms of the two-level model m for images x and noise eps2, eps1
    (B, k): rec, the KL terms of z1 and z2, log p(x, z1, z2), and z = [z1, z2]."""
    x = x.flatten(1)
    mu2, lv2 = m.q_z2(x).chunk(2, dim=1)                    # q(z2 | x)
    z2 = mu2 + torch.exp(0.5 * lv2) * eps2
    mu1, lv1 = m.q_z1(x, z2).chunk(2, dim=1)                # q(z1 | x, z2)
    z1 = mu1 + torch.exp(0.5 * lv1) * eps1
    pm1, plv1 = m.p_z1(z2).chunk(2, dim=1)                  # p(z1 | z2)
    logits = m.p_x(z1, z2)                                  # p(x | z1, z2)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    q_z2_at = lambda u: m.q_z2(u.flatten(1)).chunk(2, dim=1)  # noqa: E731  q(z2 | u)
    log_p_z2 = log_vamp(z2, q_z2_at, m.prior.pseudo_inputs())
    log_p_z1 = log_normal_diag(z1, pm1, plv1)
    kl_z1 = log_normal_diag(z1, mu1, lv1) - log_p_z1
    kl_z2 = log_normal_diag(z2, mu2, lv2) - log_p_z2
    return rec, kl_z1, kl_z2, -rec + log_p_z1 + log_p_z2, torch.cat([z1, z2], 1)

# %% [markdown]
# **Check.** `vaelab`'s `HVAE` draws $\varepsilon_2$, then $\varepsilon_1$, from torch's generator; drawn
# again from the same seed, the same noise must give the hand-written terms exactly the model's `rec`,
# `kl_z1`, `kl_z2` and `reg`, and the log joint must equal `log_joint`, the numerator of the importance
# weights of Section 4 (float64, a small model with the VampPrior on $z_2$).

# %%
torch.manual_seed(5)
two = hvae(latent_dim=4, hidden=32, prior="vamp", n_pseudo=6).double()
gx = torch.Generator().manual_seed(6)
x8 = torch.bernoulli(torch.rand(8, 1, 28, 28, generator=gx, dtype=torch.float64),
                     generator=gx)
torch.manual_seed(7)
out = two(x8)                                 # vaelab's: eps2, then eps1, from the seed
torch.manual_seed(7)
eps2, eps1 = (torch.randn(8, 4, dtype=torch.float64) for _ in range(2))
rec, kl_z1, kl_z2, log_joint, z12 = hvae_terms(two, x8, eps2, eps1)
mine = {"rec": rec, "kl_z1": kl_z1, "kl_z2": kl_z2, "reg": kl_z1 + kl_z2,
        "log p(x, z1, z2)": log_joint}
theirs = {**{key: out[key] for key in ("rec", "kl_z1", "kl_z2", "reg")},
          "log p(x, z1, z2)": two.log_joint(x8, z12[None])[0]}
for key in mine:
    torch.testing.assert_close(mine[key], theirs[key], rtol=1e-10, atol=1e-9)
show(pd.DataFrame({"term": list(mine),
                   "by hand, mean of 8": [v.mean().item() for v in mine.values()],
                   "largest |difference|": [f"{(mine[t] - theirs[t]).abs().max():.0e}"
                                            for t in mine]}),
     "The two-level model's terms written by hand against vaelab's HVAE, the same "
     "weights and noise (float64).", numbers=["largest |difference|"])

# %% [markdown]
# ## 6. MNIST
#
# Dynamically binarised MNIST (training batches re-sampled at every step, validation and test binarised
# once with a fixed seed), gated dense networks of 300 units, 40 latents per layer, Adam with learning rate
# $5\cdot10^{-4}$, the KL weight warmed up linearly. The paper trains for up to 2,000 epochs with 100
# warm-up epochs and early stopping. Its text gives the look-ahead as "50 iterations"; its public code counts
# it in epochs (training stops after 50 epochs without a better validation loss). We follow the code:
# `patience` counts epochs on the validation ELBO, after the warm-up. The default scale here trains for a
# few epochs on a subset, so the absolute numbers are far from the paper's and only the comparisons between
# priors at equal budget mean something.
#
# From here on the models are `vaelab`'s, built, trained and evaluated by `vaelab.experiments.vamp_runs`,
# the module the study page runs at the paper's schedule: `make_model` builds each of the paper's models
# (the priors of Sections 2 and 5 on the networks above), `train_model` trains it with the warm-up and the
# early stopping, `summarise` measures the test ELBO and the importance-sampled log-likelihood (Section 4)
# with $S$ = {glue:text}`ch03_ll_samples` samples.

# %%
data = vaelab.load_dataset("mnist", root=data_root, device=dev,
                           train_size=train_size, binarize="dynamic", seed=seed)
ll_set = data.test.subset(min(ll_images, len(data.test)))
settings = vr.VampSettings.from_params(ch.params)
steps_per_epoch = math.ceil(len(data.train) / batch_size)
# the six models, then Fig. 2's K grid and the two extra MoG models of the K = 1 check
n_fits = len(vr.RUNS) + 2 * len(k_grid) - (n_pseudo in k_grid) + 2
glue("ch03_ll_samples", ll_samples, ",")
glue("ch03_ll_images", len(ll_set), ",")
print(f"{len(data.train):,} training images, {epochs} epoch{'s' * (epochs > 1)}, "
      f"warm-up over {warmup_epochs} epoch{'s' * (warmup_epochs > 1)}, log-likelihood "
      f"on {len(ll_set):,} test images with S = {ll_samples:,}")

# %%
models, rows = {}, []
for i, kind in enumerate(vr.RUNS, start=1):
    label = vr.MODELS[kind]
    print(f"training {label} ({i}/{n_fits})")
    model = vr.make_model(kind, settings, data.train)
    hist, seconds = vr.train_model(model, data, settings,
                                   f"{out_dir}/{vr.run_dir_name(kind)}", resume=resume)
    models[label] = model
    rows.append(vr.summarise(model, label, hist, seconds, data.test, ll_set, settings))
show(pd.DataFrame([{
    "model": r["model"], "test ELBO": r["test_elbo"],
    "ELBO (IS images)": r["ll_set_elbo"], "log-likelihood": r["test_ll"],
    "its s.e.": r["test_ll_se"], "epochs": r["epochs_trained"],
    "training (s)": r["train_seconds"]} for r in rows]),
    f"The six models at this scale (nats per image): the test ELBO on all "
    f"{len(data.test):,} test images; the importance-sampled log-likelihood (S = "
    f"{ll_samples:,}) and the ELBO of the same draws on the first {len(ll_set):,}.")

# %% [markdown]
# **The optimal-prior check on real posteriors.** Section 1 checked the claim on synthetic posteriors;
# here the same comparison uses the trained standard VAE's posteriors of 300 test images: with encoder and
# decoder fixed, only $\mathbb E_{q(z)}[\log p(z)]$ depends on the prior, and the aggregate posterior of the
# 300 images must beat every other prior, including the VampPrior that another model learned.

# %%
with torch.no_grad():
    enc_model = models["VAE standard"]
    xq = data.test.batch(torch.arange(300, device=dev))
    mu_q, lv_q = (t.double() for t in enc_model.encode(xq))
    gq = torch.Generator(dev).manual_seed(seed)
    draw = lambda: (mu_q + torch.exp(0.5 * lv_q) * torch.randn(  # noqa: E731
        (10, *mu_q.shape), generator=gq, device=dev, dtype=torch.float64)
    ).reshape(-1, latent_dim)
    zq, z_fit = draw(), draw()  # z_fit: an independent draw to fit the Gaussian
    zc = z_fit - z_fit.mean(0)
    vp_mu, vp_lv = (t.double() for t in models["VAE VampPrior"].prior.components())
    real = {
        "aggregate posterior of the 300 images": mixture_logp(zq, mu_q, lv_q),
        "standard normal": log_standard_normal(zq),
        "moment-matched Gaussian": MultivariateNormal(
            z_fit.mean(0), zc.T @ zc / len(zc)).log_prob(zq),
        "the VampPrior learned by the VampPrior VAE":
            mixture_logp(zq, vp_mu, vp_lv),
    }
real_scores = {name: v.mean().item() for name, v in real.items()}
show(pd.DataFrame({"prior p": list(real_scores),
                   "E_q(z)[log p(z)]": list(real_scores.values())}),
     "E_q(z)[log p(z)] for four priors on 3,000 draws of the trained standard VAE's "
     "aggregate posterior of 300 test images (higher is better).")
beats_all(real, "aggregate posterior of the 300 images")

# %% [markdown]
# **What the coupling does in a trained model.** In the gradient of Section 3 every pseudo-input enters
# through its responsibility $r_k$ and the factor $x - u_k$. For test images of the trained VampPrior VAE
# we compare the responsibility-weighted distance $\sum_k r_k\lVert x - u_k\rVert^2$ with the plain average
# $\frac1K\sum_k\lVert x-u_k\rVert^2$: responsibilities concentrated on nearby pseudo-inputs make the
# coupling term small. And we compare the posterior variances of the two one-level models: the VampPrior
# pulls less hard towards unit variance than the standard normal does, so its posteriors can be narrower.

# %%
with torch.no_grad():
    vv = models["VAE VampPrior"]
    xt = data.test.batch(torch.arange(500, device=dev))
    mu_t, lv_t = vv.encode(xt)
    eps_t = torch.randn(mu_t.shape, generator=gq, device=dev)
    z_t = mu_t + torch.exp(0.5 * lv_t) * eps_t
    comp_mu, comp_lv = vv.prior.components()
    log_comp = log_normal_diag(z_t[:, None], comp_mu[None], comp_lv[None])
    r = torch.softmax(log_comp, dim=1)                 # (B, K)
    u_flat = vv.prior.pseudo_inputs().flatten(1)
    d2 = torch.cdist(xt.flatten(1), u_flat) ** 2       # (B, K)
    coupling = {"weighted_sq_distance": (r * d2).sum(1).mean().item(),
                "plain_sq_distance": d2.mean().item(),
                "max_responsibility": r.max(1).values.mean().item()}
    post_var = {kind: torch.exp(models[kind].encode(xt)[1]).mean().item()
                for kind in ("VAE standard", "VAE VampPrior")}
show(pd.DataFrame([
    {"quantity": "mean largest responsibility",
     "value": coupling["max_responsibility"]},
    {"quantity": "Σ_k r_k |x − u_k|², mean over images",
     "value": coupling["weighted_sq_distance"]},
    {"quantity": "(1/K) Σ_k |x − u_k|², mean over images",
     "value": coupling["plain_sq_distance"]},
    *[{"quantity": f"mean posterior variance, {kind}", "value": v}
      for kind, v in post_var.items()]]),
    "The coupling in the trained VampPrior VAE, on 500 test images.", precision=3)
glue("ch03_max_resp", coupling["max_responsibility"], ".2f")
glue("ch03_weighted_d2", coupling["weighted_sq_distance"], ".1f")
glue("ch03_plain_d2", coupling["plain_sq_distance"], ".1f")
glue("ch03_var_vamp", post_var["VAE VampPrior"], ".2f")
glue("ch03_var_std", post_var["VAE standard"], ".2f")

# %% [markdown]
# In this run one component held {glue:text}`ch03_max_resp` of the responsibility on average, and the
# responsibility-weighted squared distance to the pseudo-inputs was {glue:text}`ch03_weighted_d2` against
# {glue:text}`ch03_plain_d2` for the plain average: the smaller the first against the second, the more the
# coupling factor $x - u_k$ is weighted towards the pseudo-inputs nearest to each image. The posterior
# variances were {glue:text}`ch03_var_vamp` (VampPrior) against {glue:text}`ch03_var_std` (standard prior).
#
# ## 7. Beside the paper: Table 1
#
# {cite:t}`tomczak2018vampprior` report test log-likelihoods on *dynamic* MNIST with $S = 5000$ in Table 1
# (one- and two-level models, standard prior and VampPrior) and Table 3 (the two-level model with
# "VampPrior data"); the two-level model with the MoG prior appears only in Table 2, on *static* MNIST,
# another data set, so its row has no paper value to compare with. The full-scale column holds the
# records of the study page {doc}`03b_vampprior_study`, which trains each model at the paper's schedule
# (up to 2,000 epochs with early stopping, 50,000 training images, $K = 500$) and evaluates it on all
# 10,000 test images: a recorded value that lies within two of its standard errors of the paper's is
# *reproduced*. This build's values come from a few epochs on part of the data; they stand beside the
# others but are not judged against the paper's.

# %%
records = ch.records()  # the study's, at the paper's schedule
n_epochs = f"{epochs} epoch{'s' * (epochs > 1)}"
recorded = vs.recorded_results(records)
by_model = {r["model"]: r for r in rows}
show(pd.DataFrame(vs.table1(recorded, by_model)),
     f"Test log-likelihood (nats, ± its standard error): the paper (dynamic MNIST, "
     f"S = 5,000), the study's records at the paper's schedule (all 10,000 test "
     f"images) and this build ({n_epochs} on {len(data.train):,} images, "
     f"{len(ll_set):,} test images). The paper gives the two-level MoG model on static "
     f"MNIST only (Table 2: -85.07).",
     numbers=["paper", "full scale", "this build"])

# %% [markdown]
# The paper's claims are orderings as much as values: the VampPrior above the standard prior, the two-level
# model above the one-level one, learned pseudo-inputs above fixed training images and above a mixture of
# Gaussians. At full scale the records keep no per-image values, so a recorded difference takes the two
# means' standard errors combined (a conservative test); this build's differences are paired, image by
# image on the same test images.

# %%
order_rows = vs.orderings(recorded, by_model)
show(pd.DataFrame(order_rows).drop(columns=["where", "a", "b", "d", "se"]),
     "The paper's orderings: the log-likelihood of one model minus another's (nats, "
     "± its standard error; full scale unpaired, this build paired), judged where the "
     "difference exceeds two standard errors. The paper's differences are from its "
     "Table 1, VampPrior - data from Table 3, VampPrior - MoG from Table 2 (static "
     "MNIST).",
     numbers=["paper", "full scale", "this build"])
comparison = {f"{name.replace(' ', '_')}{se}": by_model[name][f"test_ll{se}"]
              for name in vr.PAPER_LL for se in ("", "_se")}
for r in order_rows:
    key = f"{r['a']}-{r['b']}".replace(" ", "_")
    comparison[key], comparison[key + "_se"] = r["d"], r["se"]

# %%
holds = [r["difference"] for r in order_rows if r["at this scale"] == "reproduced"]
glue("ch03_holds", f"{len(holds) or 'none'} of the {len(order_rows)} orderings "
     f"hold{'s' if len(holds) == 1 else ''} beyond two standard errors"
     + (f" ({'; '.join(holds)})" if holds else ""))
glue("ch03_full_orderings", "; ".join(
    f"{r['difference']}: {r['full scale']} nats against the paper's {r['paper']} "
    f"({r['where']}), {r['verdict']}"
    for r in order_rows if r["verdict"] != "not run yet")
    or "no pair of models is recorded yet")
values = [r for r in vs.table1(recorded) if r["full scale"] != "—"]
glue("ch03_full_values", "; ".join(
    f"{r['model']} {r['full scale']} nats against the paper's {r['paper']}, "
    f"{r['verdict']}" for r in values) or "none is recorded yet")
missing = [name for name in vr.PAPER_LL if name not in recorded]
glue("ch03_not_run", ", ".join(missing) if missing else "none")
glue("ch03_full_summary", "; ".join(  # the introduction's line on the full-scale runs
    [f"{r['model']} {r['full scale']} nats, {r['verdict']}" for r in values]
    + ([f"not run yet: {', '.join(missing)}"] if missing else [])))
for name, key in (("VAE standard", "vae_std"), ("VAE VampPrior", "vae_vamp"),
                  ("HVAE standard", "hvae_std"), ("HVAE VampPrior", "hvae_vamp")):
    glue(f"ch03_ll_{key}", by_model[name]["test_ll"], ".1f")  # for the results page
glue("ch03_gap_to_paper", max(p - by_model[n]["test_ll"]
                              for n, (p, _) in vr.PAPER_LL.items() if p is not None),
     ".0f")
glue("ch03_epochs", n_epochs)
glue("ch03_train_size", len(data.train), ",")

# %% [markdown]
# **Agreement and disagreement.** At full scale, the recorded values: {glue:text}`ch03_full_values`; the
# recorded orderings: {glue:text}`ch03_full_orderings`. Not run at full scale yet:
# {glue:text}`ch03_not_run` (the study page gives the command). At this scale,
# {glue:text}`ch03_holds`. The absolute values here are far below the paper's (up to
# {glue:text}`ch03_gap_to_paper` nats): {glue:text}`ch03_epochs` on {glue:text}`ch03_train_size`
# images against the paper's hundreds of epochs on 50,000, with its 100-epoch warm-up and early stopping.
# The official code also normalises gradients before Adam; this chapter and its study use plain Adam.
#
# ## 8. The ELBO against the number of components (Fig. 2 style)
#
# One-level VAEs with a VampPrior and with a MoG prior of $K$ components, same budget:

# %%
k_rows, k_models, fit_no = [], {}, len(vr.RUNS)
for K_ in k_grid:
    for kind in ("vae_vamp", "vae_mog"):
        label = vr.MODELS[kind]
        if K_ == n_pseudo and kind == "vae_vamp":
            model = models[label]
        else:
            fit_no += 1
            print(f"training {label} K={K_} ({fit_no}/{n_fits})")
            model = vr.make_model(kind, settings, n_components=K_)
            vr.train_model(model, data, settings,
                           f"{out_dir}/{vr.run_dir_name(kind)}_K{K_}", resume=resume)
        k_models[label, K_] = model
        test = evaluate(model, data.test)
        k_rows.append({"model": label, "K": K_,
                       "test_elbo": -(test["rec"] + test["reg"])})
fig, ax = plt.subplots(figsize=(5, 3.2))
for label in ("VAE VampPrior", "VAE MoG"):
    pts = [(r["K"], r["test_elbo"]) for r in k_rows if r["model"] == label]
    ax.plot(*zip(*pts), "o-", label=label)
ax.set(xscale="log", xlabel="K (pseudo-inputs / components)", ylabel="test ELBO (nats)")
ax.set_xticks(list(k_grid), [str(K_) for K_ in k_grid])
ax.minorticks_off()
ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
ax.grid(alpha=0.3)
save_figure(fig, out_dir, "elbo_vs_k")
glue_figure("ch03_fig_elbo_k", fig)

# %% [markdown]
# ```{glue:figure} ch03_fig_elbo_k
# :name: fig-ch03-elbo-k
# The one-sample test ELBO (all 10,000 test images) of one-level VAEs with a VampPrior and with a MoG prior
# against the number $K$ of pseudo-inputs or components, all trained with the same budget (this build's
# scale).
# ```

# %%
k_df = pd.DataFrame(k_rows).pivot(index="K", columns="model", values="test_elbo")
k_df["VampPrior − MoG"] = k_df["VAE VampPrior"] - k_df["VAE MoG"]
show(k_df.reset_index(), "The test ELBO (nats) of the one-level models against K, and "
     "the VampPrior's lead over the MoG.")
vamp_best_k = int(k_df["VAE VampPrior"].idxmax())
lead = k_df["VampPrior − MoG"]
lo, hi = f"{lead.min():+.1f}", f"{lead.max():+.1f}"
glue("ch03_vamp_minus_mog", f"{lo} nats at every K" if lo == hi
     else f"from {lo} to {hi} nats")
glue("ch03_vamp_best_k", vamp_best_k)
glue("ch03_k1_gap", k_df.loc[min(k_grid), "VampPrior − MoG"], ".1f")
glue("ch03_k_min", min(k_grid))
glue("ch03_k1_steps", epochs * steps_per_epoch, ",")
glue("ch03_lr_steps", lr * epochs * steps_per_epoch, ".2g")
glue("ch03_var_reach_lo", math.exp(-lr * epochs * steps_per_epoch), ".2g")
glue("ch03_var_reach_hi", math.exp(lr * epochs * steps_per_epoch), ".2g")

# %% [markdown]
# In the paper's Fig. 2 (static MNIST, two-level model; curves without numbers) more components do not
# improve the ELBO, and the VampPrior stays above the MoG. In this run ({numref}`fig-ch03-elbo-k`) the
# VampPrior's ELBO minus the MoG's is {glue:text}`ch03_vamp_minus_mog` over the $K$ grid (one-sample test
# ELBOs on all 10,000 test images), and the VampPrior's best $K$ is {glue:text}`ch03_vamp_best_k`. With few
# epochs the pseudo-inputs barely move from their initialisation ({numref}`fig-ch03-pseudo-inputs`), so
# more of them only add components that the encoder must also fit: a statement about the budget, not the
# method.
#
# ## 9. The K = 1 anomaly: two single Gaussians that differ
#
# At $K = 1$ both priors are one diagonal Gaussian, and yet the VampPrior's ELBO is above the MoG's by
# {glue:text}`ch03_k1_gap` nats at $K$ = {glue:text}`ch03_k_min` in this run. Any diagonal Gaussian prior
# can be turned into any other by an affine map of $z$ that the encoder's last layer and the decoder's first
# layer can absorb, so at the optimum the two models are equally good; the difference must lie in how fast
# training gets there. What differs between the two priors during training:
#
# - **parameterisation**: the MoG's mean $m$ and log-variance $\ell$ are free parameters (initialised
#   $m\sim\mathcal N(0, I)$, $\ell = 0$); the VampPrior's are the encoder's outputs $\mu(u)$, $\log\sigma^2(u)$
#   at the pseudo-input $u$, moved by the encoder's weights and by $u$ (Section 3's second gradient path);
# - **learning rate**: the same Adam step size for every parameter. Adam moves each parameter by about
#   the step size per step while its gradient keeps its sign, so over $T$ steps the MoG's log-variances can
#   move by about the step size times $T$ (in this run {glue:text}`ch03_lr_steps` over
#   $T$ = {glue:text}`ch03_k1_steps` steps: a variance between {glue:text}`ch03_var_reach_lo` and
#   {glue:text}`ch03_var_reach_hi`), while the encoder's output at $u$ has no such limit;
# - **initialisation** of the prior: the MoG starts at a random mean, the VampPrior at the encoder's
#   output for a nearly blank pseudo-input; the networks start the same (`make_model` seeds them alike);
# - warm-up (the same weight for both) and the variance (learned in both, clamped in neither) do not
#   differ.
#
# The check: the learned prior variances and means of the two $K = 1$ models, the spread of their codes
# (the variance of the aggregate posterior per dimension), the two terms of their ELBOs, and how far each
# MoG log-variance moved in units of the learning rate times the number of steps. Then two more models
# with the MoG prior, each changing one thing: one starts at the VampPrior's initial Gaussian (the same
# initialisation for both priors); the other stores the prior as $m/c$, $\ell/c$ with $c$ = 10, so that
# Adam's steps move $m$ and $\ell$ ten times faster (the same model and objective, only a ten times larger
# learning rate for the prior). If the step-size limit explains the gap, the second model closes most of it
# and the first does not.

# %%
K1 = min(k_grid)
fit_no += 1
print(f"training VAE MoG K={K1}, VampPrior's start ({fit_no}/{n_fits})")
same_start = vr.make_model("vae_mog", settings, n_components=K1)
with torch.no_grad():  # the VampPrior's components before training (same networks)
    m0, lv0 = vr.make_model("vae_vamp", settings, n_components=K1).prior.components()
    same_start.prior.means.copy_(m0)
    same_start.prior.logvars.copy_(lv0)
vr.train_model(same_start, data, settings, f"{out_dir}/VAE_MoG_K{K1}_initvamp",
               resume=resume)
fit_no += 1
print(f"training VAE MoG K={K1}, prior 10x faster ({fit_no}/{n_fits})")
fast = vr.make_model("vae_mog", settings, n_components=K1)
# the same MoG prior stored as m/10, l/10: Adam moves it ten times faster
fast.prior = ScaledMixtureOfGaussians(latent_dim, K1, speed=10.0)
vr.train_model(fast, data, settings, f"{out_dir}/VAE_MoG_K{K1}_fast10", resume=resume)
k1_models = {"VampPrior": k_models["VAE VampPrior", K1], "MoG": k_models["VAE MoG", K1],
             "MoG, same start": same_start, "MoG, prior 10× faster": fast}


def elbo_images(model, data_set):
    """One-sample ELBO of each image (nats), the same noise for every model."""
    torch.manual_seed(seed)
    with torch.no_grad():
        out = [model(data_set.batch(idx)) for idx in
               torch.arange(len(data_set), device=dev).split(1000)]
    return torch.cat([-(o["rec"] + o["reg"]) for o in out]).cpu().numpy()

# %%
steps = epochs * steps_per_epoch
x_all = data.test.batch(torch.arange(len(data.test), device=dev))
k1_rows, k1_elbo = [], {}
with torch.no_grad():
    for name, model in k1_models.items():
        m, lv = (t[0].detach() for t in model.prior.components())  # the first component
        mu_x, lv_x = model.encode(x_all)
        agg_var = lv_x.exp().mean(0) + mu_x.var(0)      # per dimension
        ev = evaluate(model, data.test)
        k1_elbo[name] = elbo_images(model, data.test)
        row = {"prior": name, "test ELBO": -(ev["rec"] + ev["reg"]),
               "reconstruction": ev["rec"], "KL term": ev["reg"],
               "prior variance, mean": lv.exp().mean().item(),
               "prior variance, max": lv.exp().max().item(),
               "code spread (agg. variance), mean": agg_var.mean().item(),
               "|prior mean|": m.norm().item()}
        if name == "MoG":
            row["max |Δℓ| / (lr · steps)"] = lv.abs().max().item() / (lr * steps)
        k1_rows.append(row)
# one column per prior (the quantities as rows keep the table within the page)
show(pd.DataFrame(k1_rows).set_index("prior").T.reset_index(names="quantity"),
     f"The four models with K = {K1}: their test ELBO and its two terms (nats), their "
     "prior's first component and the spread of their codes.")
paired = {other: paired_difference(k1_elbo["VampPrior"], k1_elbo[other])
          for other in ("MoG", "MoG, same start", "MoG, prior 10× faster")}
show(pd.DataFrame([{"test ELBO, nats": f"VampPrior − {other}", "difference": d,
                    "paired s.e.": se} for other, (d, se) in paired.items()]),
     "The VampPrior's lead in test ELBO over each MoG model with K = 1, paired over "
     "all 10,000 test images.")

# %%
(d_mog, se_mog), (d_same, se_same), (d_fast, se_fast) = paired.values()
k1 = {r["prior"]: r for r in k1_rows}
for key, value, fmt in (
        ("var_vamp", k1["VampPrior"]["prior variance, mean"], ".1f"),
        ("varmax_vamp", k1["VampPrior"]["prior variance, max"], ".0f"),
        ("var_mog", k1["MoG"]["prior variance, mean"], ".2f"),
        ("varmax_mog", k1["MoG"]["prior variance, max"], ".2f"),
        ("spread_vamp", k1["VampPrior"]["code spread (agg. variance), mean"], ".1f"),
        ("spread_mog", k1["MoG"]["code spread (agg. variance), mean"], ".1f"),
        ("rec_vamp", k1["VampPrior"]["reconstruction"], ".1f"),
        ("rec_mog", k1["MoG"]["reconstruction"], ".1f"),
        ("kl_vamp", k1["VampPrior"]["KL term"], ".1f"),
        ("kl_mog", k1["MoG"]["KL term"], ".1f"),
        ("speed", k1["MoG"]["max |Δℓ| / (lr · steps)"], ".2f"),
        ("d_mog", d_mog, ".1f"), ("se_mog", se_mog, ".2f"),
        ("d_same", d_same, ".1f"), ("se_same", se_same, ".2f"),
        ("d_fast", d_fast, ".1f"), ("se_fast", se_fast, ".2f")):
    glue(f"ch03_k1_{key}", value, fmt)
if not ch.smoke and lr * steps < 2:  # the short-budget regime this check is about
    # the MoG's log-variances moved at (about) Adam's full speed: rate-limited
    assert k1["MoG"]["max |Δℓ| / (lr · steps)"] > 0.7
    # the VampPrior's variance is not: it left the MoG's reachable range
    assert k1["VampPrior"]["prior variance, max"] > math.exp(lr * steps)
    if d_mog > 2 * se_mog:  # where the anomaly shows, a faster prior closes most
        assert d_fast < 0.5 * d_mog
        assert d_same > 0.5 * d_mog  # and the same start does not

# %%
if d_mog <= 2 * se_mog:
    k1_finding = ("at K = 1, where both priors are one Gaussian, the VampPrior's lead "
                  "over the MoG is within two standard errors (Section 9)")
elif d_fast < 0.5 * d_mog and d_same > 0.5 * d_mog:
    k1_finding = ("the VampPrior's lead over the MoG at K = 1, where both priors "
                  "are one Gaussian, comes from the step size that limits a free "
                  "Gaussian's variance: a MoG moved ten times faster closes most of it "
                  "(Section 9), which qualifies the lead at every K")
else:
    k1_finding = ("at K = 1 the VampPrior leads the MoG, and neither a faster MoG nor "
                  "one started at the VampPrior's Gaussian accounts for it here "
                  "(Section 9)")
glue("ch03_k1_finding", k1_finding)

# %% [markdown]
# In this run the MoG's log-variances moved by at most {glue:text}`ch03_k1_speed` times the learning rate
# times the {glue:text}`ch03_k1_steps` steps; a ratio near 1 means that Adam moved them at full speed all
# the way, held back by the step size rather than by the objective. The MoG's prior variance ended at
# {glue:text}`ch03_k1_var_mog` on average (at most {glue:text}`ch03_k1_varmax_mog`), the VampPrior's, an
# output of the encoder, at {glue:text}`ch03_k1_var_vamp` (up to {glue:text}`ch03_k1_varmax_vamp`); the
# aggregate posterior's variance per dimension, the spread of the codes, is {glue:text}`ch03_k1_spread_vamp`
# against {glue:text}`ch03_k1_spread_mog`. A wider prior lets the encoder spread the codes of different
# images further apart relative to the posterior noise for a similar KL term ({glue:text}`ch03_k1_kl_vamp`
# against {glue:text}`ch03_k1_kl_mog` nats), and the reconstruction term gains
# ({glue:text}`ch03_k1_rec_vamp` against {glue:text}`ch03_k1_rec_mog`). The controlled experiments (paired
# test-ELBO differences on all 10,000 test images): against the MoG the VampPrior leads by
# {glue:text}`ch03_k1_d_mog` nats (paired s.e. {glue:text}`ch03_k1_se_mog`); against the MoG started at the
# VampPrior's initial Gaussian by {glue:text}`ch03_k1_d_same` (s.e. {glue:text}`ch03_k1_se_same`); against the
# MoG whose parameters move ten times faster by {glue:text}`ch03_k1_d_fast` (s.e.
# {glue:text}`ch03_k1_se_fast`).
#
# Where the gap is clear, the same start keeps it and the faster prior removes most of it (the chapter
# asserts all three whenever the budget is as short as at the default scale, fewer than $2/\text{lr}$ steps),
# the anomaly is an effect of the training budget: not a bug, and not a property of the VampPrior. With the
# paper's hundreds of thousands of steps a learned Gaussian's variance has all the time it needs. It also
# qualifies the comparison at every $K$ above: at a short budget, part of the VampPrior's lead over the MoG
# comes from the speed at which its components can move, not from the coupling with the encoder that the
# paper argues for.
#
# ## 10. Active units of both layers (Fig. 3 style)
#
# A unit is active {cite:p}`burda2016iwae` when its posterior mean varies over the data,
# $\operatorname{Cov}_x \mathbb E_{q}[z_u] > 0.01$. For the two-level models we count both layers: the top
# layer $z_2$ (from $q(z_2\mid x)$) and the bottom layer $z_1$ (from $q(z_1\mid x, z_2)$ with $z_2$ at its
# posterior mean). The paper's Fig. 3 (static MNIST) shows the VampPrior raising the number of active units
# "four times for the second level", $z_2$, and "around 1.5 times" for the first, $z_1$, against two-level
# models with the standard prior.

# %%
au = {label: vr.active_units_by_layer(models[label], data.test)
      for label in ("HVAE standard", "HVAE VampPrior")}


def au_recorded(label, layer):
    """The study's record of a model's active units, where it holds one."""
    return recorded.get(label, {}).get("active_units", {}).get(layer, "not run yet")


show(pd.DataFrame([{"model": label, "z2, this build": counts["z2"],
                    "z1, this build": counts["z1"],
                    "z2, full scale": au_recorded(label, "z2"),
                    "z1, full scale": au_recorded(label, "z1")}
                   for label, counts in au.items()]),
     f"Active units (of {latent_dim}) of each layer of the two-level models: this "
     "build and the study's records at the paper's schedule.",
     numbers=["z2, full scale", "z1, full scale"])
fig, ax = plt.subplots(figsize=(5, 3.2))
layers = ["z2", "z1"]
for off, label in ((-0.2, "HVAE standard"), (0.2, "HVAE VampPrior")):
    bars = ax.bar(np.arange(len(layers)) + off, [au[label][layer] for layer in layers],
                  width=0.4, label=label)
    ax.bar_label(bars, padding=2)
ax.set(xticks=range(len(layers)), xticklabels=["z2 (top)", "z1 (bottom)"],
       xlabel="stochastic layer", ylabel=f"active units (of {latent_dim})",
       ylim=(0, 1.15 * latent_dim))
integer_ticks(ax, "y")
ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
save_figure(fig, out_dir, "active_units")
glue_figure("ch03_fig_active_units", fig)

# %%
def compared(std, vamp):
    """How the VampPrior's count compares with the standard prior's, in words."""
    if vamp == std:
        return "the same number with both priors"
    return "more with the VampPrior" if vamp > std else "fewer with the VampPrior"


for layer in layers:
    glue(f"ch03_au_std_{layer}", au["HVAE standard"][layer])
    glue(f"ch03_au_vamp_{layer}", au["HVAE VampPrior"][layer])
    glue(f"ch03_au_cmp_{layer}", compared(au["HVAE standard"][layer],
                                          au["HVAE VampPrior"][layer]))
glue("ch03_latent_dim", latent_dim)

# %% [markdown]
# ```{glue:figure} ch03_fig_active_units
# :name: fig-ch03-active-units
# Active units of the top layer $z_2$ and the bottom layer $z_1$ of the two-level model with the standard
# prior and with the VampPrior on $z_2$, on all 10,000 test images (this build's scale).
# ```
#
# In this run ({numref}`fig-ch03-active-units`) the top layer $z_2$, where the paper sees the largest
# effect, has {glue:text}`ch03_au_std_z2` of {glue:text}`ch03_latent_dim` active units with the standard
# prior and {glue:text}`ch03_au_vamp_z2` with the VampPrior: {glue:text}`ch03_au_cmp_z2`. The bottom layer
# $z_1$ has {glue:text}`ch03_au_std_z1` and {glue:text}`ch03_au_vamp_z1`: {glue:text}`ch03_au_cmp_z1`.
# Units become inactive over long training, so a short run can only show the beginning of the difference;
# the study page records both layers at the paper's schedule.
#
# ## 11. Pseudo-inputs and what they generate (Fig. 4)
#
# The learned pseudo-inputs of the one-level VampPrior VAE, samples generated from some of them
# ($z\sim q(z\mid u_k)$, decoded), and prior samples and reconstructions of each model.

# %%
vv = models["VAE VampPrior"]
with torch.no_grad():
    u = vv.prior.pseudo_inputs()[:20]
    mu_u, lv_u = vv.encode(u)
    gz = torch.Generator(dev).manual_seed(seed)
    from_u = vv.mean_image(mu_u[:10] + torch.exp(0.5 * lv_u[:10]) * torch.randn(
        mu_u[:10].shape, generator=gz, device=dev))
    x_show = data.test.batch(torch.arange(10, device=dev))
    rows_img = [("learned pseudo-inputs", u[:10]),
                ("more pseudo-inputs", u[10:20]),
                ("samples z ~ q(z | u_k), k = 1..10", from_u),
                ("test images", x_show)]
    for label in ("VAE standard", "VAE VampPrior", "HVAE standard", "HVAE VampPrior"):
        model = models[label]
        rows_img.append((f"{label}: reconstructions", model.reconstruct(x_show)))
        rows_img.append((f"{label}: prior samples", model.sample(10, generator=gz)))
fig, axes = plt.subplots(len(rows_img), 1, figsize=(7, 1.15 * len(rows_img)))
for ax, (title, imgs) in zip(axes, rows_img):
    show_images(imgs, nrow=10, ax=ax, title=title)
save_figure(fig, out_dir, "pseudo_inputs_samples")
glue_figure("ch03_fig_pseudo_inputs", fig)

# %% [markdown]
# ```{glue:figure} ch03_fig_pseudo_inputs
# :name: fig-ch03-pseudo-inputs
# From the top: twenty learned pseudo-inputs of the one-level VampPrior VAE, one decoded sample of
# $q(z\mid u_k)$ for each of the first ten, ten test images, and for each model the reconstructions of
# those test images and ten samples of its prior, decoded (this build's scale). The pseudo-inputs start
# near black (every pixel about 0.05, the official code's initialisation).
# ```
#
# ## The record of this run
#
# The chapter's numbers go to `out_dir/results.json` with the scale, the machine and the run time.

# %%
ch.finish({
    "tables_1_2": [{k: v for k, v in r.items() if k != "ll_images"} for r in rows],
    "paper_dynamic_mnist": {name: value for name, (value, _) in vr.PAPER_LL.items()},
    "comparison": comparison, "elbo_vs_k": k_rows, "k1_check": k1_rows,
    "k1_paired": {"vamp_minus_mog": [d_mog, se_mog],
                  "vamp_minus_same_start_mog": [d_same, se_same],
                  "vamp_minus_fast_mog": [d_fast, se_fast]},
    "active_units": au, "optimal_prior_check": scores,
    "optimal_prior_check_real": real_scores, "coupling": coupling,
    "posterior_variance": post_var,
});

# %% [markdown]
# ## Summary
#
# - **Derived.** The prior that maximises the averaged ELBO is the aggregate posterior (Section 1). The
#   VampPrior approximates it by a mixture of the encoder's own posteriors at $K$ pseudo-inputs (Section 2);
#   its gradient reaches the encoder twice, through the code and through the components, with a factor
#   $x - u_k$ that vanishes when a pseudo-input equals the image (Section 3). The two-level model's
#   regulariser is a KL term per layer, the VampPrior on the top one (Section 5).
# - **Checked by numbers.** The aggregate posterior beats every other prior on synthetic posteriors and on
#   a trained VAE's; the MoG prior, the VampPrior and the two-level model's terms written by hand equal
#   `vaelab`'s (values and gradients, in float64); the derived gradients equal autograd; the importance
#   sampler recovers an exact marginal, and its ELBO stays below.
# - **At this scale** ({glue:text}`ch03_epochs` on {glue:text}`ch03_train_size` images, in
#   {glue:text}`ch03_runtime_min` minutes on {glue:text}`ch03_machine`), {glue:text}`ch03_holds`; and
#   {glue:text}`ch03_k1_finding`.
# - **At full scale** (the study's records, the paper's schedule): {glue:text}`ch03_full_values`. Orderings:
#   {glue:text}`ch03_full_orderings`. Not run yet: {glue:text}`ch03_not_run`.
# - **Next.** The models not run yet at full scale are the study page's next executions
#   ({doc}`03b_vampprior_study` gives the command and shows each record's active units per layer, the
#   paper's Fig. 3). Beyond the tables lies the weighted VampPrior (Eq. 16), which `vaelab` has and no
#   table here uses yet.
#
# ## Exercises
#
# 1. **The step-size limit.** Section 9 argues that Adam moves a free Gaussian's log-variance by about the
#    learning rate per step. Predict how the VampPrior's lead over the MoG at $K = 1$ changes when the MoG
#    moves 3 or 30 times faster (`ScaledMixtureOfGaussians(latent_dim, K1, speed=3.0)`), then train the two
#    models as in Section 9 and compare the paired differences with your prediction.
# 2. **A pseudo-input at the data point.** In Section 3, move the first pseudo-input towards the data
#    point, `U[0] = (1 - t) * U[0] + t * x1` for $t$ from 0 to 1, and plot the largest entry of the second
#    path's term of $\partial R/\partial A$ for that component against $t$. Why does it vanish at $t = 1$,
#    while the whole gradient does not for $K = 4$?
# 3. **Learned or fixed pseudo-inputs.** Run the study page twice at a small scale,
#    `-p run hvae_vamp` and `-p run hvae_vamp_data`, each with `-p epochs 20 -p train_size 10000
#    -p ll_images 500`, and compare the test log-likelihoods. Which of the two does
#    {numref}`fig-ch03-pseudo-inputs` lead you to expect ahead at this budget, and why?
