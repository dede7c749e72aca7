"""Diagnostics of over-regularisation and collapse over a whole data set (chapter 01, ``book/01_vae_collapse``).

* posterior statistics and samples of any model, read off its ``posterior(x)``
  (``vaelab.core.posteriors``): Gaussian (mu, logvar), or a deterministic code (WAE: z, logvar None);
* active units (Burda, Grosse, Salakhutdinov 2016, Sec. 5.2) and the KL per latent dimension;
* covariance / correlation of the latents (HEBAE Fig. 2a,b);
* how far prior samples fall from the codes of real data ("holes", chapters 02 and 04b);
* "ELBO surgery" (Hoffman & Johnson 2016; HEBAE Eq. 10): the average KL split into the mutual
  information I(n; z) and the KL of the aggregate posterior to the prior;
* MIC / TIC between the data-point index and each latent (Reshef et al. 2011 with minepy; HEBAE Fig. 2c,d).

Everything that runs a model does it batched, without gradients, in eval mode (restored after).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vaelab.core.modes import eval_mode
from vaelab.core.validate import positive_int
from vaelab.data.images import ImageData, batch_indices
from vaelab.core.densities import LOG_2PI, kl_std_normal, kl_std_normal_per_dim, log_normal_diag, log_standard_normal
from vaelab.core.posteriors import DiagonalNormal, draw, marginals

__all__ = ["posterior_stats", "posterior_samples", "active_units",
           "kl_per_dim", "latent_cov_corr", "mean_abs_offdiag", "log_aggregate_posterior", "elbo_surgery",
           "mic_tic_index", "prior_hole_ratio"]


# ---------------------------------------------------------------- checks and model evaluation
def _check_matrix(name: str, t, min_rows: int = 1) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim != 2:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a 2-D tensor (data points, latent), got {shape}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} has {t.shape[0]} row(s), at least {min_rows} are needed")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values: check the model (a diverged run) or the data")
    return t


def _check_pair(mu, logvar, min_rows: int = 1) -> None:
    _check_matrix("mu", mu, min_rows)
    if logvar is None:
        raise ValueError("logvar is None (a deterministic encoder such as the WAE's): this quantity needs a "
                         "Gaussian posterior q(z|x) = N(mu, diag exp(logvar))")
    _check_matrix("logvar", logvar)
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar has shape {tuple(logvar.shape)} but mu has {tuple(mu.shape)}: they must match")


def _check_data(data) -> ImageData:
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be a vaelab.data.ImageData, got {type(data).__name__}: wrap float images "
                        "with ImageData.from_float(images)")
    return data


def _posteriors(model: nn.Module, data: ImageData, batch_size: int):
    """q(z | x) of each batch of ``data`` in order, in eval mode without gradients."""
    data = _check_data(data)
    with eval_mode(model):
        for idx in batch_indices(len(data), batch_size, shuffle=False, device=data.device):
            yield model.posterior(data.batch(idx))


def posterior_stats(model: nn.Module, data: ImageData, batch_size: int = 1000
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean (N, k) and log variance (N, k) of each latent under q(z|x_n) for every image of ``data``
    (``vaelab.core.posteriors.marginals``); the log variance is None for a deterministic encoder (then the
    mean is the code z) and for the HVAE's joint (then the mean is its plug-in mean)."""
    mus, logvars = [], []
    for q in _posteriors(model, data, batch_size):
        mu, logvar = marginals(q)
        mus.append(mu)
        logvars.append(logvar)
    if any(lv is None for lv in logvars):
        return torch.cat(mus), None
    return torch.cat(mus), torch.cat(logvars)


def posterior_samples(model: nn.Module, data: ImageData, n_samples: int = 1, generator: torch.Generator | None = None,
                      batch_size: int = 1000) -> torch.Tensor:
    """z ~ q(z|x_n), ``n_samples`` per image of ``data``: shape (N, S, k) (S copies of z for a WAE).

    Drawn from ``model.posterior(x)`` with ``vaelab.core.posteriors.draw``, so that a full-covariance
    posterior (HEBAE's exact form) carries its correlations into the samples (chapter 02, Fig. 2).
    """
    n_samples = positive_int("n_samples", n_samples)
    return torch.cat([draw(q, n_samples, generator, log_prob=False)[0].transpose(0, 1)
                      for q in _posteriors(model, data, batch_size)])


