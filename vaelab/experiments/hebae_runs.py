"""One MNIST run of HEBAE's experiments at the paper's settings (chapter 02 and its study page 02b).

``train_mnist_run(kind, k, lam, form, data, out_dir, settings)`` trains one model of Cheng et al.
(2020), App. B.1 (the MLP encoder D-784-800-2k and decoder k-800-800-D, Bernoulli likelihood on grey
pixels, batch 128 with every batch full, Adam 1e-3 decayed by 0.995 per epoch) and returns the numbers
the paper's MNIST figures need (also written to ``result.json`` in the run directory):

* Fig. 1a: the standard ELBO (prior N(0, I), ``hebae_elbo_std_prior`` for HEBAE) on the test images
  after every epoch, the model's own training objective per epoch, and at the end the standard ELBO,
  the own objective on the test set, and the importance-sampled log-likelihood of every test image
  (mean and standard error) with the proposal chapter 02 argues for (the VAE's own posterior;
  HEBAE's N(mu(x), tau^2 Sigma_pop) with tau picked on training images, ``population_proposal``);
* Fig. 2: the covariance and correlation of the test images' posterior means (``codes_mean``, the paper's
  matrices) and of one posterior draw each (``codes``), MIC and TIC between the data index and each
  latent (``mic_tic_index``);
* Fig. 4: a few samples and reconstructions (uint8 pixels, base64) and the Frechet distance in the
  features of a small MNIST classifier between ``fd_samples`` generated and as many test images.

Kinds: ``vae`` (``mlp_vae``), ``hebae`` (``mlp_hebae`` in ``form`` "exact", the paper's Eq. 8, or
"code", the official code's), ``wae`` (``mlp_wae``, its MMD weighted by ``lam``; no likelihood).
``fit`` checkpoints every epoch, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaelab.evaluation.classifier import features, frechet_distance_features, mnist_classifier, train_classifier, accuracy
from vaelab.data.images import ImageData, encode_images
from vaelab.evaluation.diagnostics import (active_units, kl_per_dim, latent_cov_corr, mean_abs_offdiag, mic_tic_index,
                          posterior_samples, posterior_stats)
from vaelab.models.hebae import FORMS, HEBAE, hebae_elbo_std_prior, mlp_hebae, population_proposal
from vaelab.evaluation.likelihood import WithProposal, importance_log_likelihood
from vaelab.core.files import atomic_write_json
from vaelab.objectives.schedules import Constant
from vaelab.training.train import evaluate, exponential_lr, fit
from vaelab.models.vae import mlp_vae
from vaelab.models.wae import mlp_wae

__all__ = ["KINDS", "TAUS", "LAMBDAS", "STUDY_POINTS", "PAPER_BEST_FID", "HebaeSettings", "run_name", "train_mnist_run"]

KINDS = {"vae": "VAE", "hebae": "HEBAE", "wae": "WAE"}
TAUS = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)  # widths of HEBAE's importance-sampling proposal (chapter 02, 6.3)
# chapter 01's seven KL weights, log-spaced from 0.01 to 100 (the 4th is 1)
LAMBDAS = tuple(float(f"{v:.6g}") for v in np.logspace(-2, 2, 7))


def _study_points() -> dict[str, tuple[str, int, float, str]]:
    """The study's points, name -> (kind, k, lam, form), in the order they are worth running."""
    pts = {}
    for k in (20, 10, 5, 2):  # Fig. 1a, top (k = 20 also Fig. 2, k = 10 also Fig. 4)
        pts[f"vae_k{k}"] = ("vae", k, 1.0, "exact")
        pts[f"hebae_k{k}"] = ("hebae", k, 1.0, "exact")
        if k == 10:
            pts["wae_k10"] = ("wae", 10, 10.0, "exact")  # Fig. 4: the official code's MMD weight
        if k == 20:
            pts["wae_k20"] = ("wae", 20, 1.0, "exact")  # Fig. 2
            pts["hebae_code_k20"] = ("hebae", 20, 1.0, "code")  # the official code's form
    for i, lam in enumerate(LAMBDAS, 1):  # Fig. 1a, bottom (lam = 1 is vae_k20 / hebae_k20)
        if lam != 1.0:
            pts[f"hebae_lam{i}"] = ("hebae", 20, lam, "exact")
            pts[f"vae_lam{i}"] = ("vae", 20, lam, "exact")
    return pts


STUDY_POINTS = _study_points()


