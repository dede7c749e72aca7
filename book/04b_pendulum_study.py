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
# # The pendulum study: does REWO's Table 1 advantage reproduce?
#
# {cite:t}`klushyn2019learning` report in Table 1 that a VHP trained with REWO lays the pendulum's
# images out on a circle ordered by angle with an absolute angle error of 0.054 rad, an order of
# magnitude below GECO (0.53), the plain objective (0.49) and linear warm-up (0.20 over 20 epochs,
# 0.31 over 200). {doc}`Chapter 4 <04_geco_rewo>` derives the methods; at its default scale (a few
# minutes of training) every method scores about the same and the seed decides. This page is the
# study that settles the claim: the paper's model and settings (Table 3: four $4\times256$ ReLU
# MLPs, two latent dimensions, $K = 16$ importance samples in the prior, Adam $10^{-4}$,
# $\kappa = 0.02$, $\nu = 5$, $\tau = 3$, the defaults of
# `vaelab.experiments.pendulum_runs.PendulumSettings`), the paper's length (tens of thousands of
# iterations: its Fig. 11 needed 27,500 iterations before the plain objective learned a
# representation) and several seeds per method, with both angle scores of chapter 4.
#
# **One run per execution, or all of them.** The page trains the runs named by its parameters
# (`method`, `seed`, `seeds`, `obs_sigma`) in `out_dir`, one directory per run, each checkpointed
# every epoch and resumed when run again. The study runs each (method, seed, sigma) as its own
# execution of this page through `vaelab.lab.sweep` (the command is printed below), and a last
# execution with `gather=True` reads every run's `result.json` below `out_dir` and draws the tables
# and figures without training. The book build runs the page at a small default scale (a few
# hundred iterations per run, meaningless for the claim) so that every cell is checked; the
# recorded study fills the sections from "Table 1 from the recorded study" on.
#
# **The likelihood scale.** The paper says only that the decoder is Gaussian and calls the
# constraint's C "the reconstruction-error-related term". Here C is the per-pixel mean squared
# error in every run, so $\kappa = 0.02$ is a per-pixel RMSE, and the decoder's fixed $\sigma$
# (`obs_sigma`) sets how strongly the reconstruction term weighs against the KL term in the trained
# objective: with $\sigma = 0.02$ one unit of MSE costs $1/(2\sigma^2) = 1250$ nats per pixel, with
# $\sigma = 1$ only $1/2$. These are two different experiments. The paper's own figures tell which
# one it ran: the plain objective ($\beta = 1$) stays collapsed for about 27,500 iterations
# (Fig. 11), REWO's $\beta$ first falls and then settles (Fig. 2).

# %% tags=["parameters"]
# Parameters (papermill: -p name value). Default: a small check of every cell (minutes
# on 2 CPU cores; numbers meaningless for the claim). The study's settings are the
# spec's (printed below), one execution per point through vaelab.lab.sweep.
method = "all"      # one of vaelab.experiments.pendulum_runs.METHODS, or "all"
seed = 0            # first seed
seeds = 1           # seeds seed, seed + 1, ...
obs_sigma = 1.0     # the Gaussian decoder's fixed sigma (the likelihood scale)
iterations = 300    # training steps per run, rounded up to whole epochs
width = 64          # hidden units per layer
depth = 2           # hidden layers per MLP
zeta_samples = 16   # K of the VHP's importance-weighted bound
lr = 1e-4           # Adam
batch_size = 64     # not in the paper: our choice
kappa = 0.02        # per-pixel RMSE tolerance
nu = 5.0            # step size of the multiplier updates
tau = 3.0           # REWO's tau
gather = False      # True: train nothing, draw every result.json found below out_dir
device = "auto"
data_root = None
out_dir = "runs/04b_pendulum_study"
resume = True

# %%
# Colab: install vaelab (the package this book is built on) when it is missing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vaelab @ git+https://github.com/vaelab/vaelab"], check=True)

from vaelab.lab.chapter import setup

ch = setup(globals(), "04b_pendulum_study")  # checks every parameter; smoke scale (CI)

# %%
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import vaelab
from vaelab.experiments.pendulum_runs import (METHODS, PAPER_TABLE1, PendulumSettings,
                                              light_result, train_pendulum_run)
from vaelab.lab.plots import legend_above, save_figure
from vaelab.lab.prose import command_text, count_text, glue, glue_figure
from vaelab.lab.records import load_records, record_command
from vaelab.lab.tables import table

