"""The VAE of Kingma & Welling (2014) in the book's one objective shape ``rec + weight * reg``.

``forward(x)`` returns per-example terms (chapter 00):

* ``rec`` = -log p(x | z) with one reparameterised sample z = mu + sigma * eps (HEBAE Eq. 3);
* ``reg`` = KL(q(z | x) || p(z)): the closed form 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2) for the
  standard normal prior (HEBAE Eq. 4 with its missing factor 1/2), else the one-sample estimate
  log q(z | x) - log p(z) (with the VHP prior, whose log_prob is a lower bound, an upper bound on it);

so that ``rec + reg`` is the negative ELBO and ``rec + weight * reg`` the beta/lambda-VAE objective.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from vaelab.core.densities import LOG_2PI, log_bernoulli
from vaelab.core.nets import mlp
from vaelab.core.posteriors import DiagonalNormal, over_draws, reparameterise
from vaelab.models.priors import StandardNormal

__all__ = ["VAE", "mlp_vae", "LIKELIHOODS", "full_precision"]

LIKELIHOODS = ("bernoulli", "gaussian")


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is float16/bfloat16 (a network's output under autocast), else ``t`` itself.

    The models' log-densities, KL terms and sampling then run in float32 under bf16 training: only the
    matrix products are bf16, and elementwise float32 is also the faster of the two on a CPU.
    """
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class VAE(nn.Module):
    """Gaussian encoder q(z|x) = N(mu(x), diag sigma^2(x)), decoder p(x|z), a pluggable prior.

    ``encoder`` maps flattened x to 2 * latent_dim numbers (mu, log sigma^2); ``decoder`` maps z to
    prod(data_shape) numbers: Bernoulli logits, or Gaussian means with fixed ``obs_sigma``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, data_shape: Sequence[int],
                 likelihood: str = "bernoulli", obs_sigma: float = 1.0, prior: nn.Module | None = None):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood={likelihood!r} is unknown: use one of {LIKELIHOODS}")
        if not obs_sigma > 0:
            raise ValueError(f"obs_sigma must be positive, got {obs_sigma}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = latent_dim
        self.data_shape = tuple(data_shape)
        self.likelihood = likelihood
        self.obs_logvar = 2.0 * math.log(obs_sigma)
        self.prior = prior if prior is not None else StandardNormal(latent_dim)
        if callable(getattr(self.prior, "bind", None)) and not self.prior.is_bound:
            self.prior.bind(self)  # a VampPrior is a mixture of this encoder's posteriors (chapter 03)

    def _check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, self.data_shape))})")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, log sigma^2 of q(z | x), each (batch, latent); float32 also under bf16 autocast."""
        h = full_precision(self.encoder(x.flatten(1)))
        mu, logvar = h.split(self.latent_dim, dim=-1)
        return mu, logvar

    def posterior(self, x: torch.Tensor) -> DiagonalNormal:
        """q(z | x) = N(mu(x), diag sigma^2(x)), batch shape (batch,), event shape (latent,)."""
        self._check_input(x)
        return DiagonalNormal(*self.encode(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits or Gaussian means, shaped like the data; float32 also under bf16 autocast."""
        return full_precision(self.decoder(z)).view(z.shape[0], *self.data_shape)

    def mean_image(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z]: sigmoid of the logits (Bernoulli) or the mean (Gaussian)."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per example from the decoder output ``out`` (summed over the data axes, the last
        ``len(data_shape)``; leading axes broadcast).

        Gaussian: -1/2 [sum (x - mean)^2 / sigma^2 + D log(2 pi sigma^2)], ``log_normal_diag`` with the fixed
        variance taken out of the sum (the same value, a third of the operations).
        """
        dims = len(self.data_shape)
        if self.likelihood == "bernoulli":
            return log_bernoulli(x, out, event_dims=dims)
        sq = torch.square(x - out)
        sq = sq.flatten(-dims).sum(-1) if dims > 1 else sq.sum(-1)
        d = math.prod(self.data_shape)
        return -0.5 * (sq * math.exp(-self.obs_logvar) + d * (LOG_2PI + self.obs_logvar))

    def log_likelihood_at(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z_s) for draws z (S, batch, latent) of a batch x: shape (S, batch).

        One decoder call on the S * batch codes; x is broadcast over the draws, not copied.
        """
        s, b = z.shape[:2]
        out = self.decode(z.reshape(s * b, z.shape[-1]))
        return self.log_likelihood(over_draws(x, s), out.view(s, b, *out.shape[1:]))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z_s) = log p(x | z_s) + log p(z_s) for draws z (S, batch, latent): shape (S, batch).

        The numerator of an importance weight (Burda et al. 2016, Eq. 8; ``vaelab.evaluation.likelihood``).
        """
        log_prior = self.prior.log_prob(z.reshape(-1, z.shape[-1])).view(z.shape[:2])
        return self.log_likelihood_at(x, z) + log_prior

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_input(x)
        mu, logvar = self.encode(x)
        eps = torch.randn_like(mu)
        z = reparameterise(mu, logvar, eps)
        rec = -self.log_likelihood(x, self.decode(z))
        closed_form = getattr(self.prior, "kl_per_dim", None)  # a prior with a closed-form KL
        if closed_form is not None:
            kl_dim = closed_form(mu, logvar)
            reg = kl_dim.sum(-1)
        else:
            kl_dim = None
            # log q(z | x) at its own sample: (z - mu)^2 / sigma^2 = eps^2, i.e. log_normal_diag(z, mu, logvar)
            log_q = -0.5 * (torch.square(eps) + logvar).sum(-1) - 0.5 * self.latent_dim * LOG_2PI
            reg = log_q - self.prior.log_prob(z)
        out = {"rec": rec, "reg": reg, "z": z, "mu": mu, "logvar": logvar}
        if kl_dim is not None:
            out["kl_per_dim"] = kl_dim
        return out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z] at the mean of q(z | x): the decoded posterior mean (the code of a WAE)."""
        return self.mean_image(self.posterior(x).mean)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """E[x | z] for n draws z ~ p(z)."""
        return self.mean_image(self.prior.sample(n, generator=generator))


def mlp_vae(latent_dim: int = 20, data_shape: Sequence[int] = (1, 28, 28), enc_hidden: Sequence[int] = (784, 800),
            dec_hidden: Sequence[int] = (800, 800), likelihood: str = "bernoulli", **kwargs) -> VAE:
    """The HEBAE App. B.1 MLP VAE: encoder D-784-800-2k, decoder k-800-800-D (ReLU)."""
    d = math.prod(data_shape)
    enc = mlp([d, *enc_hidden, 2 * latent_dim])
    dec = mlp([latent_dim, *dec_hidden, d])
    return VAE(enc, dec, latent_dim, data_shape, likelihood=likelihood, **kwargs)
