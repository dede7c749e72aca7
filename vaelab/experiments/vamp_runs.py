"""One MNIST model of the VampPrior paper's Tables 1-3 at its settings (chapter 03 and its study page 03b).

``train_vamp_run(run, data, out_dir, settings)`` builds one model of ``RUNS`` (Tomczak & Welling 2018:
gated dense networks of 300 units, 40 latents per layer, Bernoulli decoder, on dynamically binarised
MNIST), trains it with Adam and the KL weight warmed up linearly over ``warmup_epochs`` epochs, with
early stopping on the validation ELBO after the warm-up, and returns the numbers of Table 1 (also in
``result.json`` of the run directory):

* the test ELBO on all test images (one sample each) and the importance-sampled log-likelihood with
  ``ll_samples`` samples (the paper: 5,000) of the first ``ll_images`` test images, its mean and
  standard error, and the ELBO of the same images;
* the epochs trained (and the best epoch, where early stopping ran) and the training time;
* the active units of each stochastic layer (Burda et al. 2016; z for the one-level models, z2 and
  z1 for the two-level ones: the paper's Fig. 3);
* the first pseudo-inputs of a model whose VampPrior learns them, as uint8 pictures (Fig. 4).

The chapter's lesson uses the same pieces at its default scale: ``make_model``, ``train_model``,
``summarise`` and ``active_units_by_layer``; each seeds torch as the chapter always did, so a model
trained here and one trained by the chapter at the same settings, as the first fit after loading the
data, are the same model.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from vaelab.core.files import atomic_write_json
from vaelab.data.images import ImageData, Splits, encode_images
from vaelab.evaluation.diagnostics import active_units, posterior_stats
from vaelab.evaluation.likelihood import importance_log_likelihood
from vaelab.models.hvae import HVAE, hvae
from vaelab.models.vamp import MixtureOfGaussians, VampPrior, mog_vae, std_vae, vamp_vae
from vaelab.objectives.schedules import LinearWarmup
from vaelab.training.train import History, evaluate, fit

__all__ = ["MODELS", "RUNS", "PAPER_LL", "PAPER_STATIC_LL", "ORDERINGS", "paper_difference", "VampSettings", "make_model", "train_model", "summarise",
           "active_units_by_layer", "train_vamp_run", "run_dir_name"]

# every model the chapter trains, key -> label (the label names the model in tables and records)
MODELS = {"vae_standard": "VAE standard", "vae_vamp": "VAE VampPrior", "vae_mog": "VAE MoG",
          "hvae_standard": "HVAE standard", "hvae_vamp": "HVAE VampPrior", "hvae_mog": "HVAE MoG",
          "hvae_vamp_data": "HVAE VampPrior data"}
# the study's points: the models of the paper's tables (the one-level MoG is only in chapter 03's K grid)
RUNS = ("vae_standard", "vae_vamp", "hvae_standard", "hvae_vamp", "hvae_mog", "hvae_vamp_data")
# Tomczak & Welling (2018), test log-likelihood on dynamic MNIST, S = 5,000 (nats): label -> (value, where).
# The two-level model with the MoG prior is reported on static MNIST only (Table 2: -85.07).
PAPER_LL = {"VAE standard": (-84.50, "Table 1"), "VAE VampPrior": (-82.38, "Table 1"),
            "HVAE standard": (-82.42, "Table 1"), "HVAE VampPrior": (-81.24, "Tables 1, 3"),
            "HVAE MoG": (None, "static MNIST only"), "HVAE VampPrior data": (-81.71, "Table 3")}
# Table 2 (static MNIST), the only table with the two-level model and the MoG prior
PAPER_STATIC_LL = {"HVAE VampPrior": -83.19, "HVAE MoG": -85.07}
# the paper's orderings, A above B: (A, B, where the paper gives both, a short label A - B)
ORDERINGS = (("VAE VampPrior", "VAE standard", "Table 1", "VAE: VampPrior - standard"),
             ("HVAE standard", "VAE standard", "Table 1", "standard prior: HVAE - VAE"),
             ("HVAE VampPrior", "HVAE standard", "Table 1", "HVAE: VampPrior - standard"),
             ("HVAE VampPrior", "HVAE VampPrior data", "Table 3", "HVAE: VampPrior - data"),
             ("HVAE VampPrior", "HVAE MoG", "Table 2, static", "HVAE: VampPrior - MoG"))
PSEUDO_PICTURES = 10  # pseudo-inputs kept in a record (uint8, about 1 kB each)


@dataclass(frozen=True)
class VampSettings:
    """A model's settings; the defaults are the paper's (Sec. 5.1; the look-ahead counted in epochs, as
    its code does). ``patience=0`` turns early stopping off."""

    epochs: int = 2000
    warmup_epochs: int = 100
    patience: int = 50
    train_size: int = 50_000
    n_pseudo: int = 500
    latent_dim: int = 40
    hidden: int = 300
    batch_size: int = 100
    lr: float = 5e-4
    ll_samples: int = 5000
    ll_images: int = 10_000
    seed: int = 0

    @classmethod
    def from_params(cls, params: Mapping) -> "VampSettings":
        """The settings named in ``params`` (a chapter's parameters; other names are ignored)."""
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls) if f.name in params})


