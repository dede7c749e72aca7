"""One pendulum run of Klushyn et al.'s Table 1 study, by method name (chapter 04 and its study page).

``train_pendulum_run(method, seed, data, out_dir, settings)`` trains Klushyn et al.'s (2019) Table 3
model (``vaelab.models.vhp.vhp_vae``: MLP encoder and decoder, the VHP prior with K importance samples,
a Gaussian decoder of fixed ``obs_sigma``) with one of the methods of Table 1 and returns the run's
numbers: both angle scores on the test codes (``vaelab.evaluation.angle``), Sec. 4.1's interpolation test
(graph path against straight line, ``vaelab.evaluation.interpolation``), the final beta, the length of
REWO's initial phase, the final training MSE and KL bound, and beta every ``trace_every`` steps.
Snapshots of the test codes and of prior samples at chosen iterations go to the run directory
(Figs. 2 and 10-13 are drawn from them). ``fit`` checkpoints every epoch, so a killed run resumes.

Methods (``METHODS``):

* ``rewo``: REWO (Algorithm 1, Eqs. 11-12); ``rewo_b1``: REWO's initial phase with App. B.1's update
  (Eqs. 14-15); ``geco``: GECO (Eq. 5) on the same constraint; ``plain``: the VHP trained on its ELBO
  (beta = 1 throughout, "VAE objective"); ``wu20`` / ``wu200``: linear warm-up of beta from 0 to 1 over
  20 / 200 epochs (or ``settings.warmup_steps``); ``rewo_elbo``: App. B.4's control, REWO with the ELBO
  (K = 1) instead of the importance-weighted bound in the prior's second layer.

Chapter 04 calls it for its short runs (``warmup_steps``, ``interp_pairs=0``, ``return_model=True``),
the study page ``04b_pendulum_study`` at Table 3's settings, the defaults of ``PendulumSettings``.

The constraint is on the per-pixel mean squared error, C = ||x - mu(z)||^2 / D, whatever ``obs_sigma``
is (``vaelab.objectives.constrained.mse_from_gaussian_rec``), so kappa is a per-pixel RMSE; ``obs_sigma`` sets the
scale of the reconstruction term against the KL term in the trained objective (the likelihood-scale
question of chapter 04).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaelab.evaluation.angle import angle_regression, arcsin_regression
from vaelab.objectives.constrained import GECO, REWO, REWOB1, mse_from_gaussian_rec
from vaelab.data.images import ImageData
from vaelab.evaluation.interpolation import interpolation_scores
from vaelab.core.files import atomic_write_json
from vaelab.objectives.schedules import Constant, LinearWarmup
from vaelab.training.train import fit
from vaelab.models.vhp import vhp_vae

__all__ = [
    "METHODS",
    "PendulumSettings",
    "train_pendulum_run",
    "run_name",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "light_result",
]

METHODS = {
    "rewo": "VHP + REWO",
    "rewo_b1": "VHP + REWO (App. B.1 update)",
    "geco": "VHP + GECO",
    "plain": "VHP, VAE objective",
    "wu20": "VHP + WU 20",
    "wu200": "VHP + WU 200",
    "rewo_elbo": "VHP + REWO, ELBO in the prior (App. B.4)",
}
# Klushyn et al. (2019), Table 1: absolute angle error in radians (B.1 and B.4 have no Table 1 number)
PAPER_TABLE1 = {"rewo": 0.054, "geco": 0.53, "plain": 0.49, "wu20": 0.20, "wu200": 0.31}
# Klushyn et al. (2019), Table 2: test NLL (nats) on Fashion-MNIST, chapter 04's models -> (value, the
# paper's row); the standard-prior VAE is compared with the paper's IWAE (L = 1) row
PAPER_TABLE2 = {"VHP + REWO": (225.37, "VHP + REWO"), "VHP + GECO": (234.73, "VHP + GECO"),
                "standard prior (VAE, ELBO)": (226.83, "IWAE (L=1)")}


@dataclass(frozen=True)
class PendulumSettings:
    """The study's settings; the defaults are Klushyn et al.'s Table 3 (batch size: ours, the paper gives none)."""

    iterations: int = 50_000
    batch_size: int = 64
    lr: float = 1e-4
    width: int = 256
    depth: int = 4
    zeta_samples: int = 16
    obs_sigma: float = 1.0
    kappa: float = 0.02
    nu: float = 5.0
    tau: float = 3.0
    alpha: float = 0.99
    snapshot_iterations: tuple[int, ...] = (1_000, 5_000, 10_000, 25_000, 50_000)
    trace_every: int = 50
    # Sec. 4.1's interpolation test on the trained model (vaelab.evaluation.interpolation; the paper's graph);
    # interp_pairs = 0 skips it
    graph_samples: int = 1_000
    graph_k: int = 18
    interp_pairs: int = 10
    interp_points: int = 16
    # steps of the wu20 / wu200 warm-ups; None: 20 and 200 epochs (App. B.2). Chapter 04's short runs keep
    # the paper's warm-ups as fractions of training instead.
    warmup_steps: tuple[int, int] | None = None

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.batch_size)

    def epochs(self, n_train: int) -> int:
        """Whole epochs covering ``iterations`` steps (the run may train up to one epoch more)."""
        return max(1, math.ceil(self.iterations / self.steps_per_epoch(n_train)))


def run_name(method: str, seed: int, obs_sigma: float) -> str:
    """The run directory's name, e.g. ``rewo_sigma1_seed0``."""
    return f"{method}_sigma{obs_sigma:g}_seed{seed}"


