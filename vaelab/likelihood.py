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
slower per image, and 32,768 on a GPU, where large calls keep the device busy. For the Gaussian
proposals the draws are z = loc + L eps and log q(z | x) is computed from eps (no second pass over z);
the data are broadcast over the samples, not copied (for models with the VAE's ``log_likelihood``).

Proposals (``proposal_for``): a model's own ``proposal(x)`` method when it has one (any
``torch.distributions.Distribution`` with batch shape (B,) and event shape (k,)); HEBAE's
full-covariance posterior N(mu(x), diag(sigma) Sigma_pop diag(sigma)) (``MultivariateNormal``, after
``population_stats``); the VAE's diagonal Gaussian N(mu(x), diag exp(logvar(x))) (``Independent``
``Normal``). A deterministic encoder (the WAE) has no density and raises an error.
The model must also offer ``decode(z)``, ``log_likelihood(x, decoder_output)`` and ``prior.log_prob(z)``.
"""
from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from .data import ImageData
from .hebae import HEBAE
from .malloc import keep_freed_memory
from .vae import VAE

__all__ = ["WithProposal", "proposal_for", "log_importance_weights", "importance_log_likelihood", "ISResult",
           "default_chunk", "CHUNK_ROWS"]

CHUNK_ROWS = {"cpu": 1000, "default": 32768}


def default_chunk(batch: int, n_samples: int, device: torch.device) -> int:
    """Samples per decoder call so that batch * chunk is about ``CHUNK_ROWS`` images for the device."""
    rows = CHUNK_ROWS.get(torch.device(device).type, CHUNK_ROWS["default"])
    return max(1, min(n_samples, rows // max(batch, 1)))


class WithProposal(nn.Module):
    """``model`` with another importance-sampling proposal: ``proposal(x) = proposal_fn(model, x)``.

    The generative model (``prior``, ``decode``, ``log_likelihood``) is ``model``'s; only q changes.
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

    def decode(self, z):
        return self.model.decode(z)

    def log_likelihood(self, x, out):
        return self.model.log_likelihood(x, out)

    def proposal(self, x) -> Distribution:
        return self.proposal_fn(self.model, x)


class ISResult(NamedTuple):
    """Per data point: the importance-sampled ``log_likelihood`` (N,) and the ``elbo`` (N,) from the same samples."""

    log_likelihood: torch.Tensor
    elbo: torch.Tensor


