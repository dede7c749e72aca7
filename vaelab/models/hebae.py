"""HEBAE, the Hierarchical Empirical Bayes Autoencoder (Cheng et al. 2020), in the objective ``rec + weight * reg``.

Chapter 02 (``book/02_hebae``) derives it. The posterior mean mu(x) gets a hierarchical prior
mu(x_i) ~ N(beta, Sigma) and the posterior is q(z_i | x_i) = N(mu(x_i), sigma_i^2 Sigma). Theorem 1
turns the KL term into one KL per batch, with beta and Sigma estimated from the batch's means:

* beta = (1/N) sum_n mu_n,   Sigma = (1/N) sum_n (mu_n - beta)(mu_n - beta)^T + jitter * I
  (divided by N as in the official code, ``torch.cov(mu.T, correction=0)``);
* ``reg`` = KL(N(beta, Sigma) || N(0, I)) = 1/2 (tr Sigma - k - log|Sigma| + beta^T beta), shape ()
  (HEBAE Eq. 7 / Theorem 1; the official code's KL term);
* ``rec`` = -log p(x | z) with one sample z of the posterior (the VAE's decoder, Bernoulli or Gaussian).

The sampling has two forms (``form``), because the paper and its official code differ:

* ``"exact"`` (HEBAE Eq. 8): z = mu + sigma_i * (L eps) with L the lower Cholesky factor of Sigma.
  With rows as data points this is ``z = mu + sigma * (eps @ L.T)``: the rows of eps @ L.T have
  covariance L L^T = Sigma (those of eps @ L have L^T L, which is not Sigma; the commented-out
  Cholesky version of the official code has that error). Gradients flow through L and Sigma to
  every mu_m of the batch: z_n depends on the whole batch.
* ``"code"`` (the official TensorFlow code, used for its results): the diagonal approximation
  z = mu + eps * sqrt(diag Sigma) * sigma with Sigma a constant (``detach``): no gradient through
  Sigma, each z_n depends only on x_n.

sigma_i. The paper writes sigma_i^2 Sigma with a scalar sigma_i; the official code's sigma is a
k-vector from its own head (exp of the output). ``sigma="vector"`` (default, the code's) uses
z = mu + sigma ⊙ (L eps), i.e. q(z|x) = N(mu, diag(sigma) Sigma diag(sigma)), which is the paper's
posterior whenever all entries of sigma are equal; ``sigma="scalar"`` gives the paper's scalar
sigma_i (an encoder head of 1 number). Either way sigma appears in **no** term of the objective
except through the noise it adds to ``rec``: no term holds it near 1 (as the VAE's KL holds its
posterior variance), so it drifts wherever the reconstruction pushes it (``sigma_mean`` tracks it).

Jitter. A batch of N < k + 1 means has a singular Sigma (rank at most N - 1); this raises a
``ValueError``. Near-singular Sigma is guarded by a fixed ``jitter`` (default 1e-6) added to the
diagonal of every Sigma, batch or population, before the Cholesky factor and the log-determinant,
in both forms. It is part of the model's definition (the KL is that of Sigma + jitter * I), not a
fallback; if the Cholesky factorisation still fails a ``RuntimeError`` says so.

``encode(x)`` returns ``HebaeCode(mu, log_sigma)`` (a named pair; log_sigma is log sigma, not a log
variance). ``posterior(x)`` (after ``population_stats``) is q(z | x) with the population's Sigma:
N(mu, diag(sigma) Sigma_pop diag(sigma)) as a ``ScaledNormal`` in the exact form, its diagonal
N(mu, diag(sigma^2 diag Sigma_pop)) as a ``vaelab.core.posteriors.DiagonalNormal`` in the code form.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import nn
from torch.distributions import MultivariateNormal, kl_divergence

from vaelab.core.validate import positive_int
from vaelab.data.images import ImageData, batch_indices
from vaelab.core.densities import kl_normal_full
from vaelab.core.modes import eval_mode
from vaelab.core.nets import mlp
from vaelab.core.posteriors import DiagonalNormal, ScaledNormal, draw, standard_normal_like
from vaelab.models.vae import VAE

__all__ = ["HEBAE", "HebaeCode", "mlp_hebae", "population_proposal", "batch_moments", "hebae_elbo_std_prior",
           "FORMS", "SIGMAS", "JITTER"]

FORMS = ("exact", "code")
SIGMAS = ("vector", "scalar")
JITTER = 1e-6


class HebaeCode(NamedTuple):
    """The encoder's output: posterior means ``mu`` (batch, k) and ``log_sigma`` (batch, k) or (batch, 1)."""

    mu: torch.Tensor
    log_sigma: torch.Tensor


