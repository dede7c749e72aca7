"""Chapter 01, over-regularisation, posterior collapse and WAE-MMD: a sweep over the KL weight on MNIST
with HEBAE App. B.1's MLP, and the WAE beside the VAE at weight 1.

The full-scale runs are points of the study page ``01b_collapse_study`` (its spec holds the grid and
the full settings); the lesson reads their records.
"""
from vaelab.lab.chapter import P, Spec, page_params
from vaelab.lab.checks import ParameterError
from vaelab.lab.chapters.ch01b_collapse_study import FULL, check_sizes, lambdas


def _check(p: dict) -> None:
    check_sizes(p)
    if p["lam_min"] > p["lam_max"]:
        raise ParameterError(f"lam_min must be <= lam_max, got lam_min={p['lam_min']}, "
                             f"lam_max={p['lam_max']}: pass -p lam_min 0.01 -p lam_max 100")


SPEC = Spec(
    name="01_vae_collapse",
    params={
        "epochs": P("int", min=1, example=20, smoke=1),
        "train_size": P("int", min=1, max=60_000, example=10_000, smoke=1_000,
                        note="MNIST's 60,000 training images less valid_size"),
        "valid_size": P("int", min=0, max=59_999, example=10_000),
        "latent_dim": P("int", min=1, example=20),
        "n_lams": P("int", min=1, example=7),
        "lam_min": P("float", min=0, min_open=True, example=0.01, note="the KL weights are log-spaced"),
        "lam_max": P("float", min=0, min_open=True, example=100.0, note="the KL weights are log-spaced"),
        "wae_lam": P("float", min=0, example=1.0),
        "batch_size": P("int", min=1, example=128),
        "lr": P("float", min=0, min_open=True, example=1e-3),
        "lr_decay": P("float", min=0, max=1, min_open=True, example=0.995),
        "eval_size": P("int", min=2, max=10_000, example=2_000, smoke=500, note="test images"),
        "mic_points": P("int", min=2, max=10_000, example=300, smoke=60, note="test images"),
        "mic_samples": P("int", min=1, example=10),
        **page_params("runs/01_vae_collapse"),
    },
    full=FULL,  # the lesson at the study's settings trains every model in one execution
    check=_check,
    derive=lambda p: {"lams": lambdas(p["n_lams"], p["lam_min"], p["lam_max"])},
    study="01b_collapse_study",
)
