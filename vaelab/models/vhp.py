"""The variational hierarchical prior (VHP) of Klushyn et al. (2019, Eqs. 7-9), derived in chapter 04.

p(z) = int p(z | zeta) p(zeta) dzeta with p(zeta) = N(0, I) and p(z | zeta) = N(mu(zeta), diag sigma^2(zeta))
from an MLP; a variational q(zeta | z) = N(m(z), diag s^2(z)) from a second MLP. ``log p(z)`` has no
closed form; ``VHPPrior.log_prob`` returns the importance-weighted lower bound with K samples
zeta_k ~ q(zeta | z):

    log p(z) >= log (1/K) sum_k p(z | zeta_k) p(zeta_k) / q(zeta_k | z),

which rises with K towards log p(z) (Burda et al. 2016) and equals it for every K when q(zeta | z)
is the exact posterior p(zeta | z). Inside ``VAE`` the KL term becomes the one-sample estimate
log q(z | x) - log_prob(z), an estimate of an *upper* bound on KL(q(z|x) || p(z)): the bound F of
Klushyn et al.'s Eq. 8. Eq. 9 puts F into the Lagrangian (L_VHP), and Eq. 10 is the problem
solved with it.

Parameters are named ``p_net.*`` and ``q_net.*``; in a ``VAE(prior=VHPPrior(...))`` they are
``prior.p_net.*`` and ``prior.q_net.*``: the prior's parameters (Theta, Phi), which REWO's initial phase
keeps fixed (``freeze_prior``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from vaelab.core.validate import positive_int
from vaelab.core.densities import LOG_2PI
from vaelab.core.nets import mlp
from vaelab.core.posteriors import normal, reparameterise
from vaelab.models.vae import VAE, full_precision

__all__ = ["VHPPrior", "vhp_prior", "vhp_vae"]


class VHPPrior(nn.Module):
    """Hierarchical prior p(z) = int p(z|zeta) N(zeta; 0, I) dzeta with variational posterior q(zeta|z).

    ``p_net`` maps zeta (.., zeta_dim) to 2 * latent_dim numbers (mean, log-variance of p(z | zeta));
    ``q_net`` maps z (.., latent_dim) to 2 * zeta_dim numbers (mean, log-variance of q(zeta | z)).
    ``n_samples`` is the default K of ``log_prob`` (the value a ``VAE`` uses); K = 1 is the plain
    variational bound E_q[log p(z|zeta) + log p(zeta) - log q(zeta|z)].
    """

    def __init__(self, p_net: nn.Module, q_net: nn.Module, latent_dim: int, zeta_dim: int, n_samples: int = 1):
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("zeta_dim", zeta_dim), ("n_samples", n_samples)):
            positive_int(name, value)
        self.p_net, self.q_net = p_net, q_net
        self.latent_dim, self.zeta_dim, self.n_samples = latent_dim, zeta_dim, n_samples
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # device for sample()

    def _check_z(self, z: torch.Tensor) -> None:
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}, expected (batch, {self.latent_dim})")

    def conditional(self, zeta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of p(z | zeta), each (..., latent_dim); float32 also under bf16 autocast."""
        mean, logvar = full_precision(self.p_net(zeta)).split(self.latent_dim, dim=-1)
        return mean, logvar

    def q_zeta(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(zeta | z), each (..., zeta_dim); float32 also under bf16 autocast."""
        mean, logvar = full_precision(self.q_net(z)).split(self.zeta_dim, dim=-1)
        return mean, logvar

    def log_importance_weights(self, z: torch.Tensor, n_samples: int | None = None,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_k = log p(z | zeta_k) + log p(zeta_k) - log q(zeta_k | z), zeta_k ~ q(zeta | z): shape (K, batch).

        The samples are reparameterised, so gradients reach z, ``p_net`` and ``q_net``.
        """
        self._check_z(z)
        k = self.n_samples if n_samples is None else n_samples
        positive_int("n_samples", k)
        q_mean, q_logvar = self.q_zeta(z)  # (batch, zeta_dim)
        eps = normal((k, *q_mean.shape), z, generator)
        zeta = reparameterise(q_mean, q_logvar, eps)  # (K, batch, zeta_dim)
        p_mean, p_logvar = self.conditional(zeta)  # (K, batch, latent_dim)
        return _log_importance_weights(z, p_mean, p_logvar, zeta, q_logvar, eps)

    def log_prob(self, z: torch.Tensor, n_samples: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """A **lower bound** on log p(z), shape (batch,): log (1/K) sum_k w_k (the inner term of Klushyn et al. Eq. 8; Burda et al. 2016).

        K = ``n_samples`` (default: the constructor's). The bound's expectation rises with K to log p(z);
        it is a random number (fix ``generator`` to repeat it).
        """
        log_w = self.log_importance_weights(z, n_samples, generator)
        return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z): zeta ~ N(0, I), then z ~ p(z | zeta); shape (n, latent_dim)."""
        positive_int("n", n)
        zeta = normal((n, self.zeta_dim), self._anchor, generator)  # follows .to(device) and .double()
        mean, logvar = self.conditional(zeta)
        return reparameterise(mean, logvar, normal(mean.shape, self._anchor, generator))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, zeta_dim={self.zeta_dim}, n_samples={self.n_samples}"


def _log_importance_weights(z, p_mean, p_logvar, zeta, q_logvar, eps) -> torch.Tensor:
    """log p(z | zeta) + log p(zeta) - log q(zeta | z) for zeta = q_mean + exp(q_logvar / 2) eps, shape (K, batch).

    The three Gaussian log-densities of ``log_importance_weights`` with their constants collected and log q read off eps:
    (zeta - q_mean)^2 exp(-q_logvar) = eps^2, so q_mean drops out of log q (its derivative there is 0 in both
    forms) and log q = -1/2 sum (log 2 pi + q_logvar + eps^2); the 2 pi terms of p(zeta) and q cancel. The same
    function as ``log_normal_diag(z, p_mean, p_logvar) + log_standard_normal(zeta) - log_normal_diag(zeta, q_mean,
    q_logvar)`` in a third of the operations (``tests/test_vhp.py`` compares the two).
    """
    quad = torch.addcmul(p_logvar, torch.square(z - p_mean), torch.exp(-p_logvar))  # (K, batch, latent_dim)
    return -0.5 * (quad.sum(-1) + torch.square(zeta).sum(-1) - torch.square(eps).sum(-1) - q_logvar.sum(-1)
                   + z.shape[-1] * LOG_2PI)


def vhp_prior(latent_dim: int = 2, zeta_dim: int = 2, hidden: Sequence[int] = (256, 256, 256, 256),
              n_samples: int = 1) -> VHPPrior:
    """A VHP prior with Klushyn et al.'s Table 3 networks: p(z|zeta) and q(zeta|z) as MLPs of four 256-unit ReLU layers.

    ``p_net``: zeta_dim -> hidden -> 2 * latent_dim; ``q_net``: latent_dim -> hidden -> 2 * zeta_dim.
    """
    hidden = list(hidden)
    p_net = mlp([zeta_dim, *hidden, 2 * latent_dim])
    q_net = mlp([latent_dim, *hidden, 2 * zeta_dim])
    return VHPPrior(p_net, q_net, latent_dim, zeta_dim, n_samples=n_samples)


def vhp_vae(data_shape: Sequence[int] = (1, 16, 16), latent_dim: int = 2, hidden: Sequence[int] = (256, 256, 256, 256),
            likelihood: str = "gaussian", obs_sigma: float = 0.02, prior: str = "vhp", zeta_dim: int | None = None,
            prior_hidden: Sequence[int] | None = None, n_samples: int = 16) -> VAE:
    """Klushyn et al.'s Table 3 model: MLP encoder and decoder with ReLU layers ``hidden``, and a VHP prior.

    The pendulum defaults are Table 3's: 2 latents, four 256-unit ReLU layers in q(z|x), p(x|z), q(zeta|z)
    and p(z|zeta), zeta of the latents' size, K = 16 importance samples in the prior's bound, and a
    Gaussian decoder N(x | mean(z), obs_sigma^2 I) with fixed ``obs_sigma`` (0.02 here: our choice, equal
    to the paper's kappa; Table 3 says "Gaussian" without giving the decoder's variance).
    ``prior="standard"`` gives the same encoder and decoder with p(z) = N(0, I): a one-layer VAE (trained on
    the ELBO in chapter 04; the paper's "IWAE (L = 1)" is this model trained with the importance-weighted bound).
    ``prior_hidden`` (default ``hidden``) sizes the prior's two MLPs. Chapter 04.
    """
    d = math.prod(data_shape)
    hidden = list(hidden)
    enc = mlp([d, *hidden, 2 * latent_dim])
    dec = mlp([latent_dim, *hidden, d])
    if prior == "vhp":
        p = vhp_prior(latent_dim, zeta_dim or latent_dim, hidden if prior_hidden is None else prior_hidden,
                      n_samples=n_samples)
    elif prior == "standard":
        p = None
    else:
        raise ValueError(f"prior={prior!r} is unknown: use 'vhp' or 'standard'")
    return VAE(enc, dec, latent_dim, data_shape, likelihood=likelihood, obs_sigma=obs_sigma, prior=p)