def _schedule(method: str, s: PendulumSettings, n_pixels: int, steps_per_epoch: int):
    mse = mse_from_gaussian_rec(s.obs_sigma, n_pixels)
    if method in ("rewo", "rewo_elbo"):
        return REWO(s.kappa, s.nu, tau=s.tau, alpha=s.alpha, **mse)
    if method == "rewo_b1":
        return REWOB1(s.kappa, s.nu, tau=s.tau, alpha=s.alpha, **mse)
    if method == "geco":
        return GECO(s.kappa, s.nu, alpha=s.alpha, **mse)
    if method == "plain":
        return Constant(1.0)
    if method in ("wu20", "wu200"):
        if s.warmup_steps is not None:
            return LinearWarmup(s.warmup_steps[method == "wu200"])
        return LinearWarmup(int(method[2:]) * steps_per_epoch)
    raise ValueError(f"method={method!r} is unknown: use one of {sorted(METHODS)}")


def train_pendulum_run(
    method: str,
    seed: int,
    train: ImageData,
    test: ImageData,
    out_dir: str | Path,
    settings: PendulumSettings = PendulumSettings(),
    resume: bool = True,
    progress: bool | None = None,
    return_model: bool = False,
) -> dict | tuple[dict, torch.nn.Module]:
    """Train one run (or resume it) in ``out_dir/run_name(...)``; returns its numbers (also in ``result.json``),
    and the trained model after them with ``return_model=True``."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown: use one of {sorted(METHODS)}")
    s = settings
    run_dir = Path(out_dir) / run_name(method, seed, s.obs_sigma)
    n_pixels = math.prod(train.shape)
    spe = s.steps_per_epoch(len(train))
    epochs = s.epochs(len(train))
    mse = mse_from_gaussian_rec(s.obs_sigma, n_pixels)
    torch.manual_seed(seed)
    model = vhp_vae(
        data_shape=train.shape,
        latent_dim=2,
        hidden=[s.width] * s.depth,
        obs_sigma=s.obs_sigma,
        n_samples=1 if method == "rewo_elbo" else s.zeta_samples,
    )
    dev = train.device
    x_snap = test.batch(torch.arange(min(600, len(test)), device=dev))
    snap_epochs = {
        min(epochs, max(1, round(it / spe))): it
        for it in s.snapshot_iterations
        if it <= s.iterations
    }

    def on_epoch(epoch, m):
        if epoch in snap_epochs:
            with torch.no_grad():
                mu, logvar = m.encode(x_snap)
                zp = m.prior.sample(
                    len(x_snap), generator=torch.Generator(dev).manual_seed(seed)
                )
            torch.save(
                {"iteration": epoch * spe, "mu": mu.cpu(), "logvar": logvar.cpu(),
                 "prior": zp.cpu()},
                run_dir / f"snapshot_{epoch * spe:06d}.pt",
            )

    t0 = time.perf_counter()
    hist = fit(
        model,
        train,
        epochs=epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        schedule=_schedule(method, s, n_pixels, spe),
        out_dir=run_dir,
        resume=resume,
        seed=seed,
        on_epoch=on_epoch,
        progress=progress,
        desc=run_name(method, seed, s.obs_sigma),
    )
    with torch.no_grad():
        model.eval()
        codes = model.encode(test.batch())[0].cpu().numpy()
    theta = test.targets.cpu().numpy()
    polar, b3 = angle_regression(codes, theta), arcsin_regression(codes, theta)
    interp = None if s.interp_pairs == 0 else interpolation_scores(
        model, test.batch(), theta, seed=seed, graph_samples=s.graph_samples, k=s.graph_k,
        n_pairs=s.interp_pairs, n_points=s.interp_points)
    w = np.asarray(hist.steps["weight"])
    moved = np.nonzero(w != w[0])[0]
    result = {
        "method": method,
        "label": METHODS[method],
        "seed": seed,
        "settings": dataclasses.asdict(s),
        "iterations": len(w),
        "epochs": epochs,
        "angle_error": polar.error,
        "angle_slope": polar.slope,
        "b3_error": b3.error,
        "b3_slope": b3.slope,
        "b3_clipped": b3.clipped,
        "final_beta": float(w[-1]),
        "initial_phase_steps": int(moved[0]) if len(moved) else len(w),
        **({} if interp is None else {"interpolation": interp}),
        "final_train_mse": hist.epochs["rec"][-1] * mse["scale"] + mse["shift"],
        "final_train_kl": hist.epochs["reg"][-1],
        "beta_trace": w[:: s.trace_every].tolist(),
        "trace_every": s.trace_every,
        "mse_trace": (
            np.asarray(hist.steps["rec"])[:: s.trace_every] * mse["scale"]
            + mse["shift"]
        ).tolist(),
        "kl_trace": np.asarray(hist.steps["reg"])[:: s.trace_every].tolist(),
        "paper": PAPER_TABLE1.get(method),
        "seconds_this_call": time.perf_counter() - t0,
        "train_seconds": float(np.nansum(hist.epochs["time_s"])),
    }
    atomic_write_json(run_dir / "result.json", result)
    return (result, model) if return_model else result


def light_result(result: dict, run_dir: str | Path, every: int = 1_000, codes_kept: int = 300) -> dict:
    """A run's ``result`` as the study's record keeps it: its traces thinned to every ``every``-th
    iteration (``*_trace_coarse``, ``coarse_every``), the first iteration at which the KL bound exceeded
    1 nat (``kl_first_above_1``; None: it stayed collapsed), and from each snapshot in ``run_dir`` the
    first ``codes_kept`` test codes and as many prior samples to 3 decimals with the median posterior
    standard deviation exp(mean over dimensions of logvar / 2) (``codes_coarse``)."""
    step = max(1, every // result["trace_every"])
    above = np.flatnonzero(np.asarray(result["kl_trace"]) > 1.0)
    codes = []
    for f in sorted(Path(run_dir).glob("snapshot_*.pt")):
        snap = torch.load(f, weights_only=True)
        codes.append({"iteration": int(snap["iteration"]),
                      **{k: np.round(snap[k][:codes_kept].double().numpy(), 3).tolist()
                         for k in ("mu", "prior")}})
        if "logvar" in snap:  # snapshots that keep the posterior's log-variance
            sd = (snap["logvar"].double().mean(1) / 2).exp()
            codes[-1]["posterior_sd_median"] = sd.median().item()
    return {**{k: v for k, v in result.items() if not k.endswith("_trace")},
            **{f"{k}_coarse": result[k][::step] for k in ("beta_trace", "kl_trace", "mse_trace")},
            "coarse_every": step * result["trace_every"],
            "kl_first_above_1": int(above[0]) * result["trace_every"] if len(above) else None,
            "codes_coarse": codes}
