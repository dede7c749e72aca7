"""The CelebA chapter: HEBAE vs VAE vs WAE by FID (HEBAE App. B.2). Its defaults *are* the paper's
scale (a GPU run), so ``full`` is empty; smoke scale runs tiny networks on a fake CelebA folder."""
from vaelab.core.config import is_smoke
from vaelab.lab.chapter import POSITIVE, P, Spec, page_params
from vaelab.lab.checks import ParameterError
from vaelab.models.conv import MODELS
from vaelab.training.train import PRECISIONS, check_precision


def _check(v: dict) -> None:
    if "hebae" in v["model"] and v["batch_size"] <= v["latent_dim"]:
        raise ParameterError(f"batch_size must be more than latent_dim={v['latent_dim']} for HEBAE (its batch "
                             f"covariance needs more images than latent dimensions), got {v['batch_size']}: "
                             "pass -p batch_size 100 -p latent_dim 64")


def _derive(v: dict) -> dict:
    """``models`` and ``lams``: the grid as lists; at smoke scale ``smoke_resume=True`` keeps ``resume``."""
    out = {"models": list(v["model"]), "lams": list(v["lam"])}
    if is_smoke() and v["smoke_resume"]:
        out["resume"] = True
    return out


SPEC = Spec(
    name="celeba",
    params={
        "model": P("choice_list", choices=tuple(MODELS)),
        "lam": P("float_list", **POSITIVE, scalar=True, example=[0.1, 1.0, 10.0], smoke=[1.0]),
        "latent_dim": P("int", min=1, example=64, smoke=8),
        "batch_size": P("int", min=2, example=100, smoke=12),
        "epochs": P("int", min=1, example=100, smoke=2),
        "lr": P("float", **POSITIVE, example=1e-4),
        "lr_divisors": P("number_dict", min=1, max=0, max_open=True, example={30: 2, 50: 5, 70: 10},
                         smoke={1: 2}),
        "obs_sigma": P("float", **POSITIVE, example=1.0),
        "width": P("float", **POSITIVE, example=1.0, smoke=1 / 16),
        "fid_samples": P("int", min=2, example=10_000, smoke=8),
        "fid_batch": P("int", min=1, example=250, smoke=8),
        "precision": P("choice", choices=PRECISIONS),
        "channels_last": P("bool"),
        "torch_compile": P("bool"),
        **page_params("runs/celeba"),
        "smoke_resume": P("bool"),
    },
    full={},  # the defaults are HEBAE App. B.2's CelebA settings
    check=_check,
    derive=_derive,
    check_device=lambda v, device: check_precision(v["precision"], device),
)
