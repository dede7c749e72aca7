"""Chapter 01's study page (01b): the lambda sweep of chapter 01 at HEBAE App. B.1's settings, one model
per execution (a sweep point).

``run=vae<i>`` trains the VAE with the i-th of chapter 01's ``N_LAMS`` KL weights log-spaced in
[``LAM_MIN``, ``LAM_MAX``] (its default grid: 0.01, 0.0464, 0.215, 1, 4.64, 21.5, 100), ``run=wae`` the
WAE-MMD with weight ``wae_lam``. The points recorded before this page existed were executions of
``book/01_vae_collapse.ipynb`` with the same ``run`` values and parameters; their records stay in
``reference/01_vae_collapse/`` under the name of the page that made them, and
``vaelab.lab.records.FORMER_PAGES`` lets the study's loader read them with its own.

The grid, the full settings, the checks across sizes and the parameters the study shares with the
lesson are chapter 01's (``vaelab.lab.chapters.ch01_vae_collapse``).
"""
from vaelab.lab.chapter import P, Spec, page_params
from vaelab.lab.chapters.ch01_vae_collapse import FULL, LATENT_DIM, N_LAMS, SHARED, check_sizes, lambdas

# the study's points, named by the grid of KL weights
RUNS = tuple(f"vae{i}" for i in range(1, N_LAMS + 1)) + ("wae",)

SPEC = Spec(
    name="01b_collapse_study",
    params={
        "run": P("choice", choices=RUNS),
        "gather": P("bool"),
        "epochs": P("int", min=1, example=100, smoke=1),
        "train_size": P("int", min=1, max=60_000, example=60_000, smoke=1_000,
                        note="MNIST's 60,000 training images less valid_size"),
        "valid_size": P("int", min=0, max=59_999, example=0),
        "latent_dim": LATENT_DIM,
        **SHARED,
        **page_params("runs/01b_collapse_study"),
    },
    full=FULL,
    check=check_sizes,
    derive=lambda p: {"lams": lambdas()},
)
