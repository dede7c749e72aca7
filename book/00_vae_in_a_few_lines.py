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
# # A VAE in a few lines
#
# This chapter trains the plain variational autoencoder of {cite:t}`kingma2014auto` on MNIST with the
# `vaelab` package and walks the whole path every later chapter takes: a derivation, a few lines that
# implement it, a numerical check that fails the notebook when the mathematics is wrong, then an
# experiment through `vaelab`, whose figures and headline numbers land in `out_dir`.
#
# The model is the one of the HEBAE paper's MNIST experiments {cite:p}`cheng2020hebae` (App. B.1): an
# encoder 784-784-800-2k, a decoder k-800-800-784, ReLU, Adam with learning rate $10^{-3}$ decayed by
# 0.995 per epoch, batch 128, grey pixel values in $[0, 1]$ treated as Bernoulli means.

# %% tags=["remove-cell"]
# Colab: install vaelab (the package this book is built on) when it is missing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vaelab @ git+https://github.com/vaelab/vaelab"], check=True)

# %% tags=["parameters"]
# Parameters (papermill: -p name value). Default scale: the book build, minutes on
# 2 CPU cores (the chapter prints its run time at the end).
epochs = 10            # full scale: 100
train_size = 50_000    # training images (50,000 remain after 10,000 validation images)
latent_dim = 20
batch_size = 128
lr = 1e-3
lr_decay = 0.995       # per epoch, HEBAE App. B.1
seed = 0
device = "auto"        # "cuda", "mps" or "cpu"
data_root = None       # None: $VAELAB_DATA or ~/.cache/vaelab
out_dir = "runs/00_vae_in_a_few_lines"
resume = True          # continue an interrupted run from out_dir/checkpoint.pt

# %%
import vaelab
from vaelab.lab.chapter import setup

ch = setup(globals(), "00_vae_in_a_few_lines")  # checks every parameter; smoke scale (CI)

# %%
import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal, kl_divergence

from vaelab.core.densities import kl_std_normal, log_bernoulli
from vaelab.lab.plots import plot_history, save_figure, show_images, subplots
from vaelab.lab.prose import glue
from vaelab.training.train import evaluate, exponential_lr

dev = ch.device

# %% [markdown]
# ## The evidence lower bound
#
# For any distribution $q(z \mid x)$ over the latent code, the log-likelihood splits into a bound and a gap:
#
# $$
# \log p(x) = \underbrace{\mathbb{E}_{q(z\mid x)}\left[\log p(x \mid z)\right]
#   - \mathrm{KL}\left(q(z \mid x)\,\|\,p(z)\right)}_{\text{ELBO}(x)}
#   + \mathrm{KL}\left(q(z \mid x)\,\|\,p(z \mid x)\right) .
# $$
#
# The last KL is non-negative, so the ELBO is a lower bound on $\log p(x)$. With
# $q(z\mid x) = \mathcal N(\mu(x), \operatorname{diag}\sigma^2(x))$ and $p(z) = \mathcal N(0, I)$, the KL has the
# closed form
#
# $$
# \mathrm{KL}\left(q(z \mid x)\,\|\,\mathcal N(0, I)\right)
#   = \frac12 \sum_{j=1}^{k} \left(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\right),
# $$
#
# and the expectation is estimated with one reparameterised sample $z = \mu + \sigma \odot \varepsilon$,
# $\varepsilon \sim \mathcal N(0, I)$, so that gradients flow through $\mu$ and $\sigma$. The decoder outputs
# Bernoulli logits $\ell(z)$ and $\log p(x \mid z) = \sum_i x_i \log s(\ell_i) + (1 - x_i) \log(1 - s(\ell_i))$
# with $s$ the logistic sigmoid. `vaelab` returns the two parts as `rec` $= -\log p(x\mid z)$ and
# `reg` $=$ KL; the training loss is `rec + weight * reg`, weight 1 for the ELBO.
#
# **Check 1.** The closed-form KL against `torch.distributions` and against a Monte Carlo average of
# $\log q(z\mid x) - \log p(z)$ over many samples.

# %%
g = torch.Generator().manual_seed(1)
mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
kl_closed = kl_std_normal(mu, logvar)
q = Normal(mu, torch.exp(0.5 * logvar))
kl_torch = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
torch.testing.assert_close(kl_closed, kl_torch)