@dataclass(frozen=True)
class HebaeSettings:
    """A run's settings; the defaults are HEBAE's App. B.1 and the full evaluation of chapter 02's study."""

    epochs: int = 100
    train_size: int = 60_000
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.995
    seed: int = 0
    track_images: int = 10_000  # test images: the standard ELBO after every epoch
    track_samples: int = 50  # per-epoch IS log-likelihood (on tau_images test images) and tau's choice
    tau_images: int = 200
    is_images: int = 10_000  # final importance-sampled log-likelihood
    is_samples: int = 5_000
    elbo_images: int = 10_000  # final standard ELBO, covariances, active units
    mic_points: int = 300  # MIC/TIC, as chapter 01
    mic_samples: int = 10
    fd_samples: int = 10_000  # Frechet distance in classifier features
    classifier_epochs: int = 3
    n_pictures: int = 16


# HEBAE paper, Sec. 4: "the lowest score being 46" (HEBAE on CelebA 64 x 64, 100 epochs, best lambda); the
# VAE's and WAE's FIDs appear only as curves in its Fig. 1b, with no number in the text (the CelebA page)
PAPER_BEST_FID = {"hebae": 46.0, "vae": None, "wae": None}


def run_name(kind: str, k: int, lam: float, form: str = "exact") -> str:
    """The run directory's name, e.g. ``hebae-exact_k20_lam1``."""
    return f"{kind}{'-' + form if kind == 'hebae' else ''}_k{k}_lam{lam:.4g}"


def _model(kind: str, k: int, form: str):
    if kind == "vae":
        return mlp_vae(latent_dim=k)
    if kind == "hebae":
        return mlp_hebae(latent_dim=k, form=form)
    return mlp_wae(latent_dim=k)


def _std_elbo_images(model, data: ImageData, seed: int) -> torch.Tensor:
    """Standard ELBO (prior N(0, I), weight 1) of each image; HEBAE through its population posterior."""
    dev = data.device
    with torch.no_grad():
        model.eval()
        gen = torch.Generator(dev).manual_seed(seed)
        out = []
        for idx in torch.arange(len(data), device=dev).split(500):
            x = data.batch(idx)
            if isinstance(model, HEBAE):
                out.append(hebae_elbo_std_prior(model, x, 1, generator=gen))
            else:
                terms = model(x)
                out.append(-(terms["rec"] + terms["reg"]))
        model.train()
    return torch.cat(out).double().cpu()


def _is_ll(model, data: ImageData, n_samples: int, seed: int) -> torch.Tensor:
    gen = torch.Generator(data.device).manual_seed(seed)
    return importance_log_likelihood(model, data, n_samples=n_samples, batch_size=25, generator=gen)


def _code_matrices(z: torch.Tensor) -> dict:
    """Covariance and correlation of codes ``z`` (N, k), rounded for the record, and their mean absolute
    off-diagonal entries (Fig. 2a, b)."""
    cov, corr = latent_cov_corr(z)
    return {"cov": np.round(cov.cpu().numpy(), 5).tolist(), "corr": np.round(corr.cpu().numpy(), 5).tolist(),
            "mean_abs_offdiag_corr": mean_abs_offdiag(corr).item(), "mean_abs_offdiag_cov": mean_abs_offdiag(cov).item()}


def _mean_se(values) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan,
            "n": int(len(v))}


