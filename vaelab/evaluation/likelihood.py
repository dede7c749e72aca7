"""Importance-sampled log-likelihood (Burda, Grosse & Salakhutdinov 2016), batched and vectorised.

    log p(x) ≈ logsumexp_s [log p(x | z_s) + log p(z_s) - log q(z_s | x)] - log S,   z_s ~ q(z | x),

the estimator behind the log-likelihoods of the VampPrior paper (S = 5,000) and Klushyn et al.
(chapters 02-04). It is a stochastic lower bound that increases with S towards log p(x) for any
proposal q whose support covers the posterior's; the mean of the same log weights is the
one-sample ELBO estimate (``return_elbo=True``), which lies below.

Cost. The encoder runs once per data point (the proposal's parameters are computed once and
sampled S times); the decoder runs on ``chunk`` samples of a batch of ``batch_size`` points at
a time, i.e. one (chunk * batch_size, k) matrix through the decoder, with no Python loop per
data point. Memory is about chunk * batch_size * D floats for the decoder output. The default
chunk sends about ``CHUNK_ROWS`` decoded images through the decoder per call: 1,000 on a CPU,
where the elementwise work on larger (rows x 784) tensors falls out of the cache and runs 2-3x
slower per image, and 32,768 on a GPU, where large calls keep the device busy. The draws and their
log q(z | x) come from ``vaelab.core.posteriors.draw`` (for Gaussians read off the noise, no second pass over
z); the VAE's ``log_joint`` broadcasts the data over the samples instead of copying them.

The proposal is the model's own ``posterior(x)`` (``vaelab.core.posteriors``: any ``Distribution`` with
batch shape (B,) and event shape (k,)), or another one through ``WithProposal``; the generative side
is the model's ``log_joint(x, z)`` = log p(x | z) + log p(z) for draws z (S, B, k). A point mass (the
WAE's deterministic encoder) has no density and raises an error.
"""
from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch
from torch import nn
from torch.distributions import Distribution

from vaelab.core.validate import positive_int
from vaelab.data.images import ImageData
from vaelab.core.modes import eval_mode
from vaelab.core.malloc import keep_freed_memory
from vaelab.core.posteriors import check_posterior, draw

__all__ = ["WithProposal", "log_importance_weights", "importance_log_likelihood", "ISResult", "default_chunk",
           "CHUNK_ROWS"]

CHUNK_ROWS = {"cpu": 1000, "default": 32768}