# ---------------------------------------------------------------- per-dimension summaries
def active_units(mu: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Burda et al. (2016), Sec. 5.2: unit u is active iff A_u = Cov_x(E_{q(z|x)}[z_u]) > threshold (0.01).

    ``mu`` is (N, k), the posterior means over a data set. Returns the number of active units and
    A (k,), the variance over the data of each posterior mean, unbiased (divides by N - 1).
    """
    _check_matrix("mu", mu, min_rows=2)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
        raise ValueError(f"threshold must be a number >= 0 (Burda et al. use 0.01), got {threshold!r}")
    var = mu.var(0, correction=1)
    return int((var > threshold).sum()), var


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_n KL(N(mu_nj, exp(logvar_nj)) || N(0, 1)) for each latent dimension j, shape (k,).

    Summed over j it is the VAE's average KL term (Kingma & Welling 2014, App. B; HEBAE Eq. 4).
    A collapsed dimension has KL close to 0 (q(z_j|x) = p(z_j) for every x).
    """
    _check_pair(mu, logvar)
    return kl_std_normal_per_dim(mu, logvar).mean(0)


def latent_cov_corr(z: torch.Tensor, correction: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Covariance (k, k) and correlation (k, k) of the rows of ``z`` (N, k) (HEBAE Fig. 2a,b).

    ``correction=1`` divides by N - 1 as ``numpy.cov``; the correlation is the same either way.
    A dimension with zero variance has NaN correlations (as ``numpy.corrcoef``).
    """
    _check_matrix("z", z, min_rows=2)
    cov = torch.cov(z.T, correction=correction)
    sd = cov.diagonal().sqrt()
    corr = (cov / (sd[:, None] * sd[None, :])).clamp(-1.0, 1.0)
    return cov, corr


def mean_abs_offdiag(m: torch.Tensor) -> torch.Tensor:
    """Mean of |m_ij| over i != j of a square matrix (k >= 2): how far a correlation matrix is from I."""
    if not isinstance(m, torch.Tensor) or m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise ValueError(f"m must be a square matrix of size at least 2 x 2, got {shape}")
    k = m.shape[0]
    off = ~torch.eye(k, dtype=torch.bool, device=m.device)
    return m.abs()[off].mean()


def prior_hole_ratio(prior_samples: torch.Tensor, codes: torch.Tensor) -> float:
    """How far the prior's samples fall from the codes of real data: the median distance from a
    prior sample to its nearest code over the median distance from a code to its nearest other
    code. About 1 when the samples lie among the codes as the codes lie among themselves (two
    samples of one distribution); large when the prior puts mass in "holes" where no code lies,
    whose samples decode to no real image (chapter 02, Sec. 6.7; the pendulum study's learned
    prior against its ring of codes, chapter 04b).
    """
    prior_samples = _check_matrix("prior_samples", prior_samples)
    codes = _check_matrix("codes", codes, min_rows=2)
    if prior_samples.shape[1] != codes.shape[1]:
        raise ValueError(f"prior_samples have {prior_samples.shape[1]} dimensions and codes "
                         f"{codes.shape[1]}: pass both in the same latent space")
    prior_samples, codes = prior_samples.double(), codes.double()
    d_code = torch.cdist(codes, codes)
    d_code.fill_diagonal_(float("inf"))
    spacing = d_code.min(1).values.median()
    if spacing == 0:
        raise ValueError("codes: half the codes or more coincide with another code, so the code "
                         "spacing is 0: pass distinct codes")
    return (torch.cdist(prior_samples, codes).min(1).values.median() / spacing).item()


# ---------------------------------------------------------------- ELBO surgery
def log_aggregate_posterior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk_size: int = 1024,
                            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """log q(z) = logsumexp_n log N(z | mu_n, diag exp(logvar_n)) - log N for each row of ``z`` (M, k).

    q(z) = (1/N) sum_n q(z|x_n) is the aggregate posterior (Hoffman & Johnson 2016; the optimal prior
    of the VampPrior paper). Exact over all N components, vectorised: with precisions P = exp(-logvar),
    sum_j (z_j - mu_nj)^2 P_nj = (z^2) P^T - 2 z (mu P)^T + sum_j mu_nj^2 P_nj is two matrix products,
    computed in ``dtype`` (float64 by default, against the cancellation of large terms when posteriors
    are narrow) for ``chunk_size`` rows of z at a time: memory chunk_size x N. Returns (M,) in ``dtype``.
    """
    _check_pair(mu, logvar)
    _check_matrix("z", z)
    if z.shape[1] != mu.shape[1]:
        raise ValueError(f"z has {z.shape[1]} latent dimensions but mu has {mu.shape[1]}")
    positive_int("chunk_size", chunk_size)
    mu, logvar, z = mu.to(dtype), logvar.to(dtype), z.to(dtype)
    k, n = mu.shape[1], mu.shape[0]
    prec = torch.exp(-logvar)                                                   # (N, k)
    const = k * LOG_2PI + logvar.sum(1) + (mu * mu * prec).sum(1)               # (N,)
    a, b = prec.T, (mu * prec).T                                                 # (k, N)
    out = []
    for start in range(0, z.shape[0], chunk_size):
        zc = z[start:start + chunk_size]
        quad = (zc * zc) @ a - 2.0 * (zc @ b) + const                            # (chunk, N)
        out.append(torch.logsumexp(-0.5 * quad, dim=1))
    return torch.cat(out) - math.log(n)


def _mean_and_se(t: torch.Tensor) -> tuple[float, float]:
    """Mean of ``t`` (N, S) and its standard error: within-data-point variances when S >= 2 (each z is
    an independent draw, the N components are fixed), else the plain standard error (conservative)."""
    n, s = t.shape
    if s >= 2:
        se = math.sqrt(t.var(1, correction=1).sum().item()) / (n * math.sqrt(s))
    else:
        se = t.std(correction=1).item() / math.sqrt(n) if n > 1 else math.nan
    return t.mean().item(), se


def elbo_surgery(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None,
                 chunk_size: int = 1024) -> dict[str, float]:
    """Split the average KL term: (1/N) sum_n KL(q(z|x_n) || p(z)) = I(n; z) + KL(q(z) || p(z)).

    Hoffman & Johnson (2016), Eq. 3; HEBAE Eq. 10 (chapter 01). p(z) = N(0, I), n is uniform on the
    N data points and q(z) = (1/N) sum_n q(z|x_n) the aggregate posterior. With z ~ q(z|x_n),
    ``n_samples`` (S) draws for every n, and log q(z) exact (``log_aggregate_posterior``):

    * mutual_info = mean[log q(z|x_n) - log q(z)],   marginal_kl = mean[log q(z) - log p(z)],
      with standard errors ``mutual_info_se``, ``marginal_kl_se``;
    * their sum, ``mc_avg_kl`` (standard error ``mc_avg_kl_se``), is an unbiased Monte Carlo estimate
      of ``avg_kl``, the closed-form average KL;
    * 0 <= I(n; z) <= log N (``log_n``): q(z) >= q(z|x_n) / N for every n and z, so each term
      log q(z|x_n) - log q(z) <= log N and the estimate never exceeds log N (round-off is clamped);
      I = log N when the posteriors do not overlap (z identifies n), I = 0 when they are all equal.
      The lower bound holds for I, not for every estimate (it may be slightly negative near 0).

    Cost: N S x N x k multiply-adds in float64, vectorised in chunks of ``chunk_size`` z's.
    """
    _check_pair(mu, logvar, min_rows=1)
    mu64, lv64 = mu.to(torch.float64), logvar.to(torch.float64)
    n, k = mu.shape
    z = draw(DiagonalNormal(mu64, lv64), positive_int("n_samples", n_samples), generator, log_prob=False)[0]
    z = z.transpose(0, 1)                                                       # (N, S, k)
    log_own = log_normal_diag(z, mu64.unsqueeze(1), lv64.unsqueeze(1))          # (N, S)
    log_qz = log_aggregate_posterior(z.reshape(-1, k), mu64, lv64, chunk_size).view(n, n_samples)
    log_pz = log_standard_normal(z)
    # log q(z|x_n) - log q(z) <= log N holds pointwise; the clamp only removes round-off (~1e-15)
    mi, mi_se = _mean_and_se((log_own - log_qz).clamp_max(math.log(n)))
    mkl, mkl_se = _mean_and_se(log_qz - log_pz)
    tot, tot_se = _mean_and_se(log_own - log_pz)
    return {"avg_kl": kl_std_normal(mu64, lv64).mean().item(), "mutual_info": mi, "marginal_kl": mkl,
            "mutual_info_se": mi_se, "marginal_kl_se": mkl_se, "mc_avg_kl": tot, "mc_avg_kl_se": tot_se,
            "log_n": math.log(n)}


# ---------------------------------------------------------------- MIC / TIC
def mic_tic_index(z, alpha: float = 0.6, c: float = 15, est: str = "mic_approx", rank_by=None,
                  tic_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MIC and TIC (Reshef et al. 2011; minepy) between the data-point index and each latent (HEBAE Fig. 2c,d).

    ``z`` is (N, S, k): S posterior samples of each of N data points (``posterior_samples``). For
    dimension j the pairs are (n, z[n, s, j]) for all n, s, scored with
    ``minepy.MINE(alpha, c, est).compute_score``. A deterministic encoder makes z a function of the
    index (high MIC); a posterior whose noise swamps the spread of the means gives a low MIC.

    MIC reads the index as an ordered number, so a code that is a function of n but not a monotone
    one scores below 1 when N is large compared with the grid (about (N S)^alpha cells). ``rank_by``
    (N, k), e.g. the posterior means, relabels the data points for dimension j in the order of
    rank_by[:, j], which makes a deterministic code score 1. TIC is minepy's unnormalised total
    (``tic_norm=True``: normalised to [0, 1]). Returns (mic (k,), tic (k,)) as float64 tensors.
    """
    try:
        import minepy
    except ImportError:
        raise ImportError("mic_tic_index needs minepy: pip install minepy") from None
    z = torch.as_tensor(z)
    if z.ndim != 3:
        raise ValueError(f"z must have shape (N, S, k) (S samples of each of N data points), got {tuple(z.shape)}")
    n, s, k = z.shape
    if n < 2:
        raise ValueError(f"z has N={n} data point(s): at least 2 are needed")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z contains NaN or Inf values: check the model or the samples")
    if not 0 < alpha <= 1:  # minepy's alpha > 1 means B = alpha cells, not used in the book
        raise ValueError(f"alpha must be in (0, 1] (the grid has (N S)^alpha cells), got {alpha!r}")
    zn = z.detach().cpu().to(torch.float64).numpy()
    ranks = None
    if rank_by is not None:
        rank_by = torch.as_tensor(rank_by)
        if tuple(rank_by.shape) != (n, k):
            raise ValueError(f"rank_by must have shape (N, k) = {(n, k)}, got {tuple(rank_by.shape)}")
        ranks = np.argsort(np.argsort(rank_by.detach().cpu().numpy(), axis=0, kind="stable"), axis=0, kind="stable")
    index = np.repeat(np.arange(n, dtype=np.float64), s)
    mine = minepy.MINE(alpha=alpha, c=c, est=est)
    mic, tic = np.empty(k), np.empty(k)
    for j in range(k):
        x = index if ranks is None else np.repeat(ranks[:, j].astype(np.float64), s)
        mine.compute_score(x, np.ascontiguousarray(zn[:, :, j].reshape(-1)))
        mic[j], tic[j] = mine.mic(), mine.tic(norm=tic_norm)
    return torch.from_numpy(mic), torch.from_numpy(tic)
