"""Priors p(z) with ``log_prob(z)`` of shape (batch,) and ``sample(n)`` of shape (n, latent).

Chapter 00 uses the standard normal; the mixture of Gaussians, the VampPrior (chapter 03)
and the hierarchical VHP prior (chapter 04) follow the same two-method interface. A prior whose
KL from a diagonal Gaussian posterior has a closed form also offers ``kl_per_dim(mu, logvar)``
(the standard normal: chapter 00, Eq. 7 of Kingma and Welling); the VAE uses it where present,
else the single-sample estimate log q(z|x) - log p(z).
"""
from __future__ import annotations

import torch
from torch import nn

from vaelab.core.validate import positive_int
from vaelab.core.densities import kl_std_normal_per_dim, log_standard_normal
from vaelab.core.posteriors import normal

__all__ = ["StandardNormal"]


class StandardNormal(nn.Module):
    """p(z) = N(0, I) in ``latent_dim`` dimensions (no parameters)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        positive_int("latent_dim", latent_dim)
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # follows .to(device)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return log_standard_normal(z)

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, diag exp(logvar)) || N(0, I)) per dimension, in closed form: (batch, latent)."""
        return kl_std_normal_per_dim(mu, logvar)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return normal((n, self.latent_dim), self._anchor, generator)
