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
# # Over-regularisation, posterior collapse and WAE-MMD
#
# The HEBAE paper {cite:p}`cheng2020hebae` starts from an observation about the plain VAE: the KL
# term with a standard normal prior does two jobs at once. It shapes the *aggregate* of the codes
# (so that decoded prior samples look like data) and it pulls *every single* posterior towards
# $\mathcal N(0, I)$. The second job over-regularises: it adds noise to every code and, when it wins,
# whole latent dimensions stop carrying information (posterior collapse). The Wasserstein
# autoencoder {cite:p}`tolstikhin2018wae` drops the second job altogether. This chapter derives the
# pieces (HEBAE Sections 2.1-2.4), checks each one by numbers, and then measures the effect on MNIST
# with the paper's App. B.1 network: a sweep over the KL weight $\lambda$, latent covariances, the
# MIC between the sample index and the latents, and pictures.

# %% tags=["remove-cell"]
# Colab: install vaelab (the package this book is built on) when it is missing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vaelab @ git+https://github.com/vaelab/vaelab"], check=True)
    # minepy (MIC/TIC) does not build from PyPI on current Python/numpy: the
    # repository's script patches and builds it
    subprocess.run("curl -sL "
                   "https://raw.githubusercontent.com/vaelab/vaelab/main/tools/"
                   f"install_minepy.sh | bash -s {sys.executable}", shell=True,
                   check=True)

# %% tags=["parameters"]
# Parameters (papermill: -p name value). Default scale: the book build, minutes on 2
# CPU cores. Full scale (the paper's): -p epochs 100 -p train_size 60000 -p valid_size 0.
epochs = 20            # per model; the paper: 100
train_size = 10_000    # training images; the paper: all 60,000
valid_size = 10_000    # held out of the training images, unused (0 at full scale)
latent_dim = 20
n_lams = 7             # KL weights, log-spaced in [lam_min, lam_max]
lam_min = 0.01
lam_max = 100.0
wae_lam = 1.0          # the WAE's MMD weight for the comparisons (HEBAE Fig. 2: 1)
batch_size = 128
lr = 1e-3
lr_decay = 0.995       # per epoch, HEBAE App. B.1
eval_size = 2_000      # test images for ELBO surgery, covariances and active units
mic_points = 300       # MIC/TIC: test images
mic_samples = 10       # MIC/TIC: posterior samples per image
seed = 0
device = "auto"
data_root = None
out_dir = "runs/01_vae_collapse"
resume = True
run = "all"     # one model only, for sweeps: "vae1".."vae<n_lams>" (by lambda) or "wae"
gather = False  # True: train nothing, read the models of a finished sweep below out_dir

# %%
import vaelab
from vaelab.lab.checks import replace_params

smoke = vaelab.is_smoke()
if smoke:  # VAELAB_SMOKE=1 (CI, nbval): seconds of work, meaningless numbers
    replace_params(globals(), epochs=1, train_size=1_000, eval_size=500,
                          mic_points=60, out_dir=out_dir + "/smoke", resume=False)

# %% [markdown]
# The next cell checks every parameter before anything is loaded or trained; a wrong one stops the
# run here with a message that names it and the fix.

# %% tags=["remove-input"]
from vaelab.lab.checks import (ParameterError, check_bool, check_choice, check_device,
                           check_float, check_int, check_path)

epochs = check_int("epochs", epochs, min=1, example=20)
valid_size = check_int("valid_size", valid_size, min=0, max=59_999, example=10_000)
train_size = check_int("train_size", train_size, min=1, max=60_000 - valid_size,
                       example=10_000,
                       note="MNIST's 60,000 training images less valid_size")
latent_dim = check_int("latent_dim", latent_dim, min=1, example=20)
n_lams = check_int("n_lams", n_lams, min=1, example=7)
lam_min = check_float("lam_min", lam_min, min=0, min_open=True, example=0.01,
                      note="the KL weights are log-spaced")
lam_max = check_float("lam_max", lam_max, min=0, min_open=True, example=100.0,
                      note="the KL weights are log-spaced")
if lam_min > lam_max:
    raise ParameterError(f"lam_min must be <= lam_max, got lam_min={lam_min}, "
                         f"lam_max={lam_max}: pass -p lam_min 0.01 -p lam_max 100")
wae_lam = check_float("wae_lam", wae_lam, min=0, example=1.0)
batch_size = check_int("batch_size", batch_size, min=1, example=128)
lr = check_float("lr", lr, min=0, min_open=True, example=1e-3)
lr_decay = check_float("lr_decay", lr_decay, min=0, max=1, min_open=True, example=0.995)
eval_size = check_int("eval_size", eval_size, min=2, max=10_000, example=2_000,
                      note="test images")
mic_points = check_int("mic_points", mic_points, min=2, max=10_000, example=300,
                       note="test images")
mic_samples = check_int("mic_samples", mic_samples, min=1, example=10)
seed = check_int("seed", seed, min=0)
device = check_device("device", device)
data_root = check_path("data_root", data_root, none_ok=True, example="None")
out_dir = check_path("out_dir", out_dir, example="runs/01_vae_collapse")
resume = check_bool("resume", resume)
run_names = [f"vae{i}" for i in range(1, n_lams + 1)] + ["wae"]  # vae1: lam_min
run = check_choice("run", run, ["all"] + run_names)
gather = check_bool("gather", gather)
if gather and run != "all":
    raise ParameterError("gather=True reads every model of a sweep: pass -p run all "
                         f"with it, got run={run!r}")
point_mode = run != "all"  # this execution trains one model and draws nothing

# %%
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from torch.distributions import Normal, kl_divergence

from vaelab.lab.compare import Metric, comparison_table, no_record_note
from vaelab.core.densities import kl_std_normal, kl_std_normal_per_dim
from vaelab.evaluation.diagnostics import (active_units, elbo_surgery, kl_per_dim, latent_cov_corr,
                                mean_abs_offdiag, mic_tic_index, posterior_samples,
                                posterior_stats)
from vaelab.objectives.mmd import imq_kernel, mmd_imq
from vaelab.lab.plots import (book_style, integer_ticks, legend_above, save_figure,
                          show_images, subplots)