def default_chunk(batch: int, n_samples: int, device: torch.device) -> int:
    """Samples per decoder call so that batch * chunk is about ``CHUNK_ROWS`` images for the device."""
    rows = CHUNK_ROWS.get(torch.device(device).type, CHUNK_ROWS["default"])
    return max(1, min(n_samples, rows // max(batch, 1)))


class WithProposal(nn.Module):
    """``model`` with another importance-sampling proposal: ``posterior(x) = proposal_fn(model, x)``.

    The generative model (``prior``, ``log_joint``) is ``model``'s; only q changes.
    Any proposal with the support of the posterior gives an estimate of the same log p(x), so a
    better-matched proposal tightens the estimate without changing what it estimates (chapter 02
    evaluates HEBAE, whose own posterior becomes nearly deterministic, this way).
    """

    def __init__(self, model: nn.Module, proposal_fn):
        super().__init__()
        if not callable(proposal_fn):
            raise TypeError(f"proposal_fn must be a function (model, x) -> Distribution, got {type(proposal_fn).__name__}")
        self.model, self.proposal_fn = model, proposal_fn

    @property
    def prior(self):
        return self.model.prior

    def log_joint(self, x, z):
        return self.model.log_joint(x, z)

    def posterior(self, x) -> Distribution:
        return self.proposal_fn(self.model, x)


class ISResult(NamedTuple):
    """Per data point: the importance-sampled ``log_likelihood`` (N,) and the ``elbo`` (N,) from the same samples."""

    log_likelihood: torch.Tensor
    elbo: torch.Tensor


@torch.no_grad()
def log_importance_weights(model: nn.Module, x: torch.Tensor, n_samples: int = 5000, chunk: int | None = None,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x) for z_s ~ q(z|x): shape (B, S), float64.

    ``x`` is a batch (B, *data_shape) on the model's device. The proposal ``model.posterior(x)`` is
    built once; the S samples go through the decoder ``chunk`` at a time (default
    ``default_chunk``: about 1,000 decoded images per call on a CPU). Run without gradients.
    """
    n_samples = positive_int("n_samples", n_samples)
    b = x.shape[0]
    chunk = positive_int("chunk", default_chunk(b, n_samples, x.device) if chunk is None else chunk)
    q = check_posterior(model.posterior(x), b)
    prior = getattr(model, "prior", None)
    # the VampPrior's pseudo-input posteriors do not change during evaluation: compute them once
    cache = prior.cache_components() if callable(getattr(prior, "cache_components", None)) else contextlib.nullcontext()
    out = torch.empty((b, n_samples), dtype=torch.float64, device=x.device)
    with cache:
        for start in range(0, n_samples, chunk):
            c = min(chunk, n_samples - start)
            z, log_q = draw(q, c, generator)                                      # (c, B, k), (c, B)
            out[:, start:start + c] = (model.log_joint(x, z) - log_q).T.to(torch.float64)
    return out


def importance_log_likelihood(model: nn.Module, data: ImageData | torch.Tensor, n_samples: int = 5000,
                              batch_size: int = 10, chunk: int | None = None,
                              generator: torch.Generator | None = None, return_elbo: bool = False,
                              progress: bool = False) -> torch.Tensor | ISResult:
    """Importance-sampled log p(x) (Burda et al. 2016, Eq. 8 / App.) of every data point: (N,) float64.

    ``data``: an ``ImageData`` (images batched with ``data.batch``, so binarisation and scaling are
    those of the data set) or a float tensor (N, *data_shape). ``n_samples`` S draws of the proposal
    per point (5,000 in the VampPrior paper); ``batch_size`` data points at a time, ``chunk`` samples
    at a time (memory ~ batch_size * chunk * D floats; default ``default_chunk``).
    ``generator`` makes the draws reproducible. ``return_elbo=True`` returns ``ISResult(log_likelihood,
    elbo)``, the elbo being the mean of the same log weights (a one-sample ELBO estimate averaged over
    S draws). The model is evaluated in eval mode without gradients (its mode is restored after).
    """
    batch_size = positive_int("batch_size", batch_size)
    if isinstance(data, ImageData):
        n, get = len(data), data.batch
    elif isinstance(data, torch.Tensor):
        if not data.is_floating_point():
            raise TypeError(f"data as a tensor must be floating point, got {data.dtype}: wrap uint8 images in "
                            "vaelab.data.ImageData")
        n, get = data.shape[0], (lambda idx: data[idx])
    else:
        raise TypeError(f"data must be a vaelab.data.ImageData or a float tensor, got {type(data).__name__}")
    if n == 0:
        raise ValueError("data holds no data points")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = data.device if isinstance(data, (ImageData, torch.Tensor)) else torch.device("cpu")
    ll = torch.empty(n, dtype=torch.float64)
    elbo = torch.empty(n, dtype=torch.float64)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="log-likelihood", unit="batch")
    if torch.device(device).type == "cpu":
        keep_freed_memory()  # chunks of decoded images reuse freed memory instead of faulting in new pages
    with eval_mode(model):
        for start in starts:
            idx = torch.arange(start, min(start + batch_size, n))
            x = get(idx.to(data.device)).to(device)
            lw = log_importance_weights(model, x, n_samples, chunk, generator)
            if not bool(torch.isfinite(lw).all()):
                raise ValueError(f"non-finite log importance weights for data points {start}..{start + len(idx) - 1}: "
                                 "check the model (a diverged run) and the data (range, NaN)")
            ll[start:start + len(idx)] = (torch.logsumexp(lw, dim=1) - math.log(n_samples)).cpu()
            elbo[start:start + len(idx)] = lw.mean(1).cpu()
    return ISResult(ll, elbo) if return_elbo else ll
