"""Chapter 04b, the pendulum study: one (method, seed, decoder sigma) of Klushyn et al.'s Table 1 per
execution. Its full scale is ``vaelab.experiments.pendulum_runs.PendulumSettings``'s defaults (Table 3),
the one place they are written."""
from vaelab.experiments.pendulum_runs import METHODS, PendulumSettings
from vaelab.lab.chapter import POSITIVE, SEED, P, Spec, page_params

_TABLE3 = PendulumSettings()

SPEC = Spec(
    name="04b_pendulum_study",
    params={
        "method": P("choice", choices=("all", *METHODS)),
        "seed": SEED,
        "seeds": P("int", min=1, example=5),
        "obs_sigma": P("float", **POSITIVE, example=1.0),
        "iterations": P("int", min=1, example=50_000, smoke=40),
        "width": P("int", min=1, example=256, smoke=16),
        "depth": P("int", min=1, example=4, smoke=1),
        "zeta_samples": P("int", min=1, example=16, smoke=2),
        "lr": P("float", **POSITIVE, example=1e-4),
        "batch_size": P("int", min=1, max=12_000, example=64),
        "kappa": P("float", **POSITIVE, example=0.02),
        "nu": P("float", **POSITIVE, example=5.0),
        "tau": P("float", **POSITIVE, example=3.0),
        "gather": P("bool"),
        **page_params("runs/04b_pendulum_study", seed=False),
    },
    # the sweep passes -p method, -p seed, -p obs_sigma per point and -p seeds 1
    full={"iterations": _TABLE3.iterations, "width": _TABLE3.width, "depth": _TABLE3.depth},
)
