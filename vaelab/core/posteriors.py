"""q(z | x) of every model as one ``torch.distributions.Distribution``, and the one way to sample it.

Every model answers ``posterior(x)`` with a distribution of batch shape (B,) and event shape (k,):

* ``DiagonalNormal(loc, logvar)``: N(loc, diag exp(logvar)), the VAE's posterior (Kingma & Welling
  2014, Sec. 3 / App. C.2; chapter 00) and HEBAE's in its code form (chapter 02);
* ``ScaledNormal(loc, log_scale, L)``: a ``torch.distributions.MultivariateNormal`` with scale_tril
  diag(exp(log_scale)) L, HEBAE's exact posterior N(mu, diag(sigma) Sigma diag(sigma)) (HEBAE Eq. 8;
  chapter 02), which keeps log sigma so that its KL and variances stay right where sigma underflows;
* ``PointMass(loc)``: the WAE's deterministic encoder (Tolstikhin et al. 2018; chapter 01);
* ``TwoLevel(top, conditional)``: q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x) of the two-level VAE
  (Tomczak & Welling 2018, Eq. 11; chapter 03) over z = [z1, z2].

Closed-form KLs go through ``torch.distributions.kl_divergence``: torch's own pairs, plus
``DiagonalNormal`` against ``DiagonalNormal`` and against ``MultivariateNormal`` with the book's
closed forms (``vaelab.core.densities``, chapters 00 and 02). Pairs without a closed form (the HVAE's
joint, the VampPrior) are Monte Carlo estimates in the models' ``forward``.

``draw(q, n, generator)`` is the one way randomness enters sampling: n draws z (n, B, k) and their
log q(z) (n, B). For the Gaussians z = loc + L eps with eps ~ N(0, I) (L = diag(scale) or
scale_tril) drawn by ``normal`` on the generator's device, and log q(z) = -1/2 |eps|^2 - sum log
diag L - k/2 log 2 pi is read off the eps that made z (L^{-1} (z - loc) = eps), without a second
pass over z. Without a generator the draws are the very numbers ``q.sample`` returns.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.distributions import (Distribution, Independent, MultivariateNormal, Normal, constraints, kl_divergence,
                                 register_kl)

from vaelab.core.densities import LOG_2PI, kl_normal_diag, kl_normal_full

__all__ = ["DiagonalNormal", "ScaledNormal", "PointMass", "TwoLevel", "draw", "normal", "reparameterise", "over_draws",
           "marginals", "check_posterior", "standard_normal_like"]


def normal(shape, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal numbers of ``shape`` in ``like``'s dtype and device, drawn on the generator's device."""
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)


