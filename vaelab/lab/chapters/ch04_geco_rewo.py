"""Chapter 04, GECO vs REWO: Klushyn et al.'s (2019) pendulum (Table 1), graph interpolation and
Fashion-MNIST (Table 2). ``full`` holds the paper's settings (Table 3) for this chapter; Table 1 at
full scale is the pendulum study's (``ch04b_pendulum_study``, whose settings are
``vaelab.experiments.pendulum_runs.PendulumSettings``)."""
from vaelab.lab import checks as C
from vaelab.lab.chapter import POSITIVE, P, Spec, page_params


def _check(v: dict) -> None:
    C.check_int("graph_k", v["graph_k"], min=1, max=v["graph_samples"] - 1, example=18,
                note="neighbours among graph_samples prior samples")


SPEC = Spec(
    name="04_geco_rewo",
    params={
        "epochs": P("int", min=1, example=8, smoke=1),
        "full_epochs": P("int", min=1, example=400),
        "seeds": P("int", min=1, example=3, smoke=2),
        "width": P("int", min=1, example=128, smoke=32),
        "depth": P("int", min=1, example=3, smoke=2),
        "zeta_samples": P("int", min=1, example=16, note="K of the VHP's importance-weighted bound",
                          smoke=4),
        "obs_sigma": P("float", **POSITIVE, example=0.02),
        "kappa": P("float", **POSITIVE, example=0.03),
        "nu": P("float", **POSITIVE, example=100.0),
        "tau": P("float", **POSITIVE, example=3.0),
        "alpha": P("float", min=0, max=1, max_open=True, example=0.99),
        "lr": P("float", **POSITIVE, example=1e-3),
        "batch_size": P("int", min=1, example=64),
        "pend_train_size": P("int", min=1, max=12_000, none_ok=True, example=12_000,
                             note="the pendulum's 15,000 images less 3,000 held out", smoke=640),
        "graph_samples": P("int", min=2, example=1000, smoke=200),
        "graph_k": P("int", min=1, example=18),
        "interp_pairs": P("int", min=1, example=10, smoke=2),
        "interp_points": P("int", min=2, example=16, smoke=8),
        "fm_train_size": P("int", min=1, max=50_000, example=10_000,
                           note="Fashion-MNIST's 60,000 training images less 10,000", smoke=500),
        "fm_epochs": P("int", min=1, example=10, smoke=1),
        "fm_latent": P("int", min=1, example=16),
        "fm_width": P("int", min=2, example=256, note="the prior's networks have fm_width // 2 units",
                      smoke=64),
        "fm_depth": P("int", min=1, example=2, smoke=1),
        "fm_kappa2": P("float", **POSITIVE, example=250.0),
        "fm_nu": P("float", **POSITIVE, example=0.01),
        "fm_ll_samples": P("int", min=1, example=2000, smoke=20),
        "fm_ll_images": P("int", min=1, example=100, smoke=10),
        **page_params("runs/04_geco_rewo"),
    },
    # Klushyn et al. (2019), Table 3: networks of four 256-unit layers, Adam 1e-4, kappa = 0.02, nu = 5;
    # Fashion-MNIST: 512-unit layers, S = 5,000 importance samples on all 10,000 test images. The
    # training lengths (400 and 200 epochs) and the five seeds are ours: the paper gives none.
    full={"epochs": 400, "width": 256, "depth": 4, "lr": 1e-4, "kappa": 0.02, "nu": 5.0, "seeds": 5,
          "fm_epochs": 200, "fm_train_size": 50_000, "fm_width": 512, "fm_ll_samples": 5000,
          "fm_ll_images": 10_000},
    check=_check,
)
