"""Chapter 02, HEBAE: Theorem 1 derived and checked, and the paper's MNIST experiments at default scale."""
import math

import numpy as np

from vaelab.lab.chapter import P, Spec, page_params
from vaelab.lab.checks import ParameterError
from vaelab.models.hebae import FORMS

TEST = "test images (MNIST has 10,000)"


def _check(v: dict) -> None:
    grid = np.logspace(math.log10(v["lam_min"]), math.log10(v["lam_max"]), v["n_lams"])
    if not np.isclose(grid, 1.0).any():
        raise ParameterError(
            f"the lambda grid (n_lams={v['n_lams']} values log-spaced from lam_min={v['lam_min']} to "
            f"lam_max={v['lam_max']}) must hold lambda = 1 (Figs. 1a and 2 use it): choose "
            "lam_min * lam_max = 1 and n_lams odd, e.g. -p lam_min 0.01 -p lam_max 100 -p n_lams 7")
    k_max = max(v["latent_dims"] + [v["sweep_dim"], v["sample_dim"]])
    P("int", min=k_max + 1, max=v["train_size"], example=128,
      note=f"HEBAE's batch covariance needs more images than the largest latent size {k_max}; every "
           "batch is full, so at most train_size").check("batch_size", v["batch_size"])
    P("int", min=1, max=min(10_000, v["train_size"]), example=200,
      note="test images, and as many training images").check("track_images", v["track_images"])


SPEC = Spec(
    name="02_hebae",
    params={
        "epochs": P("int", min=1, example=6, smoke=1),
        "train_size": P("int", min=1, max=60_000, example=10_000, smoke=600, note="MNIST's training images"),
        "latent_dims": P("int_list", min=1, example=[2, 5, 10, 20], smoke=[2, 20]),
        "sweep_dim": P("int", min=1, example=20),
        "n_lams": P("int", min=1, example=7, smoke=3),
        "lam_min": P("float", min=0, min_open=True, example=0.01, note="the KL weights are log-spaced"),
        "lam_max": P("float", min=0, min_open=True, example=100.0, note="the KL weights are log-spaced"),
        "sample_dim": P("int", min=1, example=10, smoke=20, shrink_only=False),
        "wae_lam_fig2": P("float", min=0, example=1.0),
        "wae_lam_fig4": P("float", min=0, example=10.0),
        "form": P("choice", choices=FORMS),
        "batch_size": P("int", min=1, example=128),  # its range depends on the latent sizes: _check
        "lr": P("float", min=0, min_open=True, example=1e-3),
        "lr_decay": P("float", min=0, max=1, min_open=True, example=0.995),
        "track_images": P("int", min=1, example=200, smoke=50),  # at most train_size: _check
        "track_samples": P("int", min=1, example=50, smoke=10),
        "is_images": P("int", min=1, max=10_000, example=500, note=TEST, smoke=50),
        "is_samples": P("int", min=1, example=200, smoke=20),
        "elbo_images": P("int", min=2, max=10_000, example=2_000, note=TEST, smoke=300),
        "mic_points": P("int", min=2, max=10_000, example=300, note=TEST, smoke=40),
        "mic_samples": P("int", min=1, example=10, smoke=4),
        "fid_samples": P("int", min=2, max=10_000, example=100, note=TEST, smoke=8),
        "fd_samples": P("int", min=2, max=10_000, example=2_000, note=TEST, smoke=200),
        "holes_images": P("int", min=1, max=10_000, example=2_000, note=TEST, smoke=300),
        "classifier_epochs": P("int", min=1, example=3, smoke=1),
        **page_params("runs/02_hebae"),
    },
    # the paper's settings (App. B.1) run one model per point on the study page 02b_hebae_study
    full={"full": True},
    check=_check,
    study="02b_hebae_study",
)