def batch_moments(mu: torch.Tensor, jitter: float = JITTER) -> tuple[torch.Tensor, torch.Tensor]:
    """beta = mean of the rows of ``mu`` (N, k) and Sigma = their covariance divided by N, plus jitter * I.

    The empirical Bayes estimates of HEBAE Theorem 1 (chapter 02). Raises ``ValueError`` when
    N < k + 1: Sigma then has rank at most N - 1 < k and is singular.
    """
    if mu.ndim != 2:
        raise ValueError(f"mu must have shape (batch, latent), got {tuple(mu.shape)}")
    n, k = mu.shape
    if n < k + 1:
        raise ValueError(f"a batch of {n} image(s) with latent_dim k={k}: HEBAE's batch covariance Sigma has rank at "
                         f"most {max(n - 1, 0)} < k and is singular; use batches of at least k + 1 = {k + 1} images "
                         "(raise batch_size, or change the number of images so that the last batch is not this small)")
    if mu.dtype in (torch.float16, torch.bfloat16):  # half-precision means (mixed precision): Sigma in float32,
        mu = mu.float()                              # or it loses its positive definiteness (chapter celeba)
    beta = mu.mean(0)
    centred = mu - beta
    with torch.autocast(mu.device.type, enabled=False):  # no bf16 matmul under autocast either
        sigma = centred.T @ centred / n
    sigma = sigma + jitter * torch.eye(k, dtype=mu.dtype, device=mu.device)
    return beta, sigma


def _cholesky(sigma: torch.Tensor, what: str) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(sigma)
    if bool(info.any()):
        raise RuntimeError(f"the Cholesky factorisation of {what} failed even with the jitter on its diagonal "
                           "(it is not positive definite in this precision): the encoder's means are degenerate or "
                           "non-finite; lower lr, check the data, or build the model with a larger jitter")
    return chol