z = q.sample((200_000,))
log_ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)
kl_mc, kl_se = log_ratio.mean(0), log_ratio.std(0) / len(z) ** 0.5
print("closed form:", kl_closed.numpy().round(4))
print("Monte Carlo:", kl_mc.numpy().round(4), "+/-", kl_se.numpy().round(4))
assert ((kl_closed - kl_mc).abs() < 4 * kl_se).all(), (
    "closed form disagrees with Monte Carlo")

# %% [markdown]
# **Check 2.** The Bernoulli log-likelihood for grey values equals the explicit sum above.

# %%
x = torch.rand(5, 784, generator=g)
logits = 3 * torch.randn(5, 784, generator=g)
p = torch.sigmoid(logits)
explicit = (x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(-1)
torch.testing.assert_close(log_bernoulli(x, logits), explicit, rtol=1e-5, atol=1e-3)

# %% [markdown]
# ## Data and model
#
# `vaelab.load_dataset` puts the images on the training device as `uint8` and splits off 10,000
# validation images from the official training set. Batches are random index permutations.

# %%
data = vaelab.load_dataset("mnist", root=data_root, device=dev, train_size=train_size,
                           seed=seed)
print(f"train {len(data.train)}, valid {len(data.valid)}, test {len(data.test)} "
      f"images, shape {data.train.shape}")
model = vaelab.mlp_vae(latent_dim=latent_dim).to(dev)
print(model)

# %% [markdown]
# **Check 3.** On one batch, the model's `rec + reg` is the negative ELBO computed independently with
# `torch.distributions` from the same encoder outputs and the same noise.

# %%
xb = data.test.batch(torch.arange(64, device=dev))
torch.manual_seed(123)
terms = model(xb)
mu_b, logvar_b = model.encode(xb)
torch.manual_seed(123)
eps = torch.randn_like(mu_b)
z_b = mu_b + torch.exp(0.5 * logvar_b) * eps
q_b = Normal(mu_b, torch.exp(0.5 * logvar_b))
# validate_args=False: x holds grey values in [0, 1], not only {0, 1}
bern = torch.distributions.Bernoulli(logits=model.decode(z_b).flatten(1),
                                     validate_args=False)
rec_ref = -bern.log_prob(xb.flatten(1)).sum(-1)
kl_ref = kl_divergence(q_b, Normal(0.0, 1.0)).sum(-1)
torch.testing.assert_close(terms["rec"], rec_ref, rtol=1e-5, atol=1e-3)
torch.testing.assert_close(terms["reg"], kl_ref, rtol=1e-5, atol=1e-4)
init = evaluate(model, data.test)
elbo_init = -(init["rec"] + init["reg"])
print(f"test ELBO before training: {elbo_init:.1f} nats")

# %% [markdown]
# ## Training
#
# `vaelab.fit` is the one training loop of the book: it records every term and the weight at every step,
# checkpoints to `out_dir` after each epoch (run the cell again after an interruption and it resumes), and
# stops with a clear message if the loss becomes NaN.

# %%
history = vaelab.fit(model, data.train, epochs=epochs, batch_size=batch_size, lr=lr,
                     lr_factor=exponential_lr(lr_decay), valid=data.valid,
                     out_dir=out_dir, resume=resume, seed=seed)
train_time = history.train_time_s  # every attempt's training, a resumed run's too
test = evaluate(model, data.test)
elbo_test = -(test["rec"] + test["reg"])
print(f"{epochs} epochs in {train_time:.0f} s; test ELBO {elbo_test:.2f} nats "
      f"(reconstruction {-test['rec']:.2f}, KL {test['reg']:.2f})")
assert elbo_test > elbo_init + 50, "training did not improve the test ELBO"
assert test["reg"] > 0
glue("ch00_epochs", epochs, "d")
glue("ch00_train_images", len(data.train), ",d")
glue("ch00_test_elbo", elbo_test, ".1f")
glue("ch00_test_rec", -test["rec"], ".1f")
glue("ch00_test_kl", test["reg"], ".1f")
glue("ch00_elbo_gain", elbo_test - elbo_init, ".0f")
glue("ch00_train_min", train_time / 60, ".1f");

# %% [markdown]
# After {glue:text}`ch00_epochs` epochs on {glue:text}`ch00_train_images` images
# ({glue:text}`ch00_train_min` min of training in this build) the test ELBO is
# {glue:text}`ch00_test_elbo` nats per image, {glue:text}`ch00_elbo_gain` nats above the untrained
# model's: an expected log-likelihood $\mathbb E_q[\log p(x\mid z)]$ of {glue:text}`ch00_test_rec` nats
# less a KL of {glue:text}`ch00_test_kl` nats, the price of the information the codes carry about their
# images.

# %%
fig, axes = subplots(2)
plot_history(history, ["rec", "valid_rec"], ax=axes[0], title="reconstruction term",
             ylabel="nats per image")
plot_history(history, ["reg", "valid_reg"], ax=axes[1], title="KL term",
             ylabel="nats per image")
save_figure(fig, out_dir, "loss_curves")
plt.show()

# %% [markdown]
# ## Reconstructions and samples
#
# Top: test images; middle: their reconstructions $\mathbb E[x \mid z = \mu(x)]$; bottom: decoded samples
# $z \sim \mathcal N(0, I)$. Samples are blurrier than reconstructions: the aggregate posterior does not
# fill the prior, the gap the later chapters are about.

# %%
x_show = data.test.batch(torch.arange(10, device=dev))
recon = model.reconstruct(x_show)
samples = model.sample(20, generator=torch.Generator(device=dev).manual_seed(seed))
fig, axes = plt.subplots(3, 1, figsize=(7, 3.6))
show_images(x_show, nrow=10, ax=axes[0], title="test images")
show_images(recon, nrow=10, ax=axes[1], title="reconstructions")
show_images(samples[:10], nrow=10, ax=axes[2], title="samples from the prior")
save_figure(fig, out_dir, "reconstructions_samples")
plt.show()

# %% [markdown]
# ## This build beside the full-scale run
#
# The numbers above come from this execution (the book builds each chapter at a scale of minutes on a
# CPU). The full scale, 100 epochs on all 50,000 training images as in the HEBAE paper's MNIST setting,
# is a recorded run (`reference/00_vae_in_a_few_lines/`, made by `vaelab.lab.sweep` and `vaelab.lab.records`
# with its command, commit and machine). The HEBAE paper plots this VAE's ELBO in Fig. 1a but gives
# no number in its text.

# %%
from vaelab.lab.compare import (Metric, comparison_table, no_record_note, provenance,
                            record_value)
from vaelab.lab.records import record_command

full_records = ch.records()
full = full_records[0] if full_records else None
paper_source = "HEBAE Fig. 1a: curves only"
metrics = [
    Metric("test ELBO (nats)", None, paper_source,
           record_value(full, "test_elbo"), elbo_test),
    Metric("test reconstruction term (nats)", None, paper_source,
           record_value(full, "test_rec"), test["rec"]),
    Metric("test KL term (nats)", None, paper_source,
           record_value(full, "test_kl"), test["reg"]),
]
scale = "smoke" if ch.smoke else f"{epochs} epochs, {len(data.train):,} images"
display(comparison_table(metrics, full, scale).style.hide(axis="index"))
# the full-scale line of the book's introduction
glue("ch00_full_summary", "not recorded yet" if full is None else
     f"recorded: test ELBO {record_value(full, 'test_elbo'):.2f} nats "
     f"({provenance(full)})")
if full is None:
    command = record_command("00_vae_in_a_few_lines", {"seed": [0]}, ch.spec.full)
    print(no_record_note(command))

# %% [markdown]
# ## The record of this run
#
# Every chapter writes its headline numbers to `out_dir/results.json`, with the scale and the machine,
# so that a papermill run leaves a machine-readable record beside its figures and checkpoint. This
# execution took {glue:text}`ch00_runtime_min` min on {glue:text}`ch00_machine`.

# %%
ch.finish({"scale": "smoke" if ch.smoke else {"epochs": epochs, "train_size": len(data.train)},
           "test_elbo": elbo_test, "test_rec": test["rec"], "test_kl": test["reg"],
           "valid_elbo": -(history.epochs["valid_rec"][-1] + history.epochs["valid_reg"][-1]),
           "train_time_s": train_time});