from vaelab.lab.prose import glue
from vaelab.lab.records import load_records, record_command
from vaelab.lab.results import save_results
from vaelab.objectives.schedules import Constant
from vaelab.training.train import evaluate, exponential_lr
from vaelab.models.wae import mlp_wae

book_style()  # figures drawn at the width of the book's column
torch.manual_seed(seed)
dev = vaelab.get_device(device)
t_start = time.perf_counter()
print(f"device {dev}, {torch.get_num_threads()} threads")

# %% [markdown]
# ## 1. The ELBO with a KL weight
#
# For any $q(z\mid x)$, $\log p(x) = \mathrm{ELBO}(x) + \mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$
# (HEBAE Eqs. 1-2), and since the last KL is non-negative,
#
# $$
# \log p(x) \ge \mathbb E_{q(z\mid x)}[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z)).
# $$
#
# With $q(z\mid x)=\mathcal N(\mu(x), \operatorname{diag}\sigma^2(x))$ the expectation is estimated through
# $z = \mu + \sigma\odot\varepsilon$, $\varepsilon\sim\mathcal N(0,I)$ (Eq. 3), and the KL to
# $p(z) = \mathcal N(0, I)$ is available in closed form. With a weight $\lambda$ on it, the objective to
# *minimise* per example is
#
# $$
# \mathcal L_\lambda(x) = -\mathbb E_{q}[\log p(x\mid z)]
#   + \frac{\lambda}{2}\sum_{j=1}^{k}\left(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\right).
# $$
#
# **Where the paper differs.** HEBAE's Eq. 4 writes this regulariser without the factor $\frac12$ and with
# the bracket's signs flipped, i.e. in the form of a quantity to maximise. The form above is the KL
# (non-negative, zero only at $\mu=0, \sigma=1$); without the $\frac12$ a given $\lambda$ would act like
# $2\lambda$ here. The check below compares the closed form with `torch.distributions` and with a Monte
# Carlo average of $\log q(z\mid x) - \log p(z)$.

# %%
g = torch.Generator().manual_seed(1)
mu, logvar = 2 * torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
q = Normal(mu, torch.exp(0.5 * logvar))
torch.testing.assert_close(kl_std_normal(mu, logvar),
                           kl_divergence(q, Normal(0.0, 1.0)).sum(-1))
z = q.sample((100_000,))
ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)
se = ratio.std(0) / math.sqrt(len(z))
assert ((kl_std_normal(mu, logvar) - ratio.mean(0)).abs() < 4 * se).all()
# the paper's literal bracket, summed without 1/2, is -2 KL:
paper_eq4 = (1 + logvar - mu**2 - logvar.exp()).sum(-1)
torch.testing.assert_close(paper_eq4, -2 * kl_std_normal(mu, logvar))
print("closed-form KL = torch.distributions = Monte Carlo (within 4 s.e.)")

# %% [markdown]
# ## 2. Why $\mathcal N(0, I)$ over-regularises: a toy solved by hand
#
# Take one data point $x\in\mathbb R$, a decoder that returns $z$ itself with Gaussian noise of
# variance $s^2$, and a free posterior $\mathcal N(\mu, \sigma^2)$. The expected reconstruction term is
# $\big((x-\mu)^2+\sigma^2\big)/(2s^2)$ (plus a constant), so
#
# $$
# \mathcal L_\lambda(\mu,\sigma^2) = \frac{(x-\mu)^2+\sigma^2}{2s^2}
#   + \frac\lambda2\left(\mu^2+\sigma^2-1-\log\sigma^2\right).
# $$
#
# Setting the derivatives to zero gives the optimum by hand:
#
# $$
# \frac{\partial\mathcal L}{\partial\mu} = \frac{\mu - x}{s^2} + \lambda\mu = 0
#   \;\Rightarrow\; \mu^\star = \frac{x}{1+\lambda s^2},\qquad
# \frac{\partial\mathcal L}{\partial\sigma^2} = \frac{1}{2s^2}+\frac\lambda2\Big(1-\frac1{\sigma^2}\Big)=0
#   \;\Rightarrow\; \sigma^{\star2} = \frac{\lambda s^2}{1+\lambda s^2}.
# $$
#
# The reconstruction alone wants $\mu = x$, $\sigma = 0$; the KL alone wants $\mu = 0$, $\sigma = 1$; the
# optimum slides from the first to the second as $\lambda s^2$ grows. Every code is pulled to the same
# $\mathcal N(0, 1)$, which is the over-regularisation. We check the formulas by minimising
# $\mathcal L_\lambda$ numerically.

# %%
def toy_loss(m, log_s2_post, x, s2, lam):
    var = log_s2_post.exp()
    return ((x - m) ** 2 + var) / (2 * s2) + lam / 2 * (m**2 + var - 1 - log_s2_post)


