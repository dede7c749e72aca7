"""Log-densities and Gaussian KL divergences, summed over the last (latent or pixel) axis.

Shapes follow torch.distributions: inputs are ``(..., dim)`` and results ``(...)``.
Derived in chapter 00 (Bernoulli/Gaussian likelihoods, the closed-form KL of Kingma &
Welling 2014, App. B) and chapter 02 (full-covariance KL, HEBAE Theorem 1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "log_bernoulli",
    "log_normal_diag",
    "log_standard_normal",
    "kl_normal_diag",
    "kl_std_normal",
    "kl_std_normal_per_dim",
    "kl_normal_full",
]

LOG_2PI = math.log(2.0 * math.pi)


def _sum_last(t: torch.Tensor, dims: int) -> torch.Tensor:
    return t.flatten(-dims).sum(-1) if dims > 1 else t.sum(-1)


def log_bernoulli(x: torch.Tensor, logits: torch.Tensor, event_dims: int = 1) -> torch.Tensor:
    """log p(x) = sum x log p + (1 - x) log(1 - p), p = sigmoid(logits), over the last ``event_dims`` axes.

    ``x`` may be grey values in [0, 1] (the continuous relaxation HEBAE uses on MNIST) or {0, 1}.
    """
    return -_sum_last(F.binary_cross_entropy_with_logits(logits, x, reduction="none"), event_dims)


def log_normal_diag(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, event_dims: int = 1) -> torch.Tensor:
    """log N(x | mean, diag(exp(logvar))), summed over the last ``event_dims`` axes."""
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    elem = -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))
    return _sum_last(elem.expand(torch.broadcast_shapes(x.shape, elem.shape)), event_dims)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z | 0, I) over the last axis."""
    return -0.5 * (LOG_2PI * z.shape[-1] + (z**2).sum(-1))


def kl_normal_diag(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, diag e^{logvar_q}) || N(mu_p, diag e^{logvar_p})) summed over the last axis.

    = 1/2 sum_j [ e^{lq - lp} + (mu_q - mu_p)^2 e^{-lp} - 1 + lp - lq ].
    """
    return 0.5 * (torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1.0 + logvar_p - logvar_q).sum(-1)


def kl_std_normal_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-dimension KL(N(mu_j, sigma_j^2) || N(0, 1)) = 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), shape (..., d).

    The KL term of the VAE (Kingma & Welling 2014, App. B; HEBAE Eq. 4 with the factor 1/2
    that the paper drops).
    """
    return 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar)


def kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag e^{logvar}) || N(0, I)) summed over the last axis."""
    return kl_std_normal_per_dim(mu, logvar).sum(-1)


def kl_normal_full(mu_q, scale_tril_q, mu_p=None, scale_tril_p=None) -> torch.Tensor:
    """KL(N(mu_q, L_q L_q^T) || N(mu_p, L_p L_p^T)); the prior defaults to N(0, I).

    = 1/2 [ tr(S_p^{-1} S_q) + (mu_p - mu_q)^T S_p^{-1} (mu_p - mu_q) - d + log|S_p| - log|S_q| ].
    """
    d = mu_q.shape[-1]
    logdet_q = 2.0 * torch.log(torch.diagonal(scale_tril_q, dim1=-2, dim2=-1)).sum(-1)
    if scale_tril_p is None:
        diff = mu_q if mu_p is None else mu_q - mu_p
        trace = (scale_tril_q**2).sum((-2, -1))
        return 0.5 * (trace + (diff**2).sum(-1) - d - logdet_q)
    diff = mu_q - (0.0 if mu_p is None else mu_p)
    shape = torch.broadcast_shapes(scale_tril_q.shape, scale_tril_p.shape)
    lp = scale_tril_p.expand(shape)
    m = torch.linalg.solve_triangular(lp, scale_tril_q.expand(shape), upper=False)
    v = torch.linalg.solve_triangular(lp, diff.unsqueeze(-1).expand(shape[:-1] + (1,)), upper=False).squeeze(-1)
    logdet_p = 2.0 * torch.log(torch.diagonal(scale_tril_p, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * ((m**2).sum((-2, -1)) + (v**2).sum(-1) - d + logdet_p - logdet_q)
