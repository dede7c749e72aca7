"""Chapter 03's study page: one model of the VampPrior paper's Tables 1-3 per execution, at its settings."""
from vaelab.experiments.vamp_runs import RUNS
from vaelab.lab.chapter import P, Spec, page_params
from vaelab.lab.chapters.ch03_vampprior import FULL, SHARED, check_n_pseudo

SPEC = Spec(
    name="03b_vampprior_study",
    params={
        "run": P("choice", choices=RUNS),
        "epochs": P("int", min=1, example=2000, smoke=1),
        "warmup_epochs": P("int", min=1, example=100, smoke=1),
        "patience": P("int", min=0, example=50, note="0: no early stop"),
        "train_size": P("int", min=1, max=50_000, example=50_000, smoke=600,
                        note="MNIST's 60,000 training images less 10,000 for validation"),
        "n_pseudo": P("int", example=500, smoke=20),  # its range depends on train_size: check_n_pseudo
        **SHARED,
        "ll_images": P("int", min=1, max=10_000, example=10_000, smoke=20, note="MNIST has 10,000 test images"),
        **page_params("runs/03b_vampprior_study"),
    },
    full=FULL,  # the records of the one-level pair were made with exactly these (as chapter 03's points)
    check=check_n_pseudo,
)