x0, s2 = 2.0, 0.5
toy_lams = torch.logspace(-2, 2, 9, dtype=torch.float64)
m = torch.zeros(9, dtype=torch.float64, requires_grad=True)
lv = torch.zeros(9, dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([m, lv], max_iter=500, tolerance_grad=1e-12,
                        tolerance_change=1e-14, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = toy_loss(m, lv, x0, s2, toy_lams).sum()
    loss.backward()
    return loss


opt.step(closure)
mu_star = x0 / (1 + toy_lams * s2)
var_star = toy_lams * s2 / (1 + toy_lams * s2)
torch.testing.assert_close(m.detach(), mu_star, rtol=1e-6, atol=1e-8)
torch.testing.assert_close(lv.detach().exp(), var_star, rtol=1e-6, atol=1e-8)
print("numerical optimum = hand-derived optimum for all", len(toy_lams),
      "values of lambda")

# %% [markdown]
# ### With a learned decoder the pull becomes collapse
#
# Now let the decoder learn: data $x\sim\mathcal N(0, v)$, encoder $q(z\mid x) = \mathcal N(ax, \sigma^2)$,
# decoder $p(x\mid z) = \mathcal N(wz, s^2)$. Averaging over $x$ and $z$,
#
# $$
# \mathcal L_\lambda(a,\sigma^2,w) = \frac{v(1-wa)^2 + w^2\sigma^2}{2s^2}
#   + \frac\lambda2\left(a^2v+\sigma^2-1-\log\sigma^2\right).
# $$
#
# The optimal encoder for a given $w$ is $\sigma^2 = \lambda s^2/(w^2+\lambda s^2)$ and
# $a = w/(w^2+\lambda s^2)$. Putting them back, the derivative in $w$ is
#
# $$
# \frac{\partial \mathcal L}{\partial w} = \frac{\lambda w}{w^2+\lambda s^2}\left(1-\frac{v}{w^2+\lambda s^2}\right),
# $$
#
# whose zeros are $w = 0$ and $w^2 = v - \lambda s^2$. So the decoder uses the latent only while
# $\lambda s^2 < v$: $w^{\star2} = \max(0, v-\lambda s^2)$. Past $\lambda = v/s^2$ the optimum *is* the
# collapsed solution $w = a = 0$, $\sigma = 1$: the posterior equals the prior for every $x$ and the latent
# carries nothing. A weaker signal (smaller $v$) collapses at a smaller $\lambda$: in a model with many
# latent dimensions the weak directions of the data collapse first.

# %%
v, s2 = 1.5, 0.1
lin_lams = torch.logspace(-1, 2, 13, dtype=torch.float64)
a = torch.full((13,), 0.3, dtype=torch.float64, requires_grad=True)
w = torch.full((13,), 0.7, dtype=torch.float64, requires_grad=True)
lsig = torch.zeros(13, dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([a, w, lsig], max_iter=5000, tolerance_grad=1e-14,
                        tolerance_change=1e-16, line_search_fn="strong_wolfe")


def lin_loss():
    var = lsig.exp()
    rec = (v * (1 - w * a) ** 2 + w**2 * var) / (2 * s2)
    return (rec + lin_lams / 2 * (a**2 * v + var - 1 - lsig)).sum()


def closure():
    opt.zero_grad()
    loss = lin_loss()
    loss.backward()
    return loss


for _ in range(5):
    opt.step(closure)
w2_star = (v - lin_lams * s2).clamp_min(0)
torch.testing.assert_close(w.detach() ** 2, w2_star, atol=1e-4, rtol=1e-4)
collapsed = lin_lams * s2 >= v
torch.testing.assert_close(lsig.detach().exp()[collapsed],
                           torch.ones(int(collapsed.sum()), dtype=torch.float64),
                           atol=1e-4, rtol=0)

fig, axes = subplots(2, aspect=0.75)
lam_fine = torch.logspace(-2, 2, 200, dtype=torch.float64)
axes[0].plot(lam_fine, 2.0 / (1 + lam_fine * 0.5), label=r"$\mu^\star$ (hand)")
axes[0].plot(lam_fine, lam_fine * 0.5 / (1 + lam_fine * 0.5),
             label=r"$\sigma^{\star2}$ (hand)")
axes[0].plot(toy_lams, m.detach(), "o", color="C0", label="numerical")
axes[0].plot(toy_lams, lv.detach().exp(), "o", color="C1")
axes[0].set(xscale="log", xlabel=r"$\lambda$", ylabel="optimum",
            title=f"one point x = {x0}, $s^2$ = 0.5")
axes[0].legend()
lam_lin_fine = torch.logspace(-1, 2, 200, dtype=torch.float64)
axes[1].plot(lam_lin_fine, (v - lam_lin_fine * s2).clamp_min(0),
             label=r"$w^{\star2}=\max(0, v-\lambda s^2)$")
axes[1].plot(lin_lams, w.detach() ** 2, "o", label="numerical")
axes[1].axvline(v / s2, color="gray", ls=":", label=r"$\lambda = v/s^2$: collapse")
axes[1].set(xscale="log", xlabel=r"$\lambda$", ylabel=r"$w^2$ at the optimum",
            title="linear VAE: decoder weight")
axes[1].legend()
save_figure(fig, out_dir, "toy_over_regularisation")
plt.show()

# %% [markdown]
# ## 3. ELBO surgery: the average KL has two parts
#
# Let $n$ be uniform over the $N$ data points and $q(z) = \frac1N\sum_n q(z\mid x_n)$ the aggregate
# posterior. Then, as {cite:t}`hoffman2016elbo` show (HEBAE's Eq. 10),
#
# $$
# \frac1N\sum_{n=1}^N \mathrm{KL}\big(q(z\mid x_n)\,\|\,p(z)\big)
#   = \underbrace{\mathrm{KL}\big(q(z)\,\|\,p(z)\big)}_{\text{marginal KL}}
#   + \underbrace{\mathbb E_{n}\,\mathbb E_{q(z\mid x_n)}\Big[\log\frac{q(z\mid x_n)}{q(z)}\Big]}_{I(n;\,z)} ,
# $$
#
# obtained by adding and subtracting $\log q(z)$ inside the average. Only the first part is needed for good
# samples (prior and aggregate posterior should agree); the second penalises the mutual information
# between the index of a data point and its code, which is what an autoencoder needs to reconstruct.
# Because $q(z) \ge q(z\mid x_n)/N$, the integrand is at most $\log N$, so $0 \le I(n; z) \le \log N$:
# with 10,000 images the KL term can spend at most $\log 10^4 \approx 9.2$ nats on information about the
# index, however many latent dimensions there are. `vaelab.evaluation.diagnostics.elbo_surgery` estimates both
# parts, computing $\log q(z)$ exactly as a mixture of all $N$ posteriors. Check on synthetic posteriors:
# the parts add up to the closed-form average KL, and the bound holds at its two extremes.

# %%
g = torch.Generator().manual_seed(2)
mu_s = torch.randn(400, 3, generator=g)
lv_s = -1 + 0.5 * torch.randn(400, 3, generator=g)
parts = elbo_surgery(mu_s, lv_s, n_samples=20, generator=g)
total_se = math.hypot(parts["mutual_info_se"], parts["marginal_kl_se"])
print({k: round(v, 4) for k, v in parts.items()})
parts_sum = parts["mutual_info"] + parts["marginal_kl"]
assert abs(parts_sum - parts["avg_kl"]) < 4 * total_se + 1e-9
assert 0 <= parts["mutual_info"] <= parts["log_n"]
# narrow, far-apart posteriors: z tells n
far = elbo_surgery(100 * torch.randn(400, 3, generator=g), torch.full((400, 3), -8.0),
                   n_samples=5, generator=g)
same = elbo_surgery(torch.zeros(400, 3), torch.zeros(400, 3), n_samples=5, generator=g)
assert abs(far["mutual_info"] - far["log_n"]) < 1e-3 and abs(same["mutual_info"]) < 1e-9
print(f"I = {far['mutual_info']:.4f} = log N = {far['log_n']:.4f} for separated "
      f"posteriors; I = {same['mutual_info']:.1e} for identical ones")

# %% [markdown]
# ## 4. WAE-MMD: keep the first part, drop the second
#
# The Wasserstein autoencoder {cite:p}`tolstikhin2018wae` makes the encoder deterministic, $z = f(x)$, and
# penalises only a distance between the aggregate of the codes and the prior: the maximum mean
# discrepancy with a kernel $\kappa$,
#
# $$
# \mathrm{MMD}^2(q, p) = \mathbb E_{z,z'\sim q}\kappa(z,z') + \mathbb E_{y,y'\sim p}\kappa(y,y')
#   - 2\,\mathbb E_{z\sim q, y\sim p}\kappa(z,y).
# $$
#
# On a batch $z_1..z_n$ and prior draws $y_1..y_n$, leaving out the $i = j$ terms makes each average
# unbiased:
#
# $$
# \widehat{\mathrm{MMD}}^2 = \frac{1}{n(n-1)}\sum_{i\ne j}\big(\kappa(z_i,z_j) + \kappa(y_i,y_j)\big)
#   - \frac{2}{n^2}\sum_{i,j}\kappa(z_i,y_j).
# $$
#
# HEBAE's code, like the WAE's, uses the inverse multiquadratic kernel
# $\kappa(z, y) = \sum_s C_s/(C_s + \lVert z-y\rVert^2)$ with $C_s = 2ks$ over the scales
# $s\in\{.1,.2,.5,1,2,5,10\}$. The objective is again `rec + weight * reg`, with `reg` the MMD of the batch.
# Checks: `vaelab.objectives.mmd.mmd_imq` against a brute-force double loop; near zero for two samples of one
# distribution, clearly positive for a shifted one.

# %%
def mmd_loop(x, y, k):
    def kern(a, b):
        return sum(2 * k * s / (2 * k * s + float(((a - b) ** 2).sum()))
                   for s in (.1, .2, .5, 1, 2, 5, 10))
    n, m = len(x), len(y)
    kxx = sum(kern(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    kyy = sum(kern(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxx, kyy = kxx / (n * (n - 1)), kyy / (m * (m - 1))
    kxy = sum(kern(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


g = torch.Generator().manual_seed(3)
xa = torch.randn(9, 4, generator=g, dtype=torch.float64)
ya = torch.randn(7, 4, generator=g, dtype=torch.float64)
assert abs(mmd_imq(xa, ya).item() - mmd_loop(xa, ya, 4)) < 1e-10
same = torch.stack([mmd_imq(torch.randn(200, 8, generator=g),
                            torch.randn(200, 8, generator=g))
                    for _ in range(50)])
shift = mmd_imq(torch.randn(200, 8, generator=g) + 0.5,
                torch.randn(200, 8, generator=g))
print(f"same distribution: {same.mean():.5f} +/- {same.std() / math.sqrt(50):.5f}; "
      f"shifted by 0.5: {shift:.4f}")
assert abs(same.mean()) < 4 * same.std() / math.sqrt(50)
assert shift > same.mean() + 10 * same.std()

# %% [markdown]
# ## 5. Measuring collapse: active units and KL per dimension
#
# A latent unit $u$ is *active* {cite:p}`burda2016iwae` when its posterior mean moves with the data:
# $A_u = \operatorname{Cov}_x\big(\mathbb E_{q(z\mid x)}[z_u]\big) > 0.01$. A collapsed unit has
# $\mu_u(x)\approx 0$ and $\sigma_u(x)\approx 1$ for every $x$, so its per-dimension KL
# $\frac12(\mu_u^2+\sigma_u^2-1-\log\sigma_u^2)$ is about 0 as well. Both are in `vaelab.evaluation.diagnostics`.
#
# ## 6. MNIST: a sweep over $\lambda$
#
# The HEBAE App. B.1 network (encoder 784-784-800-2k, decoder k-800-800-784, ReLU), $k = 20$, grey pixels
# as Bernoulli means, Adam $10^{-3}$ decayed by 0.995 per epoch, batch 128, trained at each $\lambda$ of a
# log-spaced grid. The ELBO reported is the true one ($\lambda = 1$) on test images, whatever $\lambda$
# the model was trained with.

# %%
data = vaelab.load_dataset("mnist", root=data_root, device=dev, train_size=train_size,
                           valid_size=valid_size, seed=seed)
evalset = data.test.subset(eval_size)
lams = np.logspace(math.log10(lam_min), math.log10(lam_max), n_lams)
print(f"training on {len(data.train)} images for {epochs} epochs per model; "
      f"lambdas {np.round(lams, 4)}")


def model_dir(name):
    """A model's run directory: out_dir/name, or the finished sweep point holding it."""
    if not gather:
        return f"{out_dir}/{name}"
    found = [d for d in Path(out_dir).glob(f"*/{name}")
             if (d.parent / "done.json").exists()]
    if len(found) != 1:
        raise FileNotFoundError(
            f"gather=True needs exactly one finished sweep point holding {name} below "
            f"{out_dir}, found {len(found)}: run the sweep's points first (README)")
    return str(found[0])


def train(model, lam, name):
    torch.manual_seed(seed)
    return vaelab.fit(model, data.train, epochs=epochs, batch_size=batch_size, lr=lr,
                      lr_factor=exponential_lr(lr_decay), schedule=Constant(float(lam)),
                      out_dir=model_dir(name), resume=resume or gather, seed=seed)


selected = run_names if run == "all" else [run]
sweep, vaes, wae = [], {}, None
for i, lam in enumerate(lams, start=1):
    if f"vae{i}" not in selected:
        continue
    torch.manual_seed(seed)
    model = vaelab.mlp_vae(latent_dim=latent_dim).to(dev)
    t0 = time.perf_counter()
    print(f"training VAE lambda={lam:.4g} ({i}/{n_lams + 1})")
    train(model, lam, f"vae_lam{lam:.4g}")
    test = evaluate(model, data.test)
    mu_e, lv_e = posterior_stats(model, evalset)
    n_active, a_u = active_units(mu_e)
    kl_dim = kl_per_dim(mu_e, lv_e)
    dead = a_u <= 0.01
    surgery = elbo_surgery(mu_e, lv_e, n_samples=4,
                           generator=torch.Generator(dev).manual_seed(seed))
    row = {"lam": float(lam), "elbo": -(test["rec"] + test["reg"]), "rec": test["rec"],
           "kl": test["reg"], "active_units": n_active, "kl_per_dim": kl_dim.tolist(),
           "inactive_mean_abs_mu": (mu_e[:, dead].abs().mean().item()
                                    if dead.any() else None),
           "inactive_mean_var": (lv_e[:, dead].exp().mean().item()
                                 if dead.any() else None),
           "mutual_info": surgery["mutual_info"], "marginal_kl": surgery["marginal_kl"],
           "surgery_avg_kl": surgery["avg_kl"],
           "surgery_se": math.hypot(surgery["mutual_info_se"],
                                    surgery["marginal_kl_se"]),
           "log_n": surgery["log_n"], "seconds": time.perf_counter() - t0}
    sweep.append(row)
    vaes[float(lam)] = model
    print(f"lambda {lam:8.3f}: ELBO {row['elbo']:8.2f}  rec {row['rec']:7.2f}  "
          f"KL {row['kl']:6.2f}  active {n_active:2d}/{latent_dim}  "
          f"I(n;z) {row['mutual_info']:5.2f}  KL(q(z)||p) {row['marginal_kl']:6.2f}  "
          f"({row['seconds']:.0f} s)")
if "wae" in selected:  # the WAE of section 7, trained here with the VAEs
    torch.manual_seed(seed)
    wae = mlp_wae(latent_dim=latent_dim).to(dev)
    print(f"training WAE lambda={wae_lam:g} ({n_lams + 1}/{n_lams + 1})")
    train(wae, wae_lam, f"wae_lam{wae_lam:g}")
    wae_test = evaluate(wae, data.test)
    print(f"WAE: test reconstruction {wae_test['rec']:.2f} nats, "
          f"MMD {wae_test['reg']:.4f}")



def code_stats(model):
    """Section 7's numbers for one model: off-diagonal covariance/correlation of one
    code sample per test image, mean MIC/TIC between image index and each latent."""
    z = posterior_samples(model, evalset, 1,
                          generator=torch.Generator(dev).manual_seed(seed))[:, 0]
    cov, corr = latent_cov_corr(z)
    zs = posterior_samples(model, data.test.subset(mic_points), mic_samples,
                           generator=torch.Generator(dev).manual_seed(seed))
    mic, tic = mic_tic_index(zs)
    return {"mean_abs_offdiag_corr": mean_abs_offdiag(corr).item(),
            "mean_abs_offdiag_cov": mean_abs_offdiag(cov).item(),
            "mic": mic.tolist(), "tic": tic.tolist(),
            "mean_mic": mic.mean().item(), "mean_tic": tic.mean().item()}


if point_mode:  # a point's record holds section 7's numbers of its own model
    point_stats = code_stats(vaes[float(lams[int(run[3:]) - 1])] if run != "wae"
                             else wae)
    print(f"run={run}: this execution trains only that model (mean MIC "
          f"{point_stats['mean_mic']:.3f}); the gather execution (gather=True) draws "
          "the sweep")

# %% [markdown]
# The two parts of ELBO surgery add up to the average KL on every trained model (a check of the
# estimator on real posteriors), and the mutual information never exceeds $\log N$:

# %%
for row in sweep:
    parts_sum = row["mutual_info"] + row["marginal_kl"]
    assert abs(parts_sum - row["surgery_avg_kl"]) < 4 * row["surgery_se"] + 1e-6
    assert row["mutual_info"] <= row["log_n"] + 1e-9
if sweep:
    print(f"surgery checks hold for all {len(sweep)} models; "
          f"log N = {sweep[0]['log_n']:.3f}")

# %%
if not point_mode:  # a sweep point (run != 'all') trains one model and draws nothing
    lam_arr = np.array([r["lam"] for r in sweep])
    fig, axes = subplots(4)
    axes[0].plot(lam_arr, [r["elbo"] for r in sweep], "o-")
    axes[0].set(title="test ELBO", ylabel="nats")
    axes[1].plot(lam_arr, [r["rec"] for r in sweep], "o-", label="reconstruction")
    axes[1].plot(lam_arr, [r["kl"] for r in sweep], "o-", label="KL")
    axes[1].set(title="terms of the ELBO", ylabel="nats")
    axes[1].legend()
    axes[2].plot(lam_arr, [r["active_units"] for r in sweep], "o-")
    axes[2].set(title=f"active units (of {latent_dim})", ylabel="units",
                ylim=(-0.5, latent_dim + 0.5))
    integer_ticks(axes[2], "y")
    axes[3].plot(lam_arr, [r["mutual_info"] for r in sweep], "o-", label=r"$I(n; z)$")
    axes[3].plot(lam_arr, [r["marginal_kl"] for r in sweep], "o-",
                 label=r"KL$(q(z)\|p(z))$")
    axes[3].axhline(sweep[0]["log_n"], color="gray", ls=":", label=r"$\log N$")
    axes[3].set(title="ELBO surgery", ylabel="nats")
    axes[3].legend()
    for ax in axes:
        ax.set(xscale="log", xlabel=r"$\lambda$")
        ax.grid(alpha=0.3)
    save_figure(fig, out_dir, "lambda_sweep")
    plt.show()


# %% [markdown]
# Collapse as numbers: the KL of every latent dimension at every $\lambda$ (dimensions sorted by KL), and,
# for the inactive units, how close their posteriors are to the prior.

# %%
if not point_mode:  # a sweep point (run != 'all') trains one model and draws nothing
    kl_mat = np.array([sorted(r["kl_per_dim"], reverse=True) for r in sweep])
    fig, ax = plt.subplots(figsize=(7, 2.8))
    im = ax.imshow(np.log10(np.maximum(kl_mat, 1e-4)), aspect="auto", cmap="viridis")
    ax.set(yticks=range(len(sweep)), yticklabels=[f"{r['lam']:.3g}" for r in sweep],
           ylabel=r"$\lambda$", xlabel="latent dimension (sorted by KL)",
           title="KL per dimension")
    integer_ticks(ax, "x")
    fig.colorbar(im, ax=ax, label=r"$\log_{10}$ KL (nats)")
    save_figure(fig, out_dir, "kl_per_dim")
    plt.show()
    collapse = pd.DataFrame([{
        "lambda": f"{r['lam']:.3g}", "active units": r["active_units"],
        "dims KL > 0.1": int((np.array(r["kl_per_dim"]) > 0.1).sum()),
        "dims KL < 0.01": int((np.array(r["kl_per_dim"]) < 0.01).sum()),
        "largest KL of a dim (nats)": f"{max(r['kl_per_dim']):.2g}",
        "mean |mu|, inactive": r["inactive_mean_abs_mu"],
        "mean var, inactive": r["inactive_mean_var"]} for r in sweep])
    display(collapse.style.hide(axis="index").format(precision=3, na_rep="-"))
    # the numbers the text below quotes
    one = min(range(len(sweep)), key=lambda i: abs(math.log(sweep[i]["lam"])))
    best = max(sweep, key=lambda r: r["elbo"])
    low = [r for r in sweep if r["lam"] <= 1 + 1e-9]
    glue("ch01_scale", f"{epochs} epochs on {len(data.train):,} images")
    glue("ch01_active_list", ", ".join(str(r["active_units"]) for r in sweep))
    glue("ch01_lam_list", ", ".join(f"{r['lam']:.3g}" for r in sweep))
    glue("ch01_kl_max_top", max(sweep[-1]["kl_per_dim"]), ".1g")
    glue("ch01_lam_top", sweep[-1]["lam"], ".3g")
    glue("ch01_best_lam", best["lam"], ".3g")
    glue("ch01_best_elbo", best["elbo"], ".1f")
    glue("ch01_log_n", sweep[0]["log_n"], ".2f")
    glue("ch01_mi_gap", max(r["log_n"] - r["mutual_info"] for r in low), ".2f")
    glue("ch01_active_one", sweep[one]["active_units"])
    glue("ch01_elbo_one", sweep[one]["elbo"], ".1f")
    glue("ch01_latent_dim", latent_dim)
    if not smoke:  # the effect itself, asserted at the scales where it is meant to show
        assert sweep[-1]["active_units"] < sweep[0]["active_units"], (
            "no collapse at the largest lambda")
        assert sweep[-1]["inactive_mean_var"] > 0.9
        assert sweep[-1]["inactive_mean_abs_mu"] < 0.1
        counts = [r["active_units"] for r in sweep]
        assert counts == sorted(counts, reverse=True), "active units not monotone"


# %% [markdown]
# **What the sweep shows.** In this run ({glue:text}`ch01_scale`) the numbers of active units at
# $\lambda$ = {glue:text}`ch01_lam_list` are {glue:text}`ch01_active_list` (of
# {glue:text}`ch01_latent_dim`): they fall
# as the weight grows, monotonically (asserted above at default and full scale). At the largest
# weight, $\lambda$ = {glue:text}`ch01_lam_top`, no dimension carries more than
# {glue:text}`ch01_kl_max_top` nats of KL and the inactive posteriors are the prior: means at 0,
# variances at 1 (the table). The true ELBO is highest at $\lambda$ = {glue:text}`ch01_best_lam`
# ({glue:text}`ch01_best_elbo` nats), the weight closest to the objective that *is* the ELBO.
# ELBO surgery shows where the KL goes: for $\lambda \le 1$ the mutual information stays within
# {glue:text}`ch01_mi_gap` nats of its ceiling $\log N$ = {glue:text}`ch01_log_n` (nearly every
# test image is identifiable from its code), and the rest of the KL, the part that is reducible,
# is the mismatch between aggregate posterior and prior. Raising $\lambda$ first removes that
# mismatch and then, past $\lambda \approx 1$, starts eating the information itself: that is
# over-regularisation, and in the limit collapse. The same two phases as in the linear toy, with
# the weak directions of the data going first.
#
# ## 7. VAE against WAE at $\lambda = 1$: covariance, correlation, MIC
#
# HEBAE's Fig. 2 compares the latent codes of the two models trained with $\lambda = 1$, $k = 20$. For the
# VAE we take samples $z\sim q(z\mid x)$ of test images, for the WAE the codes $z = f(x)$.

# %%
if not point_mode:  # a sweep point (run != 'all') trains one model and draws nothing
    # the VAE whose lambda is closest to 1
    vae1 = vaes[min(vaes, key=lambda lam: abs(math.log(lam)))]
    gen = torch.Generator(dev).manual_seed(seed)
    z_vae = posterior_samples(vae1, evalset, 1, generator=gen)[:, 0]
    z_wae = posterior_samples(wae, evalset, 1)[:, 0]
    stats = {}
    fig, axes = plt.subplots(2, 2, figsize=(7, 6))
    for col, (name, zz) in enumerate((("VAE", z_vae), ("WAE", z_wae))):
        cov, corr = latent_cov_corr(zz)
        np.testing.assert_allclose(cov.cpu().numpy(), np.cov(zz.cpu().numpy().T),
                                   rtol=1e-4, atol=1e-6)
        stats[name] = {"mean_abs_offdiag_corr": mean_abs_offdiag(corr).item(),
                       "mean_abs_offdiag_cov": mean_abs_offdiag(cov).item()}
        for row, (mat, what) in enumerate(((cov, "covariance"), (corr, "correlation"))):
            ax = axes[row, col]
            im = ax.imshow(mat.abs().cpu(), cmap="viridis")
            ax.set_title(f"{name}: |{what}|\n"
                         f"mean off-diagonal {mean_abs_offdiag(mat):.3f}")
            ax.set(xlabel="latent dimension" if row == 1 else None,
                   ylabel="latent dimension" if col == 0 else None)
            integer_ticks(ax, "both", nbins=4)
            fig.colorbar(im, ax=ax, fraction=0.046, label=f"|{what}|")
    save_figure(fig, out_dir, "latent_cov_corr")
    plt.show()
    glue("ch01_corr_vae", stats["VAE"]["mean_abs_offdiag_corr"], ".2f")
    glue("ch01_corr_wae", stats["WAE"]["mean_abs_offdiag_corr"], ".2f")


# %% [markdown]
# **MIC and TIC between the sample index and each latent.** The maximal information coefficient
# {cite:p}`reshef2011mic` scores any functional dependence between two variables on $[0, 1]$; the total
# information coefficient (TIC) sums the grid scores and is more powerful for testing. Here the first
# variable is the *index* $n$ of a test image and the second a latent coordinate $z_j$, with several
# samples $z\sim q(z\mid x_n)$ per image. A deterministic encoder makes $z_j$ a function of $n$; a posterior
# whose noise is large against the spread of its means makes the samples of different images overlap, and
# the dependence, and the MIC, drop. HEBAE Fig. 2c,d reports this per dimension: low for the VAE, high for
# the WAE. (Read the index as an arbitrary label: its order carries no meaning, so the MIC of even a
# deterministic code stays below 1 when the images are many compared with the grid.)

# %%
if not point_mode:  # a sweep point (run != 'all') trains one model and draws nothing
    micset = data.test.subset(mic_points)
    mic_res = {}
    for name, model in (("VAE", vae1), ("WAE", wae)):
        zs = posterior_samples(model, micset, mic_samples,
                               generator=torch.Generator(dev).manual_seed(seed))
        t0 = time.perf_counter()
        mic, tic = mic_tic_index(zs)
        mic_res[name] = {"mic": mic.tolist(), "tic": tic.tolist(),
                         "mean_mic": mic.mean().item(),
                         "mean_tic": tic.mean().item()}
        print(f"{name}: mean MIC {mic.mean():.3f}, mean TIC {tic.mean():.1f} "
              f"({mic_points} images x {mic_samples} samples, "
              f"{time.perf_counter() - t0:.1f} s)")
    glue("ch01_mic_vae", mic_res["VAE"]["mean_mic"], ".2f")
    glue("ch01_mic_wae", mic_res["WAE"]["mean_mic"], ".2f")
    glue("ch01_tic_vae", mic_res["VAE"]["mean_tic"], ".0f")
    glue("ch01_tic_wae", mic_res["WAE"]["mean_tic"], ".0f")
    # the VAE's dimensions whose KL is small: how much they tell about the image
    vae1_kl = np.array(sweep[one]["kl_per_dim"])
    quiet = vae1_kl < 0.1
    mic_vae = np.array(mic_res["VAE"]["mic"])
    glue("ch01_quiet_dims", int(quiet.sum()))
    glue("ch01_quiet_mic", mic_vae[quiet].mean() if quiet.any() else float("nan"),
         ".2f")
    glue("ch01_loud_mic", mic_vae[~quiet].mean() if (~quiet).any() else float("nan"),
         ".2f")
    glue("ch01_wae_min_mic", min(mic_res["WAE"]["mic"]), ".2f")
    glue("ch01_mic_points", mic_points)
    glue("ch01_mic_samples", mic_samples)
    glue("ch01_wae_rec", wae_test["rec"], ".0f")
    glue("ch01_wae_mmd", wae_test["reg"], ".3f")
    fig, axes = subplots(2, max_cols=1, aspect=0.3)
    for ax, key in zip(axes, ("mic", "tic")):
        for off, name in ((-0.2, "VAE"), (0.2, "WAE")):
            ax.bar(np.arange(latent_dim) + off, mic_res[name][key], width=0.4,
                   label=name)
        ax.set(xlabel="latent dimension $j$", ylabel=f"{key.upper()}(index, $z_j$)")
        integer_ticks(ax, "x")
    legend_above(fig, axes[0])
    save_figure(fig, out_dir, "mic_tic")
    plt.show()
    if not smoke:
        assert mic_res["WAE"]["mean_mic"] > mic_res["VAE"]["mean_mic"], (
            "paper's ordering VAE < WAE not found")


# %% [markdown]
# **Beside the paper.** HEBAE's Fig. 2 shows, as pictures without a table of numbers, a nearly
# diagonal covariance for the VAE, visible off-diagonal structure for the WAE, and MIC/TIC between
# index and latents lower for the VAE than for the WAE. In this run the mean absolute off-diagonal
# correlation is {glue:text}`ch01_corr_vae` (VAE) against {glue:text}`ch01_corr_wae` (WAE), the
# mean MIC {glue:text}`ch01_mic_vae` against {glue:text}`ch01_mic_wae` and the mean TIC
# {glue:text}`ch01_tic_vae` against {glue:text}`ch01_tic_wae` ({glue:text}`ch01_mic_points` test
# images x {glue:text}`ch01_mic_samples` samples); the MIC ordering is asserted above at default
# and full scale. The VAE's MIC splits by the KL of the dimension: its
# {glue:text}`ch01_quiet_dims` dimensions with KL below 0.1 nats score {glue:text}`ch01_quiet_mic`
# on average, the others {glue:text}`ch01_loud_mic`: the low-KL dimensions carry almost nothing
# about which image they encode. The WAE has no noise at all, so every coordinate depends on the
# index (its lowest MIC is {glue:text}`ch01_wae_min_mic`); what it pays is correlated codes whose
# aggregate fits the prior less well: with $\lambda = 1$ its MMD term
# ({glue:text}`ch01_wae_mmd`) is small against {glue:text}`ch01_wae_rec` nats of reconstruction,
# and its prior samples below are worse than the VAE's (HEBAE's code uses $\lambda = 10$ for the
# WAE's samples; [chapter 2](02_hebae.ipynb) uses that).
#
# The table puts the headline numbers beside the paper (which reports them only as figures) and
# beside the recorded full-scale run: 100 epochs on all 60,000 training images, each model of
# the sweep one point of `vaelab.lab.sweep` (`-p run vae1` ... `-p run wae`).

# %%
if not point_mode:
    FULL = {"epochs": 100, "train_size": 60_000, "valid_size": 0}
    records = load_records("01_vae_collapse", where=FULL)
    by_run = {r["results"].get("run"): r for r in records if r.get("point") != "gather"}
    gathered = next((r for r in records if r.get("point") == "gather"), None)
    one_rec = by_run.get(f"vae{one + 1}")  # the VAE closest to lambda = 1
    one_row = one_rec["results"]["sweep"][0] if one_rec else {}
    def full_mic(name, key):  # the point's own record, else the gather's
        rec = by_run.get(key)
        if rec and "code_stats" in rec["results"]:
            return rec["results"]["code_stats"]["mean_mic"]
        return ((gathered or {}).get("results", {}).get("mic_tic", {})
                .get(name, {}).get("mean_mic"))

    fig2 = "HEBAE Fig. 2: picture only"
    metrics = [
        Metric(f"test ELBO at lambda = {sweep[one]['lam']:.3g} (nats)", None,
               "HEBAE Fig. 1a: curves only", one_row.get("elbo"), sweep[one]["elbo"],
               digits=1),
        Metric(f"active units at lambda = {sweep[one]['lam']:.3g}", None,
               "not reported", one_row.get("active_units"),
               sweep[one]["active_units"], digits=0),
        Metric("mean MIC, VAE", None, fig2, full_mic("VAE", f"vae{one + 1}"),
               mic_res["VAE"]["mean_mic"]),
        Metric("mean MIC, WAE", None, fig2, full_mic("WAE", "wae"),
               mic_res["WAE"]["mean_mic"]),
    ]
    scale = "smoke" if smoke else f"{epochs} epochs, {len(data.train):,} images"
    display(comparison_table(metrics, gathered or one_rec, scale)
            .style.hide(axis="index"))
    if by_run:  # the recorded sweep, one row per finished point
        display(pd.DataFrame([{
            "lambda": f"{r['results']['sweep'][0]['lam']:.3g}",
            "test ELBO": r["results"]["sweep"][0]["elbo"],
            "KL": r["results"]["sweep"][0]["kl"],
            "active units": r["results"]["sweep"][0]["active_units"],
            "I(n; z)": r["results"]["sweep"][0]["mutual_info"],
            "wall time (min)": r["wall_s"] / 60, "commit": r["git"]["commit"][:10]}
            for r in sorted(by_run.values(), key=lambda r: r["point"])
            if r["results"]["sweep"]]).style.hide(axis="index").format(precision=2))
    command = record_command("01_vae_collapse", {"run": run_names}, FULL, gather=True)
    if not records:
        print(no_record_note(command))
    elif len(by_run) < len(run_names) or gathered is None:
        print(f"Recorded so far: {len(by_run)} of {len(run_names)} points"
              f"{'' if gathered else ' and no gather record'}. The same command "
              f"finishes the rest (finished points are skipped): {command}")

# %% [markdown]
# ## 8. Pictures: reconstructions, samples, a latent traversal
#
# Rows: test images, VAE reconstructions, WAE reconstructions; then decoded prior samples of each model;
# then a traversal of the VAE's and the WAE's most active latent dimension from -3 to 3, the other
# coordinates fixed at the code of one test image.

# %%
if not point_mode:  # a sweep point (run != 'all') trains one model and draws nothing
    x_show = data.test.batch(torch.arange(10, device=dev))
    gs = torch.Generator(dev).manual_seed(seed + 1)
    with torch.no_grad():
        rows = [("test images", x_show),
                ("VAE reconstructions", vae1.reconstruct(x_show)),
                ("WAE reconstructions", wae.reconstruct(x_show)),
                ("VAE samples", vae1.sample(10, generator=gs)),
                ("WAE samples", wae.sample(10, generator=gs))]
        steps = torch.linspace(-3, 3, 10, device=dev)
        for name, model, zz in (("VAE", vae1, z_vae), ("WAE", wae, z_wae)):
            j = int(zz.var(0).argmax())
            base = posterior_stats(model, data.test.subset(1))[0].repeat(10, 1)
            base[:, j] = steps
            rows.append((f"{name} traversal of dimension {j}", model.mean_image(base)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.15 * len(rows)))
    for ax, (title, imgs) in zip(axes, rows):
        show_images(imgs, nrow=10, ax=ax, title=title)
    save_figure(fig, out_dir, "pictures")
    plt.show()


# %% [markdown]
# ## The record of this run
#
# This execution took {glue:text}`ch01_runtime_min` minutes; its numbers are in
# `out_dir/results.json` with the scale and the device.

# %%
runtime = time.perf_counter() - t_start
results = {
    "scale": "smoke" if smoke else {"epochs": epochs, "train_size": len(data.train),
                                    "eval_size": eval_size},
    "run": run, "gathered": gather,
    "sweep": [{k: r[k] for k in ("lam", "elbo", "rec", "kl", "active_units",
                                 "mutual_info", "marginal_kl")}
              for r in sweep],
    "kl_per_dim": {f"{r['lam']:.4g}": r["kl_per_dim"] for r in sweep},
    "wae_lam": wae_lam, "runtime_s": runtime, "device": str(dev),
}
if wae is not None:
    results["wae_test"] = wae_test
if point_mode:
    results["code_stats"] = point_stats
else:
    results.update(latent_stats=stats, mic_tic=mic_res)
save_results(out_dir, results)
glue("ch01_runtime_min", runtime / 60, ".1f")
pd.DataFrame(results["sweep"]).round(3)