def train_mnist_run(kind: str, k: int, lam: float, data, out_dir: str | Path, settings: HebaeSettings = HebaeSettings(),
                    form: str = "exact", resume: bool = True, progress: bool | None = None) -> dict:
    """Train one model (or resume it) in ``out_dir/run_name(...)`` on ``data.train``; evaluate it on
    ``data.test``; returns its numbers (also written to ``result.json`` there)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is unknown: use one of {sorted(KINDS)}")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is unknown: use one of {FORMS}")
    s = settings
    name = run_name(kind, k, lam, form)
    run_dir = Path(out_dir) / name
    dev = data.train.device
    test = data.test
    track_set, tau_set = test.subset(s.track_images), test.subset(s.tau_images)
    tau_train = data.train.subset(s.tau_images)
    torch.manual_seed(s.seed)
    model = _model(kind, k, form).to(dev)

    def tracker(epoch, m):
        """Per-epoch yardsticks (fit's on_epoch hook: it does not change the run)."""
        if kind == "wae":
            return None
        if isinstance(m, HEBAE):
            m.population_stats(data.train)
        return {"test_std_elbo": _std_elbo_images(m, track_set, s.seed).mean().item(),
                "track_ll": _is_ll(m, tau_set, s.track_samples, s.seed).mean().item()}

    hist = fit(model, data.train, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr,
               lr_factor=exponential_lr(s.lr_decay), schedule=Constant(float(lam)), out_dir=run_dir,
               resume=resume, seed=s.seed, drop_last=True, on_epoch=tracker, progress=progress, desc=name)
    train_s = hist.train_time_s  # every attempt's training: a resumed point counts its earlier ones
    t1 = time.perf_counter()
    ep = hist.epochs
    result = {"kind": kind, "label": KINDS[kind], "k": k, "lam": float(lam),
              "form": form if kind == "hebae" else None, "settings": dataclasses.asdict(s),
              "per_epoch": {key: [float(v) for v in ep[key]]
                            for key in ("loss", "rec", "reg", "test_std_elbo", "track_ll", "sigma_mean")
                            if key in ep}}
    if isinstance(model, HEBAE):
        model.population_stats(data.train)
    model.eval()
    ev = evaluate(model, test)
    result["test_objective"] = ev["rec"] + float(lam) * ev["reg"]
    result["test_rec"], result["test_reg"] = ev["rec"], ev["reg"]
    elbo_set = test.subset(s.elbo_images)
    if kind != "wae":
        result["std_elbo"] = _mean_se(_std_elbo_images(model, elbo_set, s.seed))
        target = model
        if isinstance(model, HEBAE):
            scores = {tau: _is_ll(WithProposal(model, population_proposal(tau)), tau_train, s.track_samples,
                                  s.seed).mean().item() for tau in TAUS}
            result["tau"] = max(scores, key=scores.get)
            result["tau_scores"] = {f"{t:g}": v for t, v in scores.items()}
            target = WithProposal(model, population_proposal(result["tau"]))
        result["is_ll"] = _mean_se(_is_ll(target, test.subset(s.is_images), s.is_samples, s.seed))
        result["is_ll"]["samples"] = s.is_samples
        mu_e, logvar_e = posterior_stats(model, elbo_set)
        result["active_units"] = int(active_units(mu_e)[0])
        kl_j = kl_per_dim(mu_e, logvar_e)
        result["kl_per_dim"] = [round(float(v), 5) for v in kl_j]
    gen = torch.Generator(dev).manual_seed(s.seed)
    with torch.no_grad():
        z = posterior_samples(model, elbo_set, 1, generator=gen)[:, 0]
        mu = posterior_stats(model, elbo_set)[0]
    result["codes"] = _code_matrices(z)
    # the paper's Fig. 2 matrices: the posterior means mu(x) (the codes f(x) of the WAE), whose variance
    # falls to 0 in a collapsed dimension; a posterior draw adds sigma^2 there (Cov z = Cov mu + E diag sigma^2)
    result["codes_mean"] = _code_matrices(mu)
    zs = posterior_samples(model, test.subset(s.mic_points), s.mic_samples,
                           generator=torch.Generator(dev).manual_seed(s.seed))
    mic, tic = mic_tic_index(zs)
    result["mic"] = {"mic": mic.tolist(), "tic": tic.tolist(), "mean_mic": mic.mean().item(),
                     "mean_tic": tic.mean().item(), "points": s.mic_points, "samples": s.mic_samples}
    # Fig. 4: samples of the prior N(0, I), reconstructions, the Frechet distance in classifier features
    torch.manual_seed(s.seed)
    clf = mnist_classifier().to(dev)
    train_classifier(clf, data.train, epochs=s.classifier_epochs, seed=s.seed)
    n = s.fd_samples
    with torch.no_grad():
        fake = torch.cat([model.sample(500, generator=torch.Generator(dev).manual_seed(s.seed + i))
                          for i in range(math.ceil(n / 500))])[:n].clamp(0, 1)
        x_show = test.batch(torch.arange(s.n_pictures, device=dev))
        result["pictures"] = {"samples": encode_images(fake[:s.n_pictures]),
                              "reconstructions": encode_images(model.reconstruct(x_show))}
    real = test.batch(torch.arange(n, device=dev))
    result["fd_classifier"] = frechet_distance_features(features(clf, real), features(clf, fake))
    result["fd_samples"] = n
    result["classifier_accuracy"] = accuracy(clf, test)
    result["train_s"], result["eval_s"] = train_s, time.perf_counter() - t1
    atomic_write_json(run_dir / "result.json", result)
    return result
