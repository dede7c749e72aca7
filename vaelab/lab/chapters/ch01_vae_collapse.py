"""Chapter 01, over-regularisation, posterior collapse and WAE-MMD: a sweep over the KL weight on MNIST
with HEBAE App. B.1's MLP, and the WAE beside the VAE at weight 1.

The full-scale runs are points of the study page ``01b_collapse_study``, whose spec takes the grid, the
full settings, the checks across sizes and the parameters the two pages share from here (as chapter 03's
study takes chapter 03's); the lesson reads their records.
"""
from vaelab.lab.chapter import P, Spec, page_params
from vaelab.lab.checks import ParameterError

# the grid of KL weights that names the study's points; chapter 01's defaults (n_lams, lam_min, lam_max)
N_LAMS, LAM_MIN, LAM_MAX = 7, 0.01, 100.0
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


def _check(p: dict) -> None:
    check_sizes(p)
    if p["lam_min"] > p["lam_max"]:
        raise ParameterError(f"lam_min must be <= lam_max, got lam_min={p['lam_min']}, "
                             f"lam_max={p['lam_max']}: pass -p lam_min 0.01 -p lam_max 100")


# the parameters chapter 01 and its study page share (the model, its training and its evaluation): the
# latent size, then, after the lesson's grid of weights, the rest in the order of both parameters cells
LATENT_DIM = P("int", min=1, example=20)
SHARED = {
    "wae_lam": P("float", min=0, example=1.0),
    "batch_size": P("int", min=1, example=128),
    "lr": P("float", min=0, min_open=True, example=1e-3),
    "lr_decay": P("float", min=0, max=1, min_open=True, example=0.995),
    "eval_size": P("int", min=2, max=10_000, example=2_000, smoke=500, note="test images"),
    "mic_points": P("int", min=2, max=10_000, example=300, smoke=60, note="test images"),
    "mic_samples": P("int", min=1, example=10),
}

SPEC = Spec(
    name="01_vae_collapse",
    params={
        "epochs": P("int", min=1, example=20, smoke=1),
        "train_size": P("int", min=1, max=60_000, example=10_000, smoke=1_000,
                        note="MNIST's 60,000 training images less valid_size"),
        "valid_size": P("int", min=0, max=59_999, example=10_000),
        "latent_dim": LATENT_DIM,
        "n_lams": P("int", min=1, example=7),
        "lam_min": P("float", min=0, min_open=True, example=0.01, note="the KL weights are log-spaced"),
        "lam_max": P("float", min=0, min_open=True, example=100.0, note="the KL weights are log-spaced"),
        **SHARED,
        **page_params("runs/01_vae_collapse"),
    },
    full=FULL,  # the lesson at the study's settings trains every model in one execution
    check=_check,
    derive=lambda p: {"lams": lambdas(p["n_lams"], p["lam_min"], p["lam_max"])},
    study="01b_collapse_study",
)
