"""Chapter 03, the VampPrior: the lesson at its default scale; the paper's runs are its study page's
(``ch03b_vampprior_study``), whose records the lesson reads."""
from vaelab.experiments.vamp_runs import VampSettings
from vaelab.lab import checks as C
from vaelab.lab.chapter import P, Spec, page_params

# The paper's schedule as papermill parameters, from VampSettings' defaults (Tomczak & Welling 2018, Sec. 5.1:
# up to 2,000 epochs, 100 warm-up epochs, early stopping with a look-ahead of 50 epochs, 50,000 training
# images, K = 500; all 10,000 test images). The one-level pair's records were made with exactly these.
FULL = {name: getattr(VampSettings(), name)
        for name in ("epochs", "warmup_epochs", "patience", "train_size", "n_pseudo", "ll_images")}


def check_n_pseudo(v: dict) -> None:
    """K <= the training images: the 'VampPrior data' model takes its pseudo-inputs from them."""
    C.check_int("n_pseudo", v["n_pseudo"], min=1, max=v["train_size"], example=100,
                note="one HVAE takes its pseudo-inputs from the training images, so at most train_size")


# the parameters chapter 03 and its study page share (the networks, the optimiser, the log-likelihood's
# samples: the paper's), in the order of both parameters cells
SHARED = {
    "latent_dim": P("int", min=1, example=40),
    "hidden": P("int", min=1, example=300, smoke=64),
    "batch_size": P("int", min=1, example=100),
    "lr": P("float", min=0, min_open=True, example=5e-4),
    "ll_samples": P("int", min=1, example=5000, smoke=50),
}

SPEC = Spec(
    name="03_vampprior",
    params={
        "epochs": P("int", min=1, example=12, smoke=1),
        "warmup_epochs": P("int", min=1, example=4, smoke=1),
        "patience": P("int", min=0, example=0, note="0: no early stop"),
        "train_size": P("int", min=1, max=50_000, example=10_000, smoke=600,
                        note="MNIST's 60,000 training images less 10,000 for validation"),
        "n_pseudo": P("int", example=100, smoke=20),  # its range depends on train_size: check_n_pseudo
        "k_grid": P("int_list", min=1, example=[1, 10, 100], smoke=(1, 20)),
        **SHARED,
        "ll_images": P("int", min=1, example=200, smoke=20),
        **page_params("runs/03_vampprior"),
    },
    full=FULL,
    check=check_n_pseudo,
    derive=lambda v: {"k_grid": tuple(v["k_grid"])},
    study="03b_vampprior_study",
)
