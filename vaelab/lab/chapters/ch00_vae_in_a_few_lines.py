"""Chapter 00, a VAE in a few lines: HEBAE App. B.1's MLP VAE on MNIST, written by hand (``hand_steps`` steps
of its own training loop), then trained with vaelab."""
from vaelab.lab.chapter import P, Spec, page_params

SPEC = Spec(
    name="00_vae_in_a_few_lines",
    params={
        "epochs": P("int", min=1, example=10, smoke=1),
        "train_size": P("int", min=1, max=50_000, example=50_000, smoke=2_000,
                        note="MNIST's 60,000 training images less 10,000 for validation"),
        "latent_dim": P("int", min=1, example=20),
        "batch_size": P("int", min=1, example=128),
        "lr": P("float", min=0, min_open=True, example=1e-3),
        "lr_decay": P("float", min=0, max=1, min_open=True, example=0.995),
        **page_params("runs/00_vae_in_a_few_lines"),
        "hand_steps": P("int", min=1, example=300, smoke=20),
    },
    full={"epochs": 100},  # HEBAE App. B.1: 100 epochs; the other defaults are the paper's
)
