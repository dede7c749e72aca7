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
# # The collapse study: chapter 1's sweep at the paper's settings
#
# {doc}`Chapter 1 <01_vae_collapse>` trains a sweep of VAEs over the KL weight $\lambda$, and a WAE, at a
# scale of minutes. This page trains one of those models per execution at the settings of HEBAE's App. B.1
# {cite:p}`cheng2020hebae`: 100 epochs on all 60,000 training images, batch 128, Adam $10^{-3}$ decayed by
# 0.995 per epoch, the MLP encoder 784-784-800-$2k$ and decoder $k$-800-800-784, $k = 20$. It measures
# what chapter 1 measures for that model (the test ELBO and its terms, the active units, the KL per
# dimension, ELBO surgery, the codes' covariance and their MIC with the image index) and writes the
# numbers to `out_dir/results.json`, which `vaelab.lab.records` turns into a record. The points:
#
# * `run=vae1` ... `run=vae7`: the VAE with the 1st ... 7th KL weight of 0.01, 0.0464, 0.215, 1, 4.64,
#   21.5, 100 (chapter 1's default grid, log-spaced);
# * `run=wae`: the WAE-MMD with weight `wae_lam` (1, as in HEBAE's Fig. 2).
#
# A sweep runs each point as its own execution of this page (about 30 minutes per point on one CPU
# core), then a gather execution (`gather=True`, set by `--gather`) that trains nothing and tabulates
# every finished point; the records follow:
#
# ```bash
# python -m vaelab.lab.sweep book/01b_collapse_study.ipynb \
#     --grid run=vae1,vae2,vae3,vae4,vae5,vae6,vae7,wae \
#     -p epochs 100 -p train_size 60000 -p valid_size 0 --out runs/full/01b --gather
# python -m vaelab.lab.records runs/full/01b
# ```
#
# The eight points recorded so far ran before this page existed, as executions of chapter 1 itself with
# the same `run` values and parameters; their records keep the name of the page that made them
# (`reference/01_vae_collapse/`), and the records loader reads them as this study's
# (`vaelab.lab.records.FORMER_PAGES`). The book build runs one small point (its numbers mean nothing)
# so that every cell is checked, and tabulates the recorded sweep.

# %% tags=["parameters"]
# Parameters (papermill: -p name value). The study: -p epochs 100 -p train_size 60000
# -p valid_size 0, one execution per run (the sweep above).
run = "vae4"           # vae1 ... vae7 (the KL weights 0.01 ... 100) or wae
gather = False         # True: train nothing, tabulate the finished points below out_dir
epochs = 2             # the study: 100
train_size = 2_000     # training images; the study: all 60,000
valid_size = 0         # held out of the training images, unused
latent_dim = 20
wae_lam = 1.0          # the WAE's MMD weight (HEBAE Fig. 2: 1)
batch_size = 128
lr = 1e-3
lr_decay = 0.995       # per epoch, HEBAE App. B.1
eval_size = 2_000      # test images for ELBO surgery, covariances and active units
mic_points = 300       # MIC/TIC: test images
mic_samples = 10       # MIC/TIC: posterior samples per image
seed = 0
device = "auto"
data_root = None
out_dir = "runs/01b_collapse_study"
resume = True

# %%
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

import vaelab
from vaelab.lab.chapter import setup

ch = setup(globals(), "01b_collapse_study")  # checks every parameter; smoke scale (CI)

# %%
import json
import math
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display

from vaelab.evaluation.diagnostics import (active_units, elbo_surgery, kl_per_dim,
                                           latent_cov_corr, mean_abs_offdiag,
                                           mic_tic_index, posterior_samples,
                                           posterior_stats)
from vaelab.lab.chapters.ch01b_collapse_study import RUNS
from vaelab.lab.prose import count_text, glue
from vaelab.models.wae import mlp_wae
from vaelab.objectives.schedules import Constant
from vaelab.training.train import evaluate, exponential_lr

dev = ch.device

# %% [markdown]
# ## The model of this execution
#
# Chapter 1's training call and its measurements, for the one model `run` names (nothing is trained
# when `gather=True`). A run continues from its checkpoint in `out_dir` when it is executed again.

# %%
def vae_numbers(model, lam, data, evalset):
    """Chapter 1's sweep row of a trained VAE and its KL per dimension."""
    test = evaluate(model, data.test)
    mu_e, lv_e = posterior_stats(model, evalset)
    n_active, a_u = active_units(mu_e)
    dead = a_u <= 0.01
    surgery = elbo_surgery(mu_e, lv_e, n_samples=4,
                           generator=torch.Generator(dev).manual_seed(seed))
    row = {"lam": float(lam), "elbo": -(test["rec"] + test["reg"]), "rec": test["rec"],
           "kl": test["reg"], "active_units": n_active,
           "mutual_info": surgery["mutual_info"], "marginal_kl": surgery["marginal_kl"]}
    return row, kl_per_dim(mu_e, lv_e).tolist()


def code_stats(model, data, evalset):
    """Chapter 1's section 7 for one model: off-diagonal covariance and correlation of
    one code per test image, MIC and TIC between the image index and each latent."""
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


# %%
results = {"run": run, "gathered": gather, "wae_lam": wae_lam, "sweep": [],
           "kl_per_dim": {}}