def proposal_for(model: nn.Module, x: torch.Tensor) -> Distribution:
    """The proposal q(z | x) for a batch ``x``: batch shape (B,), event shape (k,).

    ``model.proposal(x)`` if the model defines it; HEBAE: ``MultivariateNormal(mu, scale_tril)`` of
    ``model.posterior(x)``; a model whose ``encode`` returns (mu, logvar) (the VAE):
    ``Independent(Normal(mu, exp(logvar / 2)), 1)``.
    """
    if callable(getattr(model, "proposal", None)):
        q = model.proposal(x)
    elif isinstance(model, HEBAE):
        mu, tril = model.posterior(x)
        q = MultivariateNormal(mu, scale_tril=tril, validate_args=False)
    else:
        out = model.encode(x)
        if isinstance(out, torch.Tensor):
            raise ValueError(f"{type(model).__name__}.encode returns a code z (a deterministic encoder, such as the "
                             "WAE's): it has no density q(z|x) to importance-sample with; give the model a "
                             "proposal(x) method returning a torch.distributions.Distribution")
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{type(model).__name__}.encode returned {type(out).__name__}: expected (mu, logvar); "
                            "or give the model a proposal(x) method")
        mu, logvar = out
        q = Independent(Normal(mu, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)
    if not isinstance(q, Distribution) or len(q.batch_shape) != 1 or len(q.event_shape) != 1 \
            or q.batch_shape[0] != x.shape[0]:
        what = f"batch shape {tuple(q.batch_shape)}, event shape {tuple(q.event_shape)}" \
            if isinstance(q, Distribution) else type(q).__name__
        raise ValueError(f"the proposal for a batch of {x.shape[0]} must be a Distribution with batch shape "
                         f"({x.shape[0]},) and event shape (k,), got {what}")
    return q


def _normal(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal numbers of ``shape`` in ``like``'s dtype and device (drawn on the generator's device)."""
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)


def _draw(q: Distribution, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws z (n, B, k) of q and their log q(z) (n, B).

    For the Gaussian proposals z = loc + L eps with eps ~ N(0, I) (L = diag(scale) or scale_tril), and
    log q(z) = -1/2 |eps|^2 - sum log diag L - k/2 log 2 pi: the density at z, read off the eps that made it
    (L^{-1} (z - loc) = eps), without a second pass over z. Without ``generator`` the draws are the very
    numbers ``q.sample`` returns (torch.normal is N(0, 1) times scale plus loc), with it they are
    reproducible. Any other distribution: ``q.sample`` (under a seed drawn from ``generator``) and
    ``q.log_prob``.
    """
    shape = (n, *q.batch_shape, *q.event_shape)
    if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
        loc, scale = q.base_dist.loc, q.base_dist.scale
        eps = _normal(shape, loc, generator)
        z = loc + scale * eps
        log_det = torch.log(scale).sum(-1)
    elif isinstance(q, MultivariateNormal):
        loc, tril = q.loc, q.scale_tril
        eps = _normal(shape, loc, generator)
        z = loc + (tril @ eps.unsqueeze(-1)).squeeze(-1)
        log_det = torch.log(torch.diagonal(tril, dim1=-2, dim2=-1)).sum(-1)
    else:
        if generator is None:
            z = q.sample((n,))
        else:  # its own sampler under a seed drawn from the generator
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
                torch.manual_seed(seed)
                z = q.sample((n,))
        return z, q.log_prob(z)
    k = shape[-1]
    log_q = -0.5 * (eps * eps).sum(-1) - log_det - 0.5 * k * math.log(2 * math.pi)
    return z, log_q


def _broadcasts_data(model: nn.Module) -> bool:
    """Whether ``model.log_likelihood`` is the VAE's, which takes (c, B, *data_shape) tensors (a broadcast x)."""
    target = model.model if isinstance(model, WithProposal) else model
    return getattr(type(target), "log_likelihood", None) is VAE.log_likelihood


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


@torch.no_grad()
def log_importance_weights(model: nn.Module, x: torch.Tensor, n_samples: int = 5000, chunk: int | None = None,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x) for z_s ~ q(z|x): shape (B, S), float64.

    ``x`` is a batch (B, *data_shape) on the model's device. The proposal is built once
    (``proposal_for``); the S samples go through the decoder ``chunk`` at a time (default
    ``default_chunk``: about 1,000 decoded images per call on a CPU). Run without gradients.
    """
    n_samples = _check_int("n_samples", n_samples)
    if callable(getattr(model, "log_importance_weights", None)):  # models with a joint proposal (the HVAE)
        return model.log_importance_weights(x, n_samples, chunk=chunk, generator=generator)
    b = x.shape[0]
    if chunk is None:
        chunk = default_chunk(b, n_samples, x.device)
    chunk = _check_int("chunk", chunk)
    q = proposal_for(model, x)
    broadcast = b > 1 and _broadcasts_data(model)
    out = torch.empty((b, n_samples), dtype=torch.float64, device=x.device)
    for start in range(0, n_samples, chunk):
        c = min(chunk, n_samples - start)
        z, log_q = _draw(q, c, generator)                                        # (c, B, k), (c, B)
        flat = z.reshape(c * b, -1)
        log_prior = model.prior.log_prob(flat).view(c, b)
        decoded = model.decode(flat)
        xs = x.unsqueeze(0).expand(c, *x.shape)  # a view: x is not copied c times
        if broadcast:
            log_lik = model.log_likelihood(xs, decoded.view(c, b, *decoded.shape[1:]))
        else:  # a reshape that copies x only when b > 1
            log_lik = model.log_likelihood(xs.reshape(c * b, *x.shape[1:]), decoded).view(c, b)
        out[:, start:start + c] = (log_lik + log_prior - log_q).T.to(torch.float64)
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
    batch_size = _check_int("batch_size", batch_size)
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
    was_training = model.training
    model.eval()
    prior = getattr(model, "prior", None)
    # the VampPrior's pseudo-input posteriors do not change during evaluation: compute them once
    cache = prior.cache_components() if callable(getattr(prior, "cache_components", None)) else contextlib.nullcontext()
    try:
        with cache, torch.no_grad():
            for start in starts:
                idx = torch.arange(start, min(start + batch_size, n))
                x = get(idx.to(data.device)).to(device)
                lw = log_importance_weights(model, x, n_samples, chunk, generator)
                if not bool(torch.isfinite(lw).all()):
                    raise ValueError(f"non-finite log importance weights for data points {start}..{start + len(idx) - 1}: "
                                     "check the model (a diverged run) and the data (range, NaN)")
                ll[start:start + len(idx)] = (torch.logsumexp(lw, dim=1) - math.log(n_samples)).cpu()
                elbo[start:start + len(idx)] = lw.mean(1).cpu()
    finally:
        model.train(was_training)
    return ISResult(ll, elbo) if return_elbo else ll
