"""The Wasserstein auto-encoder WAE-MMD (Tolstikhin et al. 2018) in the objective ``rec + weight * reg``.

Chapter 01 (``book/01_vae_collapse``) introduces it as the deterministic alternative to the VAE
that HEBAE compares against. The encoder is deterministic, z = f(x), so no posterior variance
can be inflated towards the prior's; instead the *aggregate* of the codes is pushed to p(z):

* ``rec`` = c(x, G(z)), the negative log-likelihood -log p(x | z) of the VAE's decoder (Bernoulli
  cross-entropy on MNIST, as in HEBAE's code; squared error up to constants for ``"gaussian"``);
* ``reg`` = MMD^2(q_Z, p_Z) estimated on the batch: ``mmd_imq(z, z_prior)`` with as many prior
  draws as codes (Tolstikhin et al. 2018, Algorithm 2, the penalty D_Z(Q_Z, P_Z) with weight lambda;
  HEBAE's code uses lambda = 10 on MNIST). One number per batch, shape ().

The decoder side (``decode``, ``mean_image``, ``log_likelihood``, ``sample``, ``reconstruct``) and
the constructor's checks are the VAE's: ``WAE`` subclasses ``vaelab.models.vae.VAE`` and overrides only
``encode`` (z, not (mu, logvar)), ``posterior`` (a ``vaelab.core.posteriors.PointMass`` at z) and
``forward``. Code that must tell a deterministic encoder from a Gaussian one reads the posterior,
never the model's class.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from vaelab.objectives.mmd import IMQ_SCALES, _as_scales, mmd_imq
from vaelab.core.nets import mlp
from vaelab.core.posteriors import PointMass
from vaelab.models.vae import VAE

__all__ = ["WAE", "mlp_wae"]


class WAE(VAE):
    """Deterministic encoder z = encoder(x) (latent_dim numbers), the VAE's decoder, MMD to the prior.

    Arguments are those of ``VAE``, except that ``encoder`` maps flattened x to ``latent_dim``
    numbers (not 2 * latent_dim), plus ``scales`` of the IMQ kernel. The prior only needs
    ``sample(n)`` (default ``StandardNormal(latent_dim)``).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, data_shape: Sequence[int],
                 likelihood: str = "bernoulli", obs_sigma: float = 1.0, prior: nn.Module | None = None,
                 scales: Sequence[float] = IMQ_SCALES):
        super().__init__(encoder, decoder, latent_dim, data_shape, likelihood=likelihood, obs_sigma=obs_sigma,
                         prior=prior)
        self.scales = _as_scales(scales)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code z = f(x), shape (batch, latent)."""
        return self.encoder(x.flatten(1))

    def posterior(self, x: torch.Tensor) -> PointMass:
        """q(z | x): the point mass at the code z = f(x)."""
        self._check_input(x)
        return PointMass(self.encode(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_input(x)
        if x.shape[0] < 2:
            raise ValueError(f"x has {x.shape[0]} image(s): the WAE's MMD needs a batch of at least 2 "
                             "(a last batch of 1 image: change batch_size or the number of images)")
        z = self.encode(x)
        rec = -self.log_likelihood(x, self.decode(z))
        z_prior = self.prior.sample(z.shape[0]).to(z.dtype)
        # NaN/Inf reach the loss and the training loop stops on them; no device sync here
        reg = mmd_imq(z, z_prior, self.scales, check_finite=False)
        return {"rec": rec, "reg": reg, "z": z, "z_prior": z_prior}


def mlp_wae(latent_dim: int = 20, data_shape: Sequence[int] = (1, 28, 28), enc_hidden: Sequence[int] = (784, 800),
            dec_hidden: Sequence[int] = (800, 800), likelihood: str = "bernoulli", **kwargs) -> WAE:
    """The HEBAE App. B.1 MLP as a WAE: encoder D-784-800-k (deterministic), decoder k-800-800-D (ReLU)."""
    d = math.prod(data_shape)
    enc = mlp([d, *enc_hidden, latent_dim])
    dec = mlp([latent_dim, *dec_hidden, d])
    return WAE(enc, dec, latent_dim, data_shape, likelihood=likelihood, **kwargs)