def paper_difference(a: str, b: str) -> float:
    """The paper's log-likelihood of model ``a`` minus model ``b`` (labels): on dynamic MNIST where it
    reports both, else on static MNIST (Table 2)."""
    pa, pb = PAPER_LL[a][0], PAPER_LL[b][0]
    if pa is None or pb is None:
        pa, pb = PAPER_STATIC_LL[a], PAPER_STATIC_LL[b]
    return pa - pb


def run_dir_name(kind: str) -> str:
    """The run directory of a model: its label with underscores (``VAE_VampPrior``)."""
    return MODELS[kind].replace(" ", "_")


def make_model(kind: str, s: VampSettings, train: ImageData | None = None, n_components: int | None = None) -> nn.Module:
    """Model ``kind`` (a key of ``MODELS``) with K = ``n_components`` (default ``s.n_pseudo``) pseudo-inputs
    or components, its weights drawn after ``torch.manual_seed(s.seed)``. ``train``: the training images
    whose first K become the fixed pseudo-inputs of ``hvae_vamp_data``."""
    if kind not in MODELS:
        raise ValueError(f"kind={kind!r} is unknown: use one of {list(MODELS)}")
    k, h, n = s.latent_dim, s.hidden, s.n_pseudo if n_components is None else n_components
    torch.manual_seed(s.seed)
    if kind == "vae_standard":
        return std_vae(k, h)
    if kind == "vae_vamp":
        return vamp_vae(k, n, h)
    if kind == "vae_mog":
        return mog_vae(k, n, h)
    if kind == "hvae_standard":
        return hvae(k, h, prior="standard")
    if kind == "hvae_vamp":
        return hvae(k, h, prior="vamp", n_pseudo=n)
    if kind == "hvae_mog":
        return hvae(k, h, prior=MixtureOfGaussians(k, n))
    if train is None:
        raise ValueError("hvae_vamp_data takes its pseudo-inputs from the training images: pass train=data.train")
    return hvae(k, h, prior="vamp", n_pseudo=n, pseudo_init="data", data=train, learn_pseudo_inputs=False)


def train_model(model: nn.Module, data: Splits, s: VampSettings, run_dir: str | Path, resume: bool = True,
                progress: bool | None = None) -> tuple[History, float]:
    """Train ``model`` on ``data.train`` (checkpointed in ``run_dir``, resumed when called again):
    Adam at ``s.lr``, batches of ``s.batch_size``, the KL weight warmed up from 0 to 1 over
    ``s.warmup_epochs`` epochs, early stopping with look-ahead ``s.patience`` epochs on the validation
    ELBO after the warm-up. Returns the history and the seconds spent training, summed over every attempt
    (a resumed run counts the epochs of its earlier attempts; ``History.train_time_s``)."""
    torch.manual_seed(s.seed)
    hist = fit(model.to(data.train.device), data.train, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr,
               schedule=LinearWarmup(s.warmup_epochs, unit="epoch"), valid=data.valid,
               patience=s.patience or None, patience_after=s.warmup_epochs, out_dir=run_dir, resume=resume,
               seed=s.seed, progress=progress)
    return hist, hist.train_time_s


