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
# # The HEBAE study: the paper's MNIST figures at its settings
#
# {doc}`Chapter 2 <02_hebae>` derives HEBAE and runs the paper's MNIST experiments at a scale a laptop
# affords (a few epochs on part of the training set), where its verdicts are mixed. This page runs them at
# the paper's settings (App. B.1 of {cite:t}`cheng2020hebae`: 100 epochs on all 60,000 training images,
# batch 128, Adam $10^{-3}$ decayed by 0.995 per epoch, the MLP encoder 784-784-800-$2k$ and decoder
# $k$-800-800-784, grey pixels as Bernoulli means) and measures each claim the paper makes about them:
#
# * Fig. 1a, top: HEBAE "converges faster to a higher ELBO" than the VAE at $k = 2, 5, 10, 20$ latent
#   dimensions ($\lambda = 1$);
# * Fig. 1a, bottom: HEBAE is "less sensitive" to the KL weight $\lambda$ ($k = 20$, the seven weights of
#   {doc}`chapter 1 <01_vae_collapse>`, 0.01 to 100);
# * Fig. 2: the codes' dependence on the data index (MIC) orders VAE < HEBAE < WAE ($k = 20$);
# * Fig. 4: HEBAE's samples are better than the VAE's ($k = 10$; the WAE with MMD weight 10, as the
#   official code);
# * a control: the official code's form of HEBAE beside the exact form ($k = 20$, $\lambda = 1$).
#
# Each model is one point of the study (`vaelab.experiments.hebae_runs.STUDY_POINTS`), trained and evaluated by
# `vaelab.experiments.hebae_runs.train_mnist_run`: the standard ELBO (prior $\mathcal N(0, I)$) of all 10,000 test images
# after every epoch, the final standard ELBO, the model's own objective, the importance-sampled
# log-likelihood of every test image with $S = 5{,}000$ samples (for HEBAE with the proposal
# $\mathcal N(\mu(x), \tau^2\Sigma_{pop})$ that chapter 2 argues for), the codes' covariance and MIC, samples
# and a Frechet distance in the features of a small MNIST classifier on 10,000 samples. A sweep runs each
# point as its own execution of this page and records it:
#
# ```bash
# python -m vaelab.lab.sweep book/02b_hebae_study.ipynb --grid run=vae_k20,hebae_k20,... \
#     -p full True --out runs/full/02b --num-cpus 1
# python -m vaelab.lab.records runs/full/02b
# ```
#
# The book build runs one small point (seconds; its numbers mean nothing) so that every cell is checked,
# and draws the figures from the records in `reference/02b_hebae_study/`.

# %% tags=["remove-cell"]
# Colab: install vaelab (the package this book is built on) when it is missing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vaelab @ git+https://github.com/vaelab/vaelab"], check=True)
    subprocess.run("curl -sL "
                   "https://raw.githubusercontent.com/vaelab/vaelab/main/tools/"
                   f"install_minepy.sh | bash -s {sys.executable}", shell=True,
                   check=True)

# %% tags=["parameters"]
# Parameters (papermill: -p name value). run: one point of vaelab.experiments.hebae_runs.STUDY_POINTS,
# a list of them (-p run "[vae_k20, hebae_k20]") or "all". full=True: the paper's settings (HebaeSettings()).
run = "hebae_k20"
full = False
epochs = 2              # default scale (full=False) only
train_size = 2_000
eval_images = 500       # test images for every evaluation at default scale
is_samples = 50
device = "auto"
data_root = None
out_dir = "runs/02b_hebae_study"
resume = True

# %%
import vaelab
from vaelab.lab.checks import replace_params

if vaelab.is_smoke():  # VAELAB_SMOKE=1 (CI, nbval): seconds of work, meaningless numbers
    replace_params(globals(), epochs=1, train_size=600, eval_images=100,
                          is_samples=10, out_dir=out_dir + "/smoke", resume=False)

# %% tags=["remove-input"]
from vaelab.lab.checks import check_bool, check_choice_list, check_device, check_int, check_path
from vaelab.experiments.hebae_runs import STUDY_POINTS

runs = check_choice_list("run", list(STUDY_POINTS) if run == "all" else run,
                         list(STUDY_POINTS))
full = check_bool("full", full)
epochs = check_int("epochs", epochs, min=1, example=2)
train_size = check_int("train_size", train_size, min=129, max=60_000, example=2_000,
                       note="MNIST's training images; every batch of 128 is full")
eval_images = check_int("eval_images", eval_images, min=2, max=10_000, example=500,
                        note="test images (MNIST has 10,000)")
is_samples = check_int("is_samples", is_samples, min=1, example=50)
device = check_device("device", device)
data_root = check_path("data_root", data_root, none_ok=True, example="None")
out_dir = check_path("out_dir", out_dir, example="runs/02b_hebae_study")
resume = check_bool("resume", resume)

# %%
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from vaelab.experiments.hebae_runs import HebaeSettings, train_mnist_run
from vaelab.lab.plots import book_style
from vaelab.lab.results import save_results

book_style()
dev = vaelab.get_device(device)
if full:
    settings = HebaeSettings()
else:
    settings = HebaeSettings(epochs=epochs, train_size=train_size, track_images=eval_images,
                             tau_images=min(eval_images, 200), track_samples=min(is_samples, 50),
                             is_images=eval_images, is_samples=is_samples,
                             elbo_images=eval_images, mic_points=min(eval_images, 300),
                             fd_samples=eval_images, classifier_epochs=1)
print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
      f"{'the paper' if full else 'default'} scale: {settings.epochs} epochs on "
      f"{settings.train_size:,} images")

# %% [markdown]
# ## The runs of this execution

# %%
t_start = time.perf_counter()
data = vaelab.load_dataset("mnist", root=data_root, device=dev,
                           train_size=settings.train_size, valid_size=0, seed=settings.seed)
mine = {}
for i, name in enumerate(runs, 1):
    kind, k, lam, form = STUDY_POINTS[name]
    print(f"training {name} ({i}/{len(runs)})")
    mine[name] = train_mnist_run(kind, k, lam, data, out_dir, settings, form=form,
                                 resume=resume)


def summary(name, r):
    """One table row of a run's final numbers."""
    row = {"point": name, "model": r["label"] + (" (code form)" if r["form"] == "code" else ""),
           "k": r["k"], "lambda": r["lam"], "own objective": r["test_objective"]}
    if "std_elbo" in r:
        row["standard ELBO"] = r["std_elbo"]["mean"]
        row["IS log-lik."] = r["is_ll"]["mean"]
        row["s.e."] = r["is_ll"]["se"]
        row["active units"] = r["active_units"]
    row["mean MIC"] = r["mic"]["mean_mic"]
    row["FD (classifier)"] = r["fd_classifier"]
    return row


pd.DataFrame([summary(n, r) for n, r in mine.items()]).round(2)

# %%
save_results(out_dir, {"runs": mine, "full": full, "settings": settings.__dict__,
                       "runtime_s": time.perf_counter() - t_start})