def reparameterise(loc: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = loc + exp(logvar / 2) * eps: a draw of N(loc, diag exp(logvar)) from standard normal ``eps``
    (Kingma & Welling 2014, Sec. 2.4)."""
    return loc + torch.exp(0.5 * logvar) * eps


def subnormal(t: torch.Tensor) -> torch.Tensor:
    """Where ``t`` (non-negative: a scale or a variance) is 0 or subnormal in its float type, so that its log is
    -inf or has lost digits (float32 keeps full precision only above about 1.2e-38 = e^-87.3)."""
    return t < torch.finfo(t.dtype).tiny


def over_draws(x: torch.Tensor, s: int) -> torch.Tensor:
    """``x`` (B, ...) seen as (s, B, ...) without a copy, to pair a batch with s draws of its codes."""
    return x.unsqueeze(0).expand(s, *x.shape)


class DiagonalNormal(Independent):
    """N(loc, diag exp(logvar)) over the last axis, kept with its ``logvar`` (batch shape loc.shape[:-1]).

    Its scale exp(logvar / 2) is subnormal in float32 for logvar < -174.7 and 0 below -206 (HEBAE's code
    form drives sigma towards 0, chapter 02), so its log loses digits or is -inf; the KL against a
    ``MultivariateNormal`` and the log q(z) of ``draw`` then take those entries from ``logvar`` (the KL in
    float64), and are torch's formulas bit for bit everywhere else.
    """

    def __init__(self, loc: torch.Tensor, logvar: torch.Tensor):
        super().__init__(Normal(loc, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)
        self.logvar = logvar

    @property
    def loc(self) -> torch.Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> torch.Tensor:
        return self.base_dist.scale


class ScaledNormal(MultivariateNormal):
    """N(loc, diag(s) L L^T diag(s)) with s = exp(log_scale): HEBAE's exact posterior (Eq. 8, chapter 02,
    with L the population's Cholesky factor), a ``MultivariateNormal`` with scale_tril = diag(s) L.

    Training drives HEBAE's sigma towards 0 (log sigma down to -92 at k = 5 in chapter 02's study), and
    float32 holds full precision only above e^-87.3 and nothing below about e^-103: the variance s^2 turns
    subnormal once s < e^-43.6 and 0 once s < e^-52, the scale s (times L_jj) likewise below e^-87.3 and
    e^-103, although log_scale holds them. ``in_float64()`` is the same distribution in float64, where they
    do not underflow; ``marginals``, the KL against a ``MultivariateNormal`` and the log q(z) of ``draw``
    use it for the entries whose variance or scale came out subnormal or 0 in the tensor's own float type,
    and are bit for bit torch's own everywhere else.
    """

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, tril: torch.Tensor):
        self.log_scale, self.tril = log_scale, tril
        super().__init__(loc, scale_tril=torch.exp(log_scale).unsqueeze(-1) * tril, validate_args=False)

    def in_float64(self) -> MultivariateNormal:
        """This distribution in float64 (a plain ``MultivariateNormal``)."""
        tril = torch.exp(self.log_scale.double()).unsqueeze(-1) * self.tril.double()
        return MultivariateNormal(self.loc.double(), scale_tril=tril, validate_args=False)


class PointMass(Distribution):
    """The point mass at ``loc`` (batch shape loc.shape[:-1], event shape (k,)): a deterministic encoder.

    Its draws are copies of ``loc``; it has no density, so ``log_prob`` raises (there is nothing to
    importance-sample with).
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor):
        self.loc = loc
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.loc.expand(torch.Size(sample_shape) + self.loc.shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise ValueError("q(z|x) is a point mass (a deterministic encoder, such as the WAE's): it has no density "
                         "to importance-sample with; evaluate with another posterior (vaelab.evaluation.likelihood.WithProposal)")


class TwoLevel(Distribution):
    """q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x) over z = [z1, z2] (event shape (k1 + k2,)).

    ``top`` is q(z2 | x) (a ``DiagonalNormal``, batch shape (B,)); ``conditional(z2)`` returns
    q(z1 | x, z2) for z2 of shape (..., B, k2). ``rsample`` draws z2, then z1 given it;
    ``log_prob`` is log q(z1 | x, z2) + log q(z2 | x). ``mean`` is the plug-in mean: the mean of
    q(z2 | x) and the mean of q(z1 | x, z2) at it (E[z1] itself has no closed form).
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, top: DiagonalNormal, conditional: Callable[[torch.Tensor], Distribution], z1_dim: int):
        self.top, self.conditional, self.z1_dim = top, conditional, z1_dim
        super().__init__(top.batch_shape, torch.Size([z1_dim + top.event_shape[0]]), validate_args=False)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z1, z2) of z = [z1, z2]."""
        return z[..., :self.z1_dim], z[..., self.z1_dim:]

    @property
    def mean(self) -> torch.Tensor:
        z2 = self.top.mean
        return torch.cat([self.conditional(z2).mean, z2], -1)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        z2 = self.top.rsample(sample_shape)
        return torch.cat([self.conditional(z2).rsample(), z2], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.split(value)
        return self.conditional(z2).log_prob(z1) + self.top.log_prob(z2)


def draw(q: Distribution, n: int, generator: torch.Generator | None = None,
         log_prob: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n draws z (n, *batch, k) of ``q`` and their log q(z) (n, *batch) (None for ``log_prob=False``).

    Gaussians (``DiagonalNormal``, any ``Independent`` ``Normal``, ``MultivariateNormal``): z = loc + L eps,
    log q read off eps (module docstring). ``PointMass``: copies of loc. ``TwoLevel``: z2 from the top
    factor, then z1 from the conditional at it (the noise of z2 first). Any other distribution: its own
    sampler under a seed drawn from ``generator``, and ``q.log_prob``.
    """
    shape = (n, *q.batch_shape, *q.event_shape)
    if isinstance(q, PointMass):
        z = q.rsample((n,))
        return z, (q.log_prob(z) if log_prob else None)
    if isinstance(q, TwoLevel):
        z2, log_q2 = draw(q.top, n, generator, log_prob)
        z1, log_q1 = draw(q.conditional(z2), 1, generator, log_prob)
        z = torch.cat([z1[0], z2], -1)
        return z, (log_q1[0] + log_q2 if log_prob else None)
    if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
        loc, scale = q.base_dist.loc, q.base_dist.scale
        eps = normal(shape, loc, generator)
        z = loc + scale * eps
        log_det = torch.log(scale).sum(-1) if log_prob else None
        if log_prob and isinstance(q, DiagonalNormal):
            bad = subnormal(scale).any(-1)  # the scale fell below the float range: read it off logvar
            if bool(bad.any()):
                log_det = torch.where(bad, 0.5 * q.logvar.sum(-1), log_det)
    elif isinstance(q, MultivariateNormal):
        loc, tril = q.loc, q.scale_tril
        eps = normal(shape, loc, generator)
        z = loc + (tril @ eps.unsqueeze(-1)).squeeze(-1)
        log_det = torch.log(torch.diagonal(tril, dim1=-2, dim2=-1)).sum(-1) if log_prob else None
        if log_prob and isinstance(q, ScaledNormal):
            bad = subnormal(torch.diagonal(tril, dim1=-2, dim2=-1)).any(-1)
            if bool(bad.any()):
                exact = torch.log(torch.diagonal(q.in_float64().scale_tril, dim1=-2, dim2=-1)).sum(-1)
                log_det = torch.where(bad, exact.to(log_det.dtype), log_det)
    else:
        if generator is None:
            z = q.sample((n,))
        else:  # its own sampler under a seed drawn from the generator
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
                torch.manual_seed(seed)
                z = q.sample((n,))
        return z, (q.log_prob(z) if log_prob else None)
    if not log_prob:
        return z, None
    return z, -0.5 * (eps * eps).sum(-1) - log_det - 0.5 * shape[-1] * LOG_2PI


def marginals(q: Distribution) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean, log variance) of each latent under ``q``, for per-dimension diagnostics (chapters 01-02).

    The log variance is None where the marginals are not Gaussians with a variance: a point mass
    (mean = the code) and the HVAE's joint (plug-in mean). A full-covariance Gaussian gives the
    diagonal of its covariance (its correlations are not in it); a ``ScaledNormal`` also where that
    variance underflows the tensor's float type (then from ``in_float64``).
    """
    if isinstance(q, DiagonalNormal):
        return q.loc, q.logvar
    if isinstance(q, (MultivariateNormal, Independent)):
        var = q.variance
        logvar = torch.log(var)
        if isinstance(q, ScaledNormal) and bool(subnormal(var).any()):
            # a variance below the float range (HEBAE's sigma of e^-60 squares to 0 in float32, one of
            # e^-48 to a subnormal): the same number from the same distribution in float64
            exact = torch.log(q.in_float64().variance).to(logvar.dtype)
            logvar = torch.where(subnormal(var), exact, logvar)
        return q.mean, logvar
    return q.mean, None


def check_posterior(q, batch: int) -> Distribution:
    """``q`` if it is a ``Distribution`` with batch shape (batch,) and event shape (k,), else a ``ValueError``."""
    if not isinstance(q, Distribution) or len(q.batch_shape) != 1 or len(q.event_shape) != 1 \
            or q.batch_shape[0] != batch:
        what = f"batch shape {tuple(q.batch_shape)}, event shape {tuple(q.event_shape)}" \
            if isinstance(q, Distribution) else type(q).__name__
        raise ValueError(f"the posterior of a batch of {batch} must be a Distribution with batch shape "
                         f"({batch},) and event shape (k,), got {what}")
    return q


@register_kl(DiagonalNormal, DiagonalNormal)
def _kl_diagonal_diagonal(q: DiagonalNormal, p: DiagonalNormal) -> torch.Tensor:
    return kl_normal_diag(q.loc, q.logvar, p.loc, p.logvar)


@register_kl(DiagonalNormal, MultivariateNormal)
def _kl_diagonal_full(q: DiagonalNormal, p: MultivariateNormal) -> torch.Tensor:
    """The closed form (chapter 02) with L_q = diag(scale); entries whose scale is subnormal or 0 (the code
    form of HEBAE at log sigma < -87 in float32) again in float64 from ``logvar``."""
    kl = kl_normal_full(q.loc, torch.diag_embed(q.scale), p.loc, p.scale_tril)
    bad = ~torch.isfinite(kl) | subnormal(q.scale).any(-1)
    if bool(bad.any()):
        scale64 = torch.exp(0.5 * q.logvar.double())
        kl64 = kl_normal_full(q.loc.double(), torch.diag_embed(scale64), p.loc.double(), p.scale_tril.double())
        kl = torch.where(bad, kl64.to(kl.dtype), kl)
    return kl


@register_kl(ScaledNormal, MultivariateNormal)
def _kl_scaled_full(q: ScaledNormal, p: MultivariateNormal) -> torch.Tensor:
    """torch's closed form for two ``MultivariateNormal``; entries whose scale_tril has a subnormal or 0 on
    its diagonal (log det imprecise or -inf) again in float64 (``ScaledNormal``)."""
    kl = kl_divergence(MultivariateNormal(q.loc, scale_tril=q.scale_tril, validate_args=False), p)
    bad = ~torch.isfinite(kl) | subnormal(torch.diagonal(q.scale_tril, dim1=-2, dim2=-1)).any(-1)
    if bool(bad.any()):
        p64 = MultivariateNormal(p.loc.double(), scale_tril=p.scale_tril.double(), validate_args=False)
        kl = torch.where(bad, kl_divergence(q.in_float64(), p64).to(kl.dtype), kl)
    return kl


def standard_normal_like(q: Distribution) -> MultivariateNormal:
    """N(0, I) in q's event dimension, dtype and device (the prior of chapters 00-02 as a distribution)."""
    k = q.event_shape[0]
    loc = q.mean
    return MultivariateNormal(torch.zeros(k, dtype=loc.dtype, device=loc.device),
                              scale_tril=torch.eye(k, dtype=loc.dtype, device=loc.device), validate_args=False)
