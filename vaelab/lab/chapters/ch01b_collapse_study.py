"""Chapter 01's study page (01b): the lambda sweep of chapter 01 at HEBAE App. B.1's settings, one model
per execution (a sweep point).

``run=vae<i>`` trains the VAE with the i-th of ``N_LAMS`` KL weights log-spaced in [``LAM_MIN``,
``LAM_MAX``] (chapter 01's default grid: 0.01, 0.0464, 0.215, 1, 4.64, 21.5, 100), ``run=wae`` the WAE-MMD
with weight ``wae_lam``. The points recorded before this page existed were executions of
``book/01_vae_collapse.ipynb`` with the same ``run`` values and parameters; their records stay in
``reference/01_vae_collapse/`` under the name of the page that made them, and
``vaelab.lab.records.FORMER_PAGES`` lets the study's loader read them with its own.
"""
from vaelab.lab.chapter import P, Spec, page_params
from vaelab.lab.checks import ParameterError

# the grid of KL weights that names the points; chapter 01's defaults (n_lams, lam_min, lam_max)
N_LAMS, LAM_MIN, LAM_MAX = 7, 0.01, 100.0
RUNS = tuple(f"vae{i}" for i in range(1, N_LAMS + 1)) + ("wae",)
# HEBAE App. B.1: 100 epochs on all 60,000 training images; the other defaults are the paper's
FULL = {"epochs": 100, "train_size": 60_000, "valid_size": 0}


def lambdas(n_lams: int = N_LAMS, lam_min: float = LAM_MIN, lam_max: float = LAM_MAX):
    """The KL weights of the sweep, log-spaced in [lam_min, lam_max] (numpy, as chapter 01 trains them)."""
    import math

    import numpy as np
    return np.logspace(math.log10(lam_min), math.log10(lam_max), n_lams)


def check_sizes(p: dict) -> None:
    """The checks across MNIST's sizes and the batch that chapter 01 and its study share."""
    from vaelab.lab.checks import check_int
    check_int("train_size", p["train_size"], min=1, max=60_000 - p["valid_size"], example=10_000,
              note="MNIST's 60,000 training images less valid_size")
    if p["batch_size"] > p["train_size"]:
        raise ParameterError(f"batch_size must be <= train_size, got batch_size={p['batch_size']}, "
                             f"train_size={p['train_size']}: pass -p batch_size 128")
    if p["train_size"] % p["batch_size"] == 1:
        raise ParameterError(f"train_size={p['train_size']} leaves a last batch of one image, which the "
                             f"WAE's MMD cannot use (batch_size={p['batch_size']}): pass -p train_size "
                             f"{p['train_size'] - 1}")


SPEC = Spec(
    name="01b_collapse_study",
    params={
        "run": P("choice", choices=RUNS),
        "gather": P("bool"),
        "epochs": P("int", min=1, example=100, smoke=1),
        "train_size": P("int", min=1, max=60_000, example=60_000, smoke=1_000,
                        note="MNIST's 60,000 training images less valid_size"),
        "valid_size": P("int", min=0, max=59_999, example=0),
        "latent_dim": P("int", min=1, example=20),
        "wae_lam": P("float", min=0, example=1.0),
        "batch_size": P("int", min=1, example=128),
        "lr": P("float", min=0, min_open=True, example=1e-3),
        "lr_decay": P("float", min=0, max=1, min_open=True, example=0.995),
        "eval_size": P("int", min=2, max=10_000, example=2_000, smoke=500, note="test images"),
        "mic_points": P("int", min=2, max=10_000, example=300, smoke=60, note="test images"),
        "mic_samples": P("int", min=1, example=10),
        **page_params("runs/01b_collapse_study"),
    },
    full=FULL,
    check=check_sizes,
    derive=lambda p: {"lams": lambdas()},
)
