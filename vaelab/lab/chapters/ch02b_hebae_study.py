"""Chapter 02's study page: HEBAE's MNIST figures at the paper's settings, one point per execution."""
from vaelab.experiments.hebae_runs import STUDY_POINTS
from vaelab.lab.chapter import P, Spec, page_params

SPEC = Spec(
    name="02b_hebae_study",
    params={
        "run": P("choice_list", choices=("all", *STUDY_POINTS)),
        "full": P("bool"),
        "gather": P("bool"),
        "epochs": P("int", min=1, example=2, smoke=1),
        "train_size": P("int", min=129, max=60_000, example=2_000, smoke=600,
                        note="MNIST's training images; every batch of 128 is full"),
        "eval_images": P("int", min=2, max=10_000, example=500, smoke=100,
                         note="test images (MNIST has 10,000)"),
        "is_samples": P("int", min=1, example=50, smoke=10),
        **page_params("runs/02b_hebae_study", seed=False),
    },
    # the paper's settings are vaelab.experiments.hebae_runs.HebaeSettings(); full=True selects them
    full={"full": True},
    derive=lambda v: {"runs": list(STUDY_POINTS) if "all" in v["run"] else v["run"]},
)