if not gather:
    data = vaelab.load_dataset("mnist", root=data_root, device=dev,
                               train_size=train_size, valid_size=valid_size, seed=seed)
    evalset = data.test.subset(eval_size)
    is_wae = run == "wae"
    lam = wae_lam if is_wae else lams[int(run[3:]) - 1]
    torch.manual_seed(seed)
    model = (mlp_wae if is_wae else vaelab.mlp_vae)(latent_dim=latent_dim).to(dev)
    torch.manual_seed(seed)
    name = f"wae_lam{wae_lam:g}" if is_wae else f"vae_lam{lam:.4g}"  # chapter 1's names
    vaelab.fit(model, data.train, epochs=epochs, batch_size=batch_size, lr=lr,
               lr_factor=exponential_lr(lr_decay), schedule=Constant(float(lam)),
               out_dir=f"{out_dir}/{name}", resume=resume, seed=seed)
    if is_wae:
        results["wae_test"] = evaluate(model, data.test)
    else:
        row, kl_dims = vae_numbers(model, lam, data, evalset)
        results["sweep"], results["kl_per_dim"] = [row], {f"{lam:.4g}": kl_dims}
    results["code_stats"] = code_stats(model, data, evalset)
    results["scale"] = "smoke" if ch.smoke else {
        "epochs": epochs, "train_size": len(data.train), "eval_size": eval_size}


# %% [markdown]
# ## The sweep
#
# One row per point: this execution's model, or, in the gather execution, every finished point below
# `out_dir`; below it the recorded full-scale runs. For a VAE the regulariser is its KL and the ELBO the
# true one whatever $\lambda$ it was trained with; for the WAE the regulariser is the MMD$^2$ of the test
# batches and there is no ELBO.

# %%
def point_row(name, res, hours=None):
    """One table row from a point's results."""
    row = {"run": name, "λ": None, "reconstruction": None, "KL or MMD²": None,
           "test ELBO": None, "active units": None,
           "mean MIC": res.get("code_stats", {}).get("mean_mic"), "hours": hours}
    if res.get("sweep"):
        s = res["sweep"][0]
        row.update({"λ": f"{s['lam']:.3g}", "reconstruction": s["rec"],
                    "KL or MMD²": s["kl"], "test ELBO": s["elbo"],
                    "active units": s["active_units"]})
    elif "wae_test" in res:
        row.update({"λ": f"{res['wae_lam']:g}", "KL or MMD²": res["wae_test"]["reg"],
                    "reconstruction": res["wae_test"]["rec"]})
    return row


def show(rows, caption):
    frame = pd.DataFrame(rows)
    numbers = [c for c in frame.columns if c not in ("run", "λ")]
    display(frame.style.hide(axis="index").set_caption(caption)
            .format({"reconstruction": "{:.2f}", "KL or MMD²": "{:.3f}",
                     "test ELBO": "{:.2f}", "active units": "{:.0f}",
                     "mean MIC": "{:.3f}", "hours": "{:.2f}"}, na_rep="–")
            .set_properties(subset=numbers, **{"text-align": "right"})
            .set_table_styles([{"selector": "th, td", "props": "padding: 0.2em 0.5em;"},
                               {"selector": "caption",
                                "props": "caption-side: top; text-align: left;"}]))


# %%
if gather:  # the sweep's points: out_dir/<point>/results.json of each finished point
    done = sorted(p.parent for p in Path(out_dir).glob("*/done.json"))
    points = {d.name: json.loads((d / "results.json").read_text()) for d in done}
    assert points, f"no finished point below {out_dir}: run the sweep's points first"
    results = {"gathered": True, "points": points}
    show([point_row(res.get("run", name), res) for name, res in points.items()],
         f"The finished points below out_dir: {len(points)}.")
else:
    plural = "s" if epochs != 1 else ""
    scale = ("smoke scale" if ch.smoke
             else f"{epochs} epoch{plural} on {len(data.train):,} images")
    show([point_row(run, results)], f"This execution: {run}, {scale}.")
records = [r for r in ch.records() if r.get("point") != "gather"]
recorded = {r["results"]["run"]: r["results"] for r in records}
if records:
    show([point_row(r["results"]["run"], r["results"], r["wall_s"] / 3600)
          for r in sorted(records, key=lambda r: r["results"]["run"])],
         "The recorded full-scale runs (hours: the wall time of each run).")
glue("ch01b_recorded", f"{count_text(len(recorded), len(RUNS))} points")
glue("ch01b_full_units", ", ".join(str(recorded[n]["sweep"][0]["active_units"])
                                   if n in recorded else "–" for n in RUNS[:-1]))


def recorded_mic(key):
    mic = recorded.get(key, {}).get("code_stats", {}).get("mean_mic")
    return "not recorded" if mic is None else f"{mic:.2f}"


one = RUNS[min(range(len(lams)), key=lambda i: abs(math.log(lams[i])))]  # lambda = 1
glue("ch01b_mic_vae", recorded_mic(one))
glue("ch01b_mic_wae", recorded_mic("wae"))

# %% [markdown]
# The records hold, besides these numbers, the KL of every latent dimension, the MIC and TIC of every
# dimension and each run's provenance (command, commit, machine); {doc}`chapter 1 <01_vae_collapse>`
# draws them beside its own models.

# %%
ch.finish(results);

# %% [markdown]
# ## Summary
#
# Recorded at the paper's settings: {glue:text}`ch01b_recorded` (the table above). Over the weights
# 0.01 to 100 the VAEs keep {glue:text}`ch01b_full_units` of their 20 units active, and the mean MIC
# between image index and code is {glue:text}`ch01b_mic_vae` for the VAE at $\lambda = 1$ against
# {glue:text}`ch01b_mic_wae` for the WAE (HEBAE's Fig. 2c: the VAE's lower). {doc}`Chapter 1
# <01_vae_collapse>` discusses these numbers. This execution took {glue:text}`ch01b_runtime_min` min on
# {glue:text}`ch01b_machine`.
