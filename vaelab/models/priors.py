"""Priors p(z) with ``log_prob(z)`` of shape (batch,) and ``sample(n)`` of shape (n, latent).

Chapter 00 uses the standard normal; the mixture of Gaussians, the VampPrior (chapter 03)
and the hierarchical VHP prior (chapter 04) follow the same two-method interface.
"""
from __future__ import annotations

import torch
from torch import nn

from vaelab.core.validate import positive_int
from vaelab.core.densities import log_standard_normal
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

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return normal((n, self.latent_dim), self._anchor, generator)