# one style per method in every figure; REWO wide and pale, so that the methods that
# coincide with it in a short run (App. B.1, App. B.4) stay visible on top of it
STYLE = {m: {"color": f"C{i}", "lw": 1.0} for i, m in enumerate(METHODS)}
STYLE["rewo"].update(lw=3.5, alpha=0.45)
STYLE["rewo_b1"].update(ls="--")
STYLE["rewo_elbo"].update(ls=":", lw=1.5)
settings = PendulumSettings(
    iterations=iterations, batch_size=batch_size, lr=lr, width=width, depth=depth,
    zeta_samples=zeta_samples, obs_sigma=obs_sigma, kappa=kappa, nu=nu, tau=tau,
    snapshot_iterations=tuple(sorted({max(1, iterations // 10), iterations // 2,
                                      iterations})))
STUDY_GRID = {"method": list(METHODS), "seed": range(5), "obs_sigma": [1.0, 0.02]}
print("The study (finished points are skipped; the last execution gathers):\n"
      + command_text(record_command("04b_pendulum_study", STUDY_GRID,
                                    {"seeds": 1, **ch.spec.full}, out="runs/full/04b",
                                    gather=True)))

# %% [markdown]
# ## The runs of this execution
#
# Each run trains the Table 3 model with one method (`vaelab.experiments.pendulum_runs`): REWO
# (Algorithm 1), REWO with App. B.1's update, GECO, the plain objective, linear warm-up over 20 and
# 200 epochs, and App. B.4's control (REWO with the ELBO, $K = 1$, in the prior's second layer).
# A run trains whole epochs, so `iterations` is rounded up to a whole number of epochs
# ({glue:text}`ch04b_iterations` here). The angle scores are computed on the 1,500 test images'
# posterior means: the polar-angle score of chapter 4 (0 for a perfect circle of codes, about
# $\pi/2$ without angle information) and App. B.3 as written (at least 0.864 for any full circle,
# $\pi/2$ without information).

# %%
if not gather:
    pend = vaelab.load_dataset("pendulum", root=data_root, device=ch.device,
                               valid_size=1500, seed=0)
    names = list(METHODS) if method == "all" else [method]
    todo = [(m, s) for m in names for s in range(seed, seed + seeds)]
    for i, (m, s) in enumerate(todo, 1):
        res = train_pendulum_run(m, s, pend.train, pend.test, out_dir, settings,
                                 resume=resume)
        print(f"{i}/{len(todo)} {m}, seed {s}, sigma {obs_sigma:g}: angle error "
              f"{res['angle_error']:.3f} rad (B.3 {res['b3_error']:.3f}), "
              f"final beta {res['final_beta']:.2g}, KL {res['final_train_kl']:.2f}")
    n_train = len(pend.train)
    n_iter = settings.epochs(n_train) * settings.steps_per_epoch(n_train)
    glue("ch04b_iterations", f"{iterations:,} become {n_iter:,} iterations")
else:
    glue("ch04b_iterations", "whatever each gathered run was trained with")

# %% [markdown]
# Every `result.json` below `out_dir` (this execution's runs, or all the sweep's points when
# gathering), grouped by decoder sigma and method: the mean and standard deviation of the polar
# score over the seeds, App. B.3's score as written, and the run's end state. At the default scale
# this is a check that the pipeline runs, not evidence about the claim; the figures of this section
# ({numref}`fig-ch04b-traces` to {numref}`fig-ch04b-interpolation`) show the same runs.

# %%
result_files = sorted(Path(out_dir).rglob("result.json"))
results = [json.loads(p.read_text()) for p in result_files]
assert results, f"no result.json below {out_dir}: train runs first (gather=False)"
run_dirs = {(r["settings"]["obs_sigma"], r["method"], r["seed"]): p.parent
            for p, r in zip(result_files, results)}
by_key = {(r["settings"]["obs_sigma"], r["method"], r["seed"]): r for r in results}


def method_order(key):
    return key[0], list(METHODS).index(key[1])


def sd(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


table1 = []
for sigma, m in sorted({k[:2] for k in by_key}, key=method_order):
    sel = [by_key[k] for k in sorted(by_key) if k[:2] == (sigma, m)]
    pol = np.array([r["angle_error"] for r in sel])
    table1.append({"sigma": f"{sigma:g}", "method": METHODS[m], "seeds": len(sel),
                   "iterations": min(r["iterations"] for r in sel),
                   "polar mean": pol.mean(), "polar s.d.": sd(pol),
                   "B.3 mean": np.mean([r["b3_error"] for r in sel]),
                   "final beta": np.median([r["final_beta"] for r in sel]),
                   "final MSE": np.median([r["final_train_mse"] for r in sel]),
                   "final KL": np.median([r["final_train_kl"] for r in sel])})
display(table(pd.DataFrame(table1), "This execution's runs: angle error (rad), and the "
              "median final beta, training MSE and KL bound (nats)",
              {"iterations": "{:,}", "polar mean": "{:.3f}", "polar s.d.": "{:.3f}",
               "B.3 mean": "{:.3f}", "final beta": "{:.2g}", "final MSE": "{:.1e}",
               "final KL": "{:.2f}"}, left=["method"]))
build_mean = {}  # this execution's mean per method at sigma = 1, for the results page
for m in ("rewo_b1", "rewo_elbo"):
    here = [r["angle_error"] for k, r in by_key.items() if k[:2] == (1.0, m)]
    build_mean[m] = (f"{np.mean(here):.2f} ({len(here)} seed{'s' * (len(here) > 1)})"
                     if here else "not run in this execution")
glue("ch04b_build_rewo_b1", build_mean["rewo_b1"])
glue("ch04b_build_rewo_elbo", build_mean["rewo_elbo"])

# %%
firsts = {k[:2]: by_key[k] for k in sorted(by_key, key=lambda k: k[2], reverse=True)}
firsts = dict(sorted(firsts.items(), key=lambda kv: method_order(kv[0])))  # lowest seed
sigmas = sorted({k[0] for k in firsts})
fig, axes = plt.subplots(3, len(sigmas), figsize=(7, 6.5), squeeze=False, sharex=True)
for (sigma, m), r in firsts.items():
    j = sigmas.index(sigma)
    it = np.arange(len(r["beta_trace"])) * r["trace_every"]
    beta = np.asarray(r["beta_trace"], dtype=float)
    axes[0, j].semilogy(it, np.where(beta > 0, beta, np.nan), label=METHODS[m],
                        **STYLE[m])
    axes[1, j].semilogy(it, r["mse_trace"], **STYLE[m])
    axes[2, j].plot(it, r["kl_trace"], **STYLE[m])
for j, sigma in enumerate(sigmas):
    axes[1, j].axhline(kappa**2, color="k", ls="--", lw=0.8)
    axes[0, j].set_title(f"decoder sigma = {sigma:g}")
    axes[2, j].set_xlabel("iteration")
axes[0, 0].set_ylabel("beta")
axes[1, 0].set_ylabel("train MSE per pixel")
axes[2, 0].set_ylabel("KL bound (nats)")
legend_above(fig, axes[0, 0], ncol=3, fontsize=7)
save_figure(fig, ch.out_dir, "traces")
glue_figure("ch04b_fig_traces", fig)
scale_note = ("the runs gathered below out_dir" if gather else
              f"this execution's runs of {iterations:,} iterations (rounded up to "
              "whole epochs), a check of the code and meaningless for the claim")
glue("ch04b_scale_note", scale_note)

# %% [markdown]
# ```{glue:figure} ch04b_fig_traces
# :name: fig-ch04b-traces
#
# $\beta$ (log scale), the per-pixel training MSE against $\kappa^2$ (dashed) and the KL bound
# against iterations, for the lowest seed of each method: {glue:text}`ch04b_scale_note`. The
# recorded study's traces are in {numref}`fig-ch04b-recorded-traces`.
# ```

# %%
theta = vaelab.load_dataset("pendulum", root=data_root, device="cpu", valid_size=1500,
                            seed=0).test.targets.numpy()
snaps = []
for (sigma, m), r in firsts.items():
    files = sorted(run_dirs[sigma, m, r["seed"]].glob("snapshot_*.pt"))
    if files:
        snaps.append((r, torch.load(files[-1], weights_only=True)))
ncol = min(4, max(1, len(snaps)))
nrow = max(1, math.ceil(len(snaps) / ncol))
fig, axes = plt.subplots(nrow, ncol, figsize=(7.0, 1.9 * nrow), squeeze=False)
for ax, (r, snap) in zip(axes.flat, snaps):
    mu = snap["mu"].numpy()
    ax.scatter(mu[:, 0], mu[:, 1], c=theta[: len(mu)], cmap="twilight", s=3)
    ax.set_title(f"{r['method']}, sigma {r['settings']['obs_sigma']:g}\n"
                 f"{snap['iteration']:,} it, error {r['angle_error']:.2f}", fontsize=7)
    ax.set(xticks=[], yticks=[])
for ax in list(axes.flat)[len(snaps):]:
    ax.axis("off")
save_figure(fig, ch.out_dir, "codes")
glue_figure("ch04b_fig_codes", fig)

# %% [markdown]
# ```{glue:figure} ch04b_fig_codes
# :name: fig-ch04b-codes
#
# The test images' posterior means at the end of training, coloured by the pendulum's angle, for
# the lowest seed of each method: {glue:text}`ch04b_scale_note`. A good representation is a closed
# curve along which the colour turns once; the recorded study's codes are in
# {numref}`fig-ch04b-recorded-codes`.
# ```
#
# Each run ends with the paper's interpolation test (`vaelab.evaluation.interpolation`): between
# pairs of test images at least 90 degrees apart, the A* path through the 18-nearest-neighbour graph
# of 1,000 prior samples against the straight line in latent space, each decoded at 16 evenly spaced
# codes. The largest angle jump between consecutive decoded images measures smoothness (an evenly
# turning pendulum jumps by the "even turn"); the RMS distance to the nearest true pendulum image
# measures realism.

# %%
interp_rows = []
for k, r in sorted(by_key.items(), key=lambda kv: method_order(kv[0])):
    if "interpolation" in r:
        graph, line = r["interpolation"]["graph"], r["interpolation"]["line"]
        interp_rows.append({"sigma": f"{k[0]:g}", "method": METHODS[k[1]], "seed": k[2],
                            "graph: jump (deg)": math.degrees(graph["max_jump"]),
                            "line: jump (deg)": math.degrees(line["max_jump"]),
                            "even turn (deg)": math.degrees(graph["even_turn"]),
                            "graph: RMSE": graph["rmse"], "line: RMSE": line["rmse"]})
display(table(pd.DataFrame(interp_rows), "Interpolation test of this execution's runs: "
              "largest angle jump (mean over pairs) and RMS distance to a real image",
              {"graph: RMSE": "{:.3f}", "line: RMSE": "{:.3f}"}, precision=0,
              left=["method"]))
with_interp = [r for r in firsts.values() if "interpolation" in r]
ncol = min(4, max(1, len(with_interp)))
nrow = max(1, math.ceil(len(with_interp) / ncol))
fig, axes = plt.subplots(nrow, ncol, figsize=(7.0, 1.9 * nrow), squeeze=False,
                         sharey=True)
for ax, r in zip(axes.flat, with_interp):
    fp = r["interpolation"]["first_pair"]
    for kind, colour in (("graph", "C0"), ("line", "C3")):
        ax.plot(np.degrees(np.unwrap(fp[kind])), "o-", ms=2, color=colour,
                label="A* on the graph" if kind == "graph" else "straight line")
    ax.set_title(f"{r['method']}, sigma {r['settings']['obs_sigma']:g}", fontsize=7)
    ax.set_xlabel("step along the path", fontsize=7)
for ax in axes[:, 0]:
    ax.set_ylabel("decoded angle (deg)", fontsize=7)
for ax in list(axes.flat)[len(with_interp):]:
    ax.axis("off")
legend_above(fig, axes[0, 0], ncol=2, fontsize=7)
save_figure(fig, ch.out_dir, "interpolation")
glue_figure("ch04b_fig_interpolation", fig)

# %% [markdown]
# ```{glue:figure} ch04b_fig_interpolation
# :name: fig-ch04b-interpolation
#
# The angle each decoded image shows along the two paths between the first pair of test images,
# for the lowest seed of each method: {glue:text}`ch04b_scale_note`.
# ```

# %% [markdown]
# ## Table 1 from the recorded study
#
# The study's runs at the paper's settings (50,000 iterations, Table 3's networks) are recorded in
# `reference/04b_pendulum_study/`, one record per (method, seed, decoder sigma), each with its
# command, commit, machine and wall time. The first table puts their mean polar-angle error at
# $\sigma = 1$ beside Table 1 (which gives one number per method, without a spread); the second lists
# every recorded run.

# %%
from vaelab.lab.compare import Metric, comparison_table

study_records = [r for r in load_records("04b_pendulum_study", where=ch.spec.full)
                 if r.get("point") != "gather"]
recorded = {}  # (sigma, method, seed) -> the run's numbers
for rec in study_records:
    for run in rec["results"]["runs"]:
        recorded[run["settings"]["obs_sigma"], run["method"], run["seed"]] = run


def recorded_errors(sigma, m, score="angle_error"):
    return np.array([v[score] for k, v in sorted(recorded.items())
                     if k[:2] == (sigma, m)])


def mean_se(values):
    if len(values) == 0:
        return None, None
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else None
    return float(values.mean()), se


metrics = []
for m in METHODS:
    full, full_se = mean_se(recorded_errors(1.0, m))
    here = [r["angle_error"] for k, r in by_key.items() if k[:2] == (1.0, m)]
    metrics.append(Metric(METHODS[m], PAPER_TABLE1.get(m),
                          "Table 1" * (m in PAPER_TABLE1), full,
                          float(np.mean(here)) if here else None, digits=3,
                          full_se=full_se))
at_1 = [r for r in study_records
        if r["results"]["runs"][0]["settings"]["obs_sigma"] == 1.0]
cmp = comparison_table(metrics, at_1).rename(columns={"metric": "method",
                                                   "this build": "this execution"})
cmp.insert(3, "seeds", [len(recorded_errors(1.0, m)) for m in METHODS])
display(table(cmp, "Table 1 at decoder sigma = 1: polar angle error (rad), mean ± s.e. "
              "over the recorded seeds", left=["verdict"]))

# %%
summary = []  # per (sigma, method): both scores over the recorded seeds
for sigma, m in sorted({k[:2] for k in recorded}, key=method_order):
    polar, b3 = recorded_errors(sigma, m), recorded_errors(sigma, m, "b3_error")
    summary.append({"sigma": f"{sigma:g}", "method": METHODS[m], "seeds": len(polar),
                    "polar mean": polar.mean(), "s.d.": sd(polar),
                    "per seed": "  ".join(f"{v:.2f}" for v in polar),
                    "B.3 mean": b3.mean(), "Table 1": PAPER_TABLE1.get(m, math.nan)})
if summary:
    display(table(pd.DataFrame(summary), "The recorded runs (50,000 iterations): angle "
                  "error (rad) by method, mean, s.d. and each seed", precision=3,
                  left=["method"]))

# %% [markdown]
# ## Does REWO's advantage reproduce?
#
# Table 1's claim is an order of magnitude: REWO's error (0.054 rad) against 0.20-0.53 for every
# other method. The study answers it with at least five seeds per method; the verdict is computed
# from the records as they stand. {glue:text}`ch04b_verdict`

# %%
def seeds_text(n):
    return f"{n} seed{'s' * (n != 1)}"


sigma_claim, seeds_needed = 1.0, 5
STUDY_METHODS = [m for m in METHODS if m != "rewo_elbo"]  # App. B.4 is a control
rewo = recorded_errors(sigma_claim, "rewo")
others = {m: recorded_errors(sigma_claim, m) for m in ("geco", "plain", "wu20", "wu200")
          if len(recorded_errors(sigma_claim, m))}
counts = {m: len(recorded_errors(sigma_claim, m)) for m in STUDY_METHODS}
if len(rewo) == 0 or not others:
    verdict_text = ("Not settled: no recorded REWO run, or no recorded run of another "
                    f"method, at decoder sigma = {sigma_claim:g}.")
else:
    # the best other method among those with five seeds (all of them while none has)
    full_m = [m for m in others if len(others[m]) >= seeds_needed] or list(others)
    best_m = min(full_m, key=lambda m: others[m].mean())
    ratio = others[best_m].mean() / rewo.mean()
    few = [METHODS[m] for m, n in counts.items() if n < seeds_needed]
    verdict_text = (
        f"REWO's mean error is {rewo.mean():.3f} rad over {seeds_text(len(rewo))}; the "
        f"best other method, {METHODS[best_m]}, has {others[best_m].mean():.3f} rad "
        f"over {seeds_text(len(others[best_m]))}, {ratio:.1f} times REWO's (the paper: "
        f"{PAPER_TABLE1[best_m] / PAPER_TABLE1['rewo']:.1f} times).")
    if len(rewo) > 1 and len(others[best_m]) > 1:
        best = others[best_m]
        diff_se = math.hypot(rewo.std(ddof=1) / math.sqrt(len(rewo)),
                             best.std(ddof=1) / math.sqrt(len(best)))
        gap = best.mean() - rewo.mean()
        verdict_text += (f" The gap is {gap:.3f} rad, {gap / diff_se:.1f} standard "
                         "errors of the difference of the two means.")
    verdict_text += (" Not settled yet: fewer than five recorded seeds for "
                     + ", ".join(few) + "." if few else
                     " The order-of-magnitude advantage reproduces." if ratio >= 5 else
                     " The order-of-magnitude advantage does not reproduce.")

# %%
seeds_of = {m: {k[2]: v["angle_error"] for k, v in recorded.items()
                if k[:2] == (sigma_claim, m)} for m in ("rewo", "geco")}
shared = sorted(set(seeds_of["rewo"]) & set(seeds_of["geco"]))
if len(shared) > 1:  # the same seed gives both methods the same start and batches
    d = np.array([seeds_of["geco"][s] - seeds_of["rewo"][s] for s in shared])
    paired_se = d.std(ddof=1) / math.sqrt(len(d))
    rel = d.mean() / np.mean([seeds_of["geco"][s] for s in shared])
    rel_paper = 1 - PAPER_TABLE1["rewo"] / PAPER_TABLE1["geco"]
    verdict_text += (
        f" Paired by seed ({seeds_text(len(shared))} run with both), GECO's error "
        f"exceeds REWO's by {d.mean():.3f} rad on average ({d.mean() / paired_se:.1f} "
        "paired standard errors) and REWO is lower on "
        f"{count_text(int((d > 0).sum()), len(d))} seeds: REWO removes {rel:.0%} of "
        f"GECO's error, where Table 1 has it remove {rel_paper:.0%}.")
glue("ch04b_verdict", verdict_text)

# %% [markdown]
# ## Seed or method?
#
# One seed gives every method the same initial weights and the same batches, so the recorded errors
# of the seeds that every method was run with form a seeds $\times$ methods table. Its two-way
# analysis of variance (`vaelab.evaluation.seed_effects`) splits the spread into the part the seed
# accounts for, the part the method accounts for and the rest; Friedman's rank test asks whether the
# methods differ without assuming normal errors (a run either finds the ring or it does not, so the
# errors are far from normal). Each method is also compared with REWO seed by seed.
# {glue:text}`ch04b_seed_vs_method`

# %%
from vaelab.evaluation.seed_effects import friedman, paired_gap, seed_method_anova

by_seed = {m: {k[2]: v["angle_error"] for k, v in recorded.items()
               if k[:2] == (sigma_claim, m)} for m in STUDY_METHODS}
have = [m for m in STUDY_METHODS if by_seed[m]]
block_seeds = sorted(set.intersection(*(set(by_seed[m]) for m in have))) if have else []
gaps = []
for m in (m for m in have if m != "rewo"):
    both = sorted(set(by_seed["rewo"]) & set(by_seed[m]))
    if len(both) > 1:
        g = paired_gap([by_seed["rewo"][s] for s in both],
                       [by_seed[m][s] for s in both])
        gaps.append({"method": METHODS[m], "seeds shared with REWO": g.n,
                     "mean gap (rad)": g.mean, "paired s.e.": g.se,
                     "REWO lower on": f"{g.reference_lower} of {g.n}"})
if gaps:
    display(table(pd.DataFrame(gaps), f"Decoder sigma = {sigma_claim:g}: each method's "
                  "polar error minus REWO's, seed by seed", precision=3))
if len(block_seeds) >= 2 and len(have) >= 3:
    grid = np.array([[by_seed[m][s] for m in have] for s in block_seeds])
    aov, (_, fr_p) = seed_method_anova(grid), friedman(grid)
    seed_text = (
        f"Over the {len(block_seeds)} seeds that all {len(have)} methods were run with "
        f"(seeds {', '.join(map(str, block_seeds))}), the seed accounts for "
        f"{aov.seed_share:.0%} of the spread of the polar error and the method for "
        f"{aov.method_share:.0%} (F = {aov.f_method:.2f} on {aov.df_method} and "
        f"{aov.df_resid} degrees of freedom, p = {aov.p_method:.2g}; Friedman's test "
        f"p = {fr_p:.2g}). "
        + ("The seed decides more than the method." if aov.seed_share > aov.method_share
           else "The method decides more than the seed.")
        + (" Fewer than five seeds: the split is provisional."
           if len(block_seeds) < seeds_needed else ""))
else:
    seed_text = ("Not yet computed: it needs at least two seeds recorded for every "
                 f"method (seeds recorded for all {len(have)} methods so far: "
                 f"{', '.join(map(str, block_seeds)) or 'none'}).")
glue("ch04b_seed_vs_method", seed_text)

# %% [markdown]
# ## The likelihood scale, from the records
#
# Which decoder $\sigma$ did the paper train with? Its own figures are the test: the plain objective
# ($\beta = 1$) stays collapsed for about 27,500 iterations and then learns a representation (Fig. 11),
# and REWO's $\beta$ falls and settles (Fig. 2, right). The table puts the recorded runs of the first
# seed at both scales side by side: the angle error, the KL bound at the end, the first iteration
# at which the KL bound exceeded 1 nat (the end of a collapse; "not recorded" in the records made
# before that field existed), $\beta$ at the end, and the final reconstruction error against the
# constraint.
# {glue:text}`ch04b_scale_finding`

# %%
scale_rows = []
for (sigma, m, s), v in sorted(recorded.items(), key=lambda kv: method_order(kv[0])):
    if s != 0 or m not in ("plain", "rewo", "geco"):
        continue
    first = v.get("kl_first_above_1", "not recorded")
    scale_rows.append({
        "sigma": f"{sigma:g}", "method": METHODS[m], "polar error": v["angle_error"],
        "final KL (nats)": f"{v['final_train_kl']:.2g}",
        "KL > 1 nat from": "never" if first is None else (
            first if isinstance(first, str) else f"{first:,}"),
        "final beta": f"{v['final_beta']:.2g}",
        "MSE / kappa^2": v["final_train_mse"] / kappa**2,
    })
if scale_rows:
    display(table(pd.DataFrame(scale_rows), "The first seed's recorded runs at both "
                  "likelihood scales", precision=2, left=["method"]))


# %%
def plain_at(sigma):
    return recorded.get((sigma, "plain", 0))


def collapse_story(sigma):
    v = plain_at(sigma)
    if v is None:
        return f"no recorded plain-objective run at sigma = {sigma:g}"
    first = v.get("kl_first_above_1", "unknown")
    if first == "unknown":
        when = (f"its KL bound ended at {v['final_train_kl']:.2g} nats (when it "
                "first rose above 1 nat was not recorded)")
    elif first is None:
        when = "its KL bound never exceeded 1 nat in 50,000 iterations"
    else:
        when = f"its KL bound first exceeded 1 nat at iteration {first:,}"
    return f"at sigma = {sigma:g} {when} (angle error {v['angle_error']:.2f} rad)"


def long_collapse(sigma):  # collapsed for 10,000 iterations or more (the paper: 27,500)
    v = plain_at(sigma)
    if v is None or "kl_first_above_1" not in v:
        return None if v is None or v["final_train_kl"] > 1.0 else True
    first = v["kl_first_above_1"]
    return first is None or first >= 10_000


finding = ("For the plain objective, " + collapse_story(1.0) + "; "
           + collapse_story(0.02) + ". The paper's Fig. 11 shows a collapse that ends "
           "after about 27,500 iterations.")
if long_collapse(1.0) and long_collapse(0.02) is False:
    finding += (
        " Only sigma = 1 shows the paper's long collapse, so Table 1 above is run at"
        " sigma = 1; at sigma = 0.02 the plain objective needs no help from REWO, GECO"
        " or a warm-up, which Table 1 contradicts. The likelihood scale alone decides"
        " whether the plain objective collapses."
    )

# %%
first_seeds = {m: recorded.get((0.02, m, 0)) for m in ("rewo", "geco", "plain")}
if all(first_seeds.values()):
    err = {m: v["angle_error"] for m, v in first_seeds.items()}
    finding += (
        f" At sigma = 0.02 the first seeds score {err['rewo']:.3f} (REWO),"
        f" {err['geco']:.3f} (GECO) and {err['plain']:.3f} rad (plain objective):"
        f" plain / REWO = {err['plain'] / err['rewo']:.1f}, against"
        f" {PAPER_TABLE1['plain'] / PAPER_TABLE1['rewo']:.1f} in Table 1."
    )
plain_runs = [v for k, v in sorted(recorded.items())
              if k[:2] == (1.0, "plain") and "kl_first_above_1" in v]
if len(plain_runs) > 1:
    stuck = [v for v in plain_runs if v["kl_first_above_1"] is None]
    finding += (
        f" Over every recorded seed at sigma = 1 that keeps the KL trace "
        f"({len(plain_runs)}), the plain objective stayed collapsed for all 50,000 "
        f"iterations on {count_text(len(stuck), len(plain_runs))}"
        + (" (angle error "
           + ", ".join(f"{v['angle_error']:.2f}" for v in stuck) + " rad)"
           if stuck else "")
        + ". Fig. 11's collapse ends at about 27,500 iterations and Table 1 scores the "
        "plain objective 0.49, a representation learned late; "
        + ("none of the recorded collapses ends within 50,000 iterations, so this "
           "sigma reproduces the onset of the paper's collapse but not its end."
           if len(stuck) == len(plain_runs) else
           "the collapses that end here are the paper's signature.")
    )
glue("ch04b_scale_finding", finding)

# %% [markdown]
# {numref}`fig-ch04b-recorded-traces` shows the recorded traces of each method's first seed whose
# record keeps them (Fig. 2, right, and Fig. 11 are the paper's counterparts).

# %%
def first_seed_keeping(field):
    """(sigma, method) -> (seed, record) of the lowest recorded seed whose record keeps
    ``field`` (records made before a field existed lack it), in the order of METHODS."""
    found = {}
    for (sigma, m, s), v in sorted(recorded.items(), key=lambda kv: kv[0][2]):
        if v.get(field) and (sigma, m) not in found:
            found[(sigma, m)] = (s, v)
    return dict(sorted(found.items(), key=lambda kv: method_order(kv[0])))


traced = [((sigma, m, s), v)
          for (sigma, m), (s, v) in first_seed_keeping("kl_trace_coarse").items()]
if traced:
    t_sigmas = sorted({k[0] for k, _ in traced})
    fig, axes = plt.subplots(2, len(t_sigmas), figsize=(7, 4.5), squeeze=False,
                             sharex=True)
    for (sigma, m, s), v in traced:
        j = t_sigmas.index(sigma)
        it = np.arange(len(v["kl_trace_coarse"])) * v["coarse_every"]
        beta = np.asarray(v["beta_trace_coarse"], dtype=float)
        axes[0, j].semilogy(it, np.where(beta > 0, beta, np.nan), label=METHODS[m],
                            **STYLE[m])
        axes[1, j].semilogy(it, np.maximum(v["kl_trace_coarse"], 1e-6), **STYLE[m])
        axes[0, j].set_title(f"decoder sigma = {sigma:g} (recorded)")
        axes[1, j].set_xlabel("iteration")
    axes[0, 0].set_ylabel("beta")
    axes[1, 0].set_ylabel("KL bound (nats, log scale)")
    legend_above(fig, axes[0], ncol=3, fontsize=7)
    save_figure(fig, ch.out_dir, "recorded_traces")
    glue_figure("ch04b_fig_recorded_traces", fig)
glue("ch04b_traced_seeds", "seed " + ", ".join(sorted({str(k[2]) for k, _ in traced}))
     if traced else "no record keeps its traces yet")

# %% [markdown]
# ```{glue:figure} ch04b_fig_recorded_traces
# :name: fig-ch04b-recorded-traces
#
# The recorded runs at the paper's length: $\beta$ and the KL bound against iterations, one column
# per decoder $\sigma$, for the lowest seed of each method whose record keeps its traces
# ({glue:text}`ch04b_traced_seeds`; records made before the traces were kept have none). A
# warm-up's $\beta = 0$ at the start has no place on the log scale.
# ```

# %% [markdown]
# ## The recorded runs' codes and interpolation
#
# For each method, the first recorded seed whose record keeps its codes: the posterior means of 300
# test images coloured by the pendulum's angle, over as many samples of the learned prior (grey), at
# three points of training (the paper's Figs. 2 and 10-13 show the same for its runs). A good
# representation is a closed curve along which the colour turns once, with the prior's samples on it.
# The table under the figure measures the second half: the median distance from a prior sample to the
# nearest code over the median distance between neighbouring codes (`prior_hole_ratio`, the measure
# of chapter 2's holes), about 1 when the learned prior has found the curve, large when its samples
# fill the inside of the ring, where no image's code lies. The codes drawn are posterior means, but
# the prior is fitted to the aggregate posterior, which also carries each posterior's spread: where
# the posteriors are wide, a prior whose samples fall off the curve of means can still fit it. The
# second table (records from the study runs that keep the posterior's width) sets the two side by
# side.

# %%
coded = first_seed_keeping("codes_coarse")
glue("ch04b_coded_seeds", "; ".join(f"{METHODS[k[1]]}: seed {s}"
                                    for k, (s, _) in coded.items()))
if coded:
    keys = list(coded)
    ncol = max(len(coded[k][1]["codes_coarse"]) for k in keys)
    fig, axes = plt.subplots(len(keys), ncol, figsize=(7.0, 1.8 * len(keys)),
                             squeeze=False)
    for i, k in enumerate(keys):
        s, v = coded[k]
        for j, snap in enumerate(v["codes_coarse"]):
            mu, zp = np.array(snap["mu"]), np.array(snap["prior"])
            axes[i, j].scatter(zp[:, 0], zp[:, 1], s=2, c="0.75", lw=0)
            axes[i, j].scatter(mu[:, 0], mu[:, 1], s=3, c=theta[: len(mu)],
                               cmap="twilight", lw=0)
            axes[i, j].set_title(f"{snap['iteration']:,} iterations", fontsize=7)
        label = METHODS[k[1]].replace(" (", "\n(").replace(", E", ",\nE")
        axes[i, 0].set_ylabel(label + f"\nsigma {k[0]:g}, seed {s}", fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[i, len(v["codes_coarse"]):]:
            ax.axis("off")
    save_figure(fig, ch.out_dir, "recorded_codes")
    glue_figure("ch04b_fig_recorded_codes", fig)

# %% [markdown]
# ```{glue:figure} ch04b_fig_recorded_codes
# :name: fig-ch04b-recorded-codes
#
# The recorded runs' codes: posterior means of 300 test images (colour: the pendulum's angle) and as
# many samples of the learned prior (grey) at three points of training, for the first recorded
# seed of each method whose record keeps them ({glue:text}`ch04b_coded_seeds`).
# ```

# %%
from vaelab.evaluation.diagnostics import prior_hole_ratio

if coded:

    def hole_ratio(snap):
        """prior_hole_ratio, or NaN where the recorded codes (3 decimals) of a
        collapsed run coincide, so that there is no code spacing to divide by."""
        mu = torch.tensor(snap["mu"])
        d = torch.cdist(mu, mu).fill_diagonal_(float("inf")).min(1).values
        if d.median() == 0:
            return float("nan")
        return prior_hole_ratio(torch.tensor(snap["prior"]), mu)

    hole_rows = [
        {"sigma": f"{k[0]:g}", "method": METHODS[k[1]], "seed": coded[k][0],
         **{f"{snap['iteration']:,} it": hole_ratio(snap)
            for snap in coded[k][1]["codes_coarse"]}}
        for k in keys
    ]
    display(table(pd.DataFrame(hole_rows), "Prior sample to nearest code, relative to "
                  "the code spacing (1: the prior's samples lie on the codes; empty: "
                  "the recorded codes of a collapsed run coincide at the record's 3 "
                  "decimals)",
                  precision=1, left=["method"]))
    blur_rows = []  # the posterior's width beside the prior samples' distance
    for k in keys:
        last = coded[k][1]["codes_coarse"][-1]
        if "posterior_sd_median" in last:
            gap = torch.cdist(torch.tensor(last["prior"]), torch.tensor(last["mu"]))
            blur_rows.append({
                "method": METHODS[k[1]], "seed": coded[k][0],
                "prior sample to nearest code": gap.min(1).values.median().item(),
                "posterior s.d.": last["posterior_sd_median"]})
    if blur_rows:
        display(table(pd.DataFrame(blur_rows), "At the last snapshot, in latent units "
                      f"(medians over {len(last['mu'])} images or samples)",
                      precision=3))

# %% [markdown]
# Every recorded run ends with the paper's interpolation test (Sec. 4.1, Figs. 3-4; described
# above, with this execution's runs): the largest angle jump between consecutive decoded images
# along the A* path through the prior's graph and along the straight line, mean over the ten pairs
# of a run, then mean and s.d. over seeds. An evenly turning pendulum jumps by the "even turn".
# {glue:text}`ch04b_interp_finding`

# %%
def spread(x):
    return f"{x.mean():.0f} ± {sd(x):.0f}" if len(x) > 1 else f"{x.mean():.0f}"


interp_rec = []
jumps = {}  # (sigma, method) -> per-seed largest graph jumps (degrees)
for sigma, m in sorted({k[:2] for k in recorded}, key=method_order):
    its = [v["interpolation"] for k, v in sorted(recorded.items())
           if k[:2] == (sigma, m) and "interpolation" in v]
    if not its:
        continue
    g = np.degrees([i["graph"]["max_jump"] for i in its])
    line = np.degrees([i["line"]["max_jump"] for i in its])
    turn = np.array([i["graph"]["even_turn"] for i in its])
    jumps[(sigma, m)] = g
    interp_rec.append({
        "sigma": f"{sigma:g}", "method": METHODS[m], "seeds": len(its),
        "graph: max jump": spread(g),
        "per seed": " ".join(f"{x:.0f}" for x in g),
        "line: max jump": spread(line),
        "even turn": f"{np.degrees(turn).mean():.0f}",
    })
if interp_rec:
    display(table(pd.DataFrame(interp_rec), "Recorded interpolation test: largest "
                  "angle jump (degrees), mean ± s.d. over seeds", left=["method"]))
pair = [jumps.get((1.0, m)) for m in ("rewo", "geco")]
if all(p is not None for p in pair):
    smooth = {m: int((j < 30).sum()) for m, j in zip(("rewo", "geco"), pair)}
    interp_finding = (
        f"At sigma = 1 the largest jump along the graph averages {pair[0].mean():.0f} "
        f"degrees for REWO ({seeds_text(len(pair[0]))}) and {pair[1].mean():.0f} for "
        f"GECO ({seeds_text(len(pair[1]))}). Without a jump above 30 degrees, as the "
        "paper's Figs. 3-4 show for its REWO model, interpolate "
        f"{count_text(smooth['rewo'], len(pair[0]))} REWO seeds and "
        f"{count_text(smooth['geco'], len(pair[1]))} GECO seeds; a jump above 90 "
        "degrees means two neighbouring points of the path decode to pendulums far "
        "apart in angle."
    )
else:
    interp_finding = "No recorded interpolation test of REWO and GECO at sigma = 1."
glue("ch04b_interp_finding", interp_finding)

# %% [markdown]
# ## What the study settles, and what it leaves open
#
# The records isolate one factor and test one claim; the paragraph below is computed from them as they
# stand. {glue:text}`ch04b_open`
#
# Three things the paper does not say keep its 0.054 rad out of reach of a check: the batch size, the
# decoder's $\sigma$ (the section above shows that the likelihood scale changes which methods need help
# at all), and the score. App. B.3's formula as written cannot give 0.054 for codes on a full circle (its
# floor there is 0.864 rad, `vaelab.evaluation.angle`), so Table 1 was computed some other way: with a polar score
# like this page's, or on codes that cover half a circle. Table 1 also gives one number per method,
# with no spread and no count of seeds.

# %%
open_text = "No recorded REWO runs at sigma = 1 yet."
rewo_all = recorded_errors(1.0, "rewo")
if len(rewo_all):
    good = int((rewo_all < 0.1).sum())
    open_text = (
        f"Over the {len(rewo_all)} recorded REWO seeds at sigma = 1 the angle error "
        f"runs from {rewo_all.min():.3f} to {rewo_all.max():.3f} rad; {good} of them "
        f"{'is' if good == 1 else 'are'} below 0.1 rad, the region of the paper's "
        "0.054. "
    )
    geco_all = recorded_errors(1.0, "geco")
    if len(geco_all):
        spans = all(x.min() < 0.1 and x.max() > PAPER_TABLE1["geco"]
                    for x in (rewo_all, geco_all))
        open_text += (
            f"GECO's seeds run from {geco_all.min():.3f} to {geco_all.max():.3f} rad, "
            f"{int((geco_all < 0.1).sum())} below 0.1"
            + (": the seed moves either method across the whole range of Table 1 "
               "(0.054 to 0.53), so one run per method, as Table 1 reports, cannot "
               "rank them. " if spans else ". ")
        )
    bad = [math.degrees(v["interpolation"]["graph"]["max_jump"])
           for k, v in recorded.items()
           if k[:2] == (1.0, "rewo") and v["angle_error"] > 0.2
           and "interpolation" in v]
    if bad:
        open_text += (
            f"The REWO seeds above 0.2 rad with an interpolation test ({len(bad)}) "
            "have a largest jump along the graph of "
            + ", ".join(f"{j:.0f}" for j in bad) + " degrees"
            + (": their codes are not one ring ordered by angle, which is what the "
               "polar score penalises." if min(bad) > 60 else ".")
        )

# %%
from vaelab.evaluation.angle import arcsin_regression

ring_theta = np.linspace(0, 2 * math.pi, 20_000, endpoint=False)
B3_RING_FLOOR = arcsin_regression(  # App. B.3 as written on a perfect full ring
    np.stack([np.cos(ring_theta), np.sin(ring_theta)], 1), ring_theta).error
assert abs(B3_RING_FLOOR - 0.275 * math.pi) < 1e-3  # vaelab.evaluation.angle: 0.275 pi
collapsed = [(k[2], v) for k, v in sorted(recorded.items())
             if k[:2] == (1.0, "plain") and v["final_train_kl"] < 0.01]
if collapsed:
    open_text += (
        " The collapsed plain-objective runs (final KL below 0.01 nats; seeds "
        + ", ".join(str(s) for s, _ in collapsed) + ") still score "
        + ", ".join(f"{v['angle_error']:.2f}" for _, v in collapsed)
        + " rad on the polar score, below the pi/2 of codes without information: "
        "both scores are blind to scale, so the posterior means' faint trace of the "
        "angle counts."
    )
    below = [s for s, v in collapsed if v["b3_error"] < B3_RING_FLOOR]
    if below:
        open_text += (
            f" B.3 as written scores the collapsed seed{'s' * (len(below) > 1)} "
            + ", ".join(map(str, below))
            + " below its floor for a perfect ring "
            f"({B3_RING_FLOOR:.3f} rad): it can rank a collapsed model above a "
            "perfect one, one more reason this page ranks by the polar score."
        )
glue("ch04b_open", open_text)

# %% [markdown]
# ## The record of this execution
#
# `out_dir/results.json` holds every run found below `out_dir` (its traces thinned to every 1,000th
# iteration, with the codes at its snapshots: `vaelab.experiments.pendulum_runs.light_result`) and
# the table of this execution, so that `python -m vaelab.lab.records` can turn a sweep's points into
# committed records. This execution took {glue:text}`ch04b_runtime_min` min on
# {glue:text}`ch04b_machine`.

# %%
light = [light_result(r, run_dirs[k]) for k, r in by_key.items()]
ch.finish({"runs": light, "table1": table1, "gathered": gather,
           "execution_s": time.perf_counter() - ch.t_start});

# %% [markdown]
# ## Summary
#
# The study trains Klushyn et al.'s Table 3 model with every method of Table 1 (and App. B.1's
# update and App. B.4's control) at the paper's length, one run per (method, seed, decoder
# $\sigma$), and reads the recorded runs. **Table 1's claim:** {glue:text}`ch04b_verdict`
# **Seed or method:** {glue:text}`ch04b_seed_vs_method` **The likelihood scale:** the decoder's
# $\sigma$, which the paper does not give, decides whether the plain objective collapses at all;
# the paper's long collapse appears only at $\sigma = 1$, the scale of the study's Table 1.
# **Open:** the batch size, $\sigma$ and the score that gave Table 1's 0.054 are not in the paper,
# and App. B.3's score as written cannot produce it for a full circle of codes. This execution's
# own runs ({glue:text}`ch04b_scale_note`) only check the code path.