class HEBAE(VAE):
    """HEBAE: the VAE's decoder side, an encoder for (mu, log sigma), the batch KL of Theorem 1.

    Arguments are those of ``VAE`` (the prior is always N(0, I) and cannot be replaced), except that
    ``encoder`` maps flattened x to k + k numbers (``sigma="vector"``) or k + 1 (``sigma="scalar"``):
    mu, then log sigma. ``form``: ``"exact"`` (Eq. 8, Cholesky, gradients through Sigma) or ``"code"``
    (the official code's diagonal approximation without gradient through Sigma). ``jitter``: added to
    the diagonal of every Sigma (module docstring).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, data_shape: Sequence[int],
                 likelihood: str = "bernoulli", obs_sigma: float = 1.0, form: str = "exact", sigma: str = "vector",
                 jitter: float = JITTER):
        super().__init__(encoder, decoder, latent_dim, data_shape, likelihood=likelihood, obs_sigma=obs_sigma)
        if form not in FORMS:
            raise ValueError(f"form={form!r} is unknown: use 'exact' (the paper's Eq. 8) or 'code' (the official code)")
        if sigma not in SIGMAS:
            raise ValueError(f"sigma={sigma!r} is unknown: use 'vector' (a k-vector per image, the official code) or "
                             "'scalar' (one number per image, the paper)")
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) \
                or not (jitter >= 0 and math.isfinite(jitter)):
            raise ValueError(f"jitter must be a finite number >= 0 (default {JITTER}), got {jitter!r}")
        self.form, self.sigma_kind, self.jitter = form, sigma, float(jitter)
        k = latent_dim
        # population estimates for evaluation (population_stats); pop_n = 0 until computed
        self.register_buffer("pop_beta", torch.zeros(k))
        self.register_buffer("pop_sigma", torch.eye(k))
        self.register_buffer("pop_scale_tril", torch.eye(k))
        self.register_buffer("pop_n", torch.zeros((), dtype=torch.long))

    @property
    def sigma_dim(self) -> int:
        return self.latent_dim if self.sigma_kind == "vector" else 1

    def encode(self, x: torch.Tensor) -> HebaeCode:
        """``HebaeCode(mu (batch, k), log_sigma (batch, k) or (batch, 1))``: log sigma, not a log variance."""
        h = self.encoder(x.flatten(1))
        if h.shape[-1] != self.latent_dim + self.sigma_dim:
            head = "latent_dim" if self.sigma_kind == "vector" else "1"
            raise ValueError(f"the encoder returned {h.shape[-1]} numbers per image, expected latent_dim + {head} = "
                             f"{self.latent_dim + self.sigma_dim} (mu, then log sigma) for sigma={self.sigma_kind!r}")
        mu, log_sigma = h.split([self.latent_dim, self.sigma_dim], dim=-1)
        return HebaeCode(mu, log_sigma)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_input(x)
        mu, log_sigma = self.encode(x)
        beta, cov = batch_moments(mu, self.jitter)
        chol = _cholesky(cov, "the batch covariance Sigma")
        sigma = torch.exp(log_sigma)
        eps = torch.randn_like(mu)
        if self.form == "exact":
            z = mu + sigma * (eps @ chol.T)  # rows: sigma ⊙ (L eps), covariance diag(sigma) Sigma diag(sigma)
        else:
            z = mu + eps * torch.sqrt(torch.diagonal(cov)).detach() * sigma
        rec = -self.log_likelihood(x, self.decode(z))
        reg = kl_normal_full(beta, chol)  # HEBAE Theorem 1: KL(N(beta, Sigma) || N(0, I))
        logdet = 2.0 * torch.log(torch.diagonal(chol)).sum()
        return {"rec": rec, "reg": reg, "z": z, "mu": mu, "log_sigma": log_sigma,
                "sigma_mean": sigma.mean(-1).detach(), "beta_norm2": (beta**2).sum().detach(),
                "logdet_sigma": logdet.detach()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z = mu(x)]: the decoded posterior mean."""
        return self.mean_image(self.encode(x).mu)

    # ------------------------------------------------------------ population estimates, evaluation
    @torch.no_grad()
    def population_stats(self, data: ImageData | torch.Tensor, batch_size: int = 1000
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """beta and Sigma (divided by N, plus jitter * I) of mu(x) over a whole data set; stored as buffers.

        ``data``: an ``ImageData`` or a float tensor (N, *data_shape). Computed in eval mode, in float64,
        then stored in the model's dtype as ``pop_beta`` (k,), ``pop_sigma`` (k, k), ``pop_scale_tril``
        (its Cholesky factor) and ``pop_n``. They define the evaluation posterior of ``posterior``.
        Returns (beta, Sigma).
        """
        positive_int("batch_size", batch_size)
        if isinstance(data, ImageData):
            n, get = len(data), data.batch
        elif isinstance(data, torch.Tensor):
            n, get = data.shape[0], (lambda idx: data[idx])
        else:
            raise TypeError(f"data must be a vaelab.data.ImageData or a tensor of images, got {type(data).__name__}")
        with eval_mode(self):
            mus = [self.encode(get(idx).to(self.pop_beta)).mu.double()
                   for idx in batch_indices(n, batch_size, shuffle=False)]
        mu = torch.cat(mus)
        if not bool(torch.isfinite(mu).all()):
            raise ValueError("the encoder's means over data contain NaN or Inf: the model has diverged")
        beta, cov = batch_moments(mu, self.jitter)
        chol = _cholesky(cov, "the population covariance Sigma")
        dtype = self.pop_beta.dtype
        self.pop_beta.copy_(beta.to(dtype))
        self.pop_sigma.copy_(cov.to(dtype))
        self.pop_scale_tril.copy_(chol.to(dtype))
        self.pop_n.fill_(n)
        return self.pop_beta.clone(), self.pop_sigma.clone()

    def _check_population(self) -> None:
        if int(self.pop_n) == 0:
            raise RuntimeError("the population estimates of beta and Sigma are not set: call "
                               "model.population_stats(train_data) after training (they are saved with the model)")

    def posterior(self, x: torch.Tensor) -> ScaledNormal | DiagonalNormal:
        """q(z | x) with the population's Sigma (``population_stats``), batch shape (batch,).

        Exact form: N(mu(x), diag(sigma) Sigma_pop diag(sigma)) (HEBAE Eq. 8), a ``ScaledNormal`` (a
        ``MultivariateNormal`` that keeps log sigma) with scale_tril = diag(sigma_i) L_pop (for ``sigma="scalar"`` sigma_i L_pop, the paper's
        N(mu, sigma_i^2 Sigma)). Code form: its diagonal, the posterior the official code samples,
        N(mu, diag(sigma^2 diag Sigma_pop)).
        """
        self._check_population()
        self._check_input(x)
        mu, log_sigma = self.encode(x)
        if self.form == "code":
            return DiagonalNormal(mu, (2.0 * log_sigma + torch.log(torch.diagonal(self.pop_sigma))).expand_as(mu))
        return ScaledNormal(mu, log_sigma, self.pop_scale_tril)


def population_proposal(tau: float):
    """A proposal for importance sampling HEBAE's p(x): q_tau(z | x) = N(mu(x), tau^2 Sigma_pop).

    Returns a function (model, x) -> ``MultivariateNormal`` for ``vaelab.evaluation.likelihood.WithProposal``.
    HEBAE's own posterior N(mu, diag(sigma) Sigma_pop diag(sigma)) becomes nearly a point mass in
    training (sigma falls towards 0, chapter 02), and an importance-sampled estimate with it is then
    close to the ELBO; a wider proposal of the same shape estimates the same log p(x) more tightly.
    """
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a positive finite number (the proposal's scale), got {tau!r}")

    def proposal(model: "HEBAE", x: torch.Tensor) -> MultivariateNormal:
        model._check_population()
        mu = model.encode(x).mu
        return MultivariateNormal(mu, scale_tril=(tau * model.pop_scale_tril).expand(mu.shape[0], -1, -1),
                                  validate_args=False)

    return proposal


def hebae_elbo_std_prior(model: HEBAE, x: torch.Tensor, n_samples: int = 1,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard ELBO with prior N(0, I) for HEBAE's population posterior, per image (batch,).

    E_q[log p(x|z)] (``n_samples`` reparameterised draws of ``posterior(x)``, averaged)
    - KL(q(z|x) || N(0, I)) in closed form (``torch.distributions.kl_divergence``).
    A lower bound on log p(x) that makes HEBAE comparable with the VAE (chapter 02).
    Gradients are kept (wrap in ``torch.no_grad()`` to evaluate); call ``population_stats`` first.
    """
    positive_int("n_samples", n_samples)
    q = model.posterior(x)
    z, _ = draw(q, n_samples, generator, log_prob=False)                        # (S, B, k)
    return model.log_likelihood_at(x, z).mean(0) - kl_divergence(q, standard_normal_like(q))


def mlp_hebae(latent_dim: int = 20, data_shape: Sequence[int] = (1, 28, 28), enc_hidden: Sequence[int] = (784, 800),
              dec_hidden: Sequence[int] = (800, 800), likelihood: str = "bernoulli", form: str = "exact",
              sigma: str = "vector", **kwargs) -> HEBAE:
    """The HEBAE App. B.1 MLP: encoder D-784-800-(k + k) (mu, log sigma; k + 1 for a scalar sigma),
    decoder k-800-800-D (ReLU)."""
    if sigma not in SIGMAS:
        raise ValueError(f"sigma={sigma!r} is unknown: use one of {SIGMAS}")
    d = math.prod(data_shape)
    enc = mlp([d, *enc_hidden, latent_dim + (latent_dim if sigma == "vector" else 1)])
    dec = mlp([latent_dim, *dec_hidden, d])
    return HEBAE(enc, dec, latent_dim, data_shape, likelihood=likelihood, form=form, sigma=sigma, **kwargs)