def summarise(model: nn.Module, label: str, hist: History, seconds: float, test: ImageData, ll_set: ImageData,
              s: VampSettings) -> dict:
    """Table 1's numbers of a trained model: the one-sample test ELBO on ``test`` (the global torch
    generator's noise), and on ``ll_set`` the importance-sampled log-likelihood with ``s.ll_samples``
    samples (a generator seeded with ``s.seed``), its mean, standard error and per-image values
    (``ll_images``, a NumPy array), and the ELBO of the same samples."""
    ev = evaluate(model, test)
    gen = torch.Generator(test.device).manual_seed(s.seed)
    res = importance_log_likelihood(model, ll_set, n_samples=s.ll_samples, batch_size=10, generator=gen,
                                    return_elbo=True)
    ll = res.log_likelihood
    if not bool((ll >= res.elbo).all()):  # log-mean-exp of the weights >= their mean, image by image
        raise AssertionError("an importance-sampled log-likelihood fell below its own ELBO")
    return {"model": label, "test_elbo": -(ev["rec"] + ev["reg"]), "test_ll": ll.mean().item(),
            "test_ll_se": (ll.std() / math.sqrt(len(ll))).item(), "ll_set_elbo": res.elbo.mean().item(),
            "train_seconds": seconds, "epochs_trained": len(hist.epochs.get("epoch", [])),
            "ll_images": ll.cpu().numpy()}


def active_units_by_layer(model: nn.Module, test: ImageData) -> dict[str, int]:
    """Active units (Cov_x E[z_u | x] > 0.01) of each stochastic layer over ``test``: ``{"z": n}`` for a
    one-level model; ``{"z2": n, "z1": n}`` for the two-level one, z2 from q(z2 | x) and z1 from
    q(z1 | x, z2) at z2's posterior mean (``HVAE.encode_layers``)."""
    mean = posterior_stats(model, test)[0]
    if not isinstance(model, HVAE):
        return {"z": active_units(mean)[0]}
    k1 = model.z1_dim
    return {"z2": active_units(mean[:, k1:])[0], "z1": active_units(mean[:, :k1])[0]}


def train_vamp_run(run: str, data: Splits, out_dir: str | Path, s: VampSettings = VampSettings(),
                   resume: bool = True, progress: bool | None = None) -> dict:
    """Train (or resume) model ``run`` (one of ``RUNS``) in ``out_dir/run_dir_name(run)`` and evaluate it;
    returns its numbers (module docstring), also written to ``result.json`` there. ``data``: MNIST with
    dynamic binarisation, e.g. ``load_dataset("mnist", train_size=s.train_size, binarize="dynamic",
    seed=s.seed)``; the training run should be the first on it (dynamic binarisation draws from the data
    set's own generator, which each fit advances)."""
    if run not in RUNS:
        raise ValueError(f"run={run!r} is unknown: use one of {list(RUNS)}")
    run_dir = Path(out_dir) / run_dir_name(run)
    model = make_model(run, s, data.train)
    hist, seconds = train_model(model, data, s, run_dir, resume=resume, progress=progress)
    ll_set = data.test.subset(min(s.ll_images, len(data.test)))
    row = summarise(model, MODELS[run], hist, seconds, data.test, ll_set, s)
    row.pop("ll_images")
    best = hist.epochs.get("best_epoch")
    result = {"run": run, "tables_1_2": [row], "best_epoch": int(best[-1]) if best else None,
              "active_units": active_units_by_layer(model, data.test), "settings": dataclasses.asdict(s)}
    prior = getattr(model, "prior", None)
    if isinstance(prior, VampPrior) and prior.learn_pseudo_inputs:
        with torch.no_grad():
            result["pseudo_inputs"] = encode_images(prior.pseudo_inputs()[:PSEUDO_PICTURES])
    atomic_write_json(run_dir / "result.json", result)
    return result
