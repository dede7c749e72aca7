"""The two-level VAE of Tomczak & Welling (2018, Sec. 3.2, Eqs. 10-15), derived in chapter 03.

Generative model and variational posterior:

    p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2),        q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x),

with p(z2) the VampPrior bound to q(z2 | x) (``vaelab.models.vamp.VampPrior``) or the standard normal, and
diagonal Gaussians for q(z2 | x), q(z1 | x, z2), p(z1 | z2); the decoder p(x | z1, z2) is Bernoulli
(logits; BCE-with-logits needs no clamp of the mean). The negative ELBO is estimated with one
reparameterised sample z2 ~ q(z2 | x), z1 ~ q(z1 | x, z2):

    rec = -log p(x | z1, z2),
    reg = log q(z1 | x, z2) + log q(z2 | x) - log p(z1 | z2) - log p(z2)  =  kl_z1 + kl_z2,

so ``rec + reg = -log w`` for the single importance weight w = p(x, z1, z2) / q(z1, z2 | x), and
``rec + beta * reg`` is the paper's warm-up objective (``vaelab.objectives.schedules.LinearWarmup``).

Networks (``hvae``), gated dense layers (``vaelab.core.nets.GatedDense``) of ``hidden`` units:
q(z2 | x): D-300-300-2k2; q(z1 | x, z2): x -> 300 and z2 -> 300, concatenated, -> 300 -> 2k1
(``TwoInputGated``); p(z1 | z2): k2-300-300-2k1; p(x | z1, z2): z1 -> 300 and z2 -> 300,
concatenated, -> 300 -> D. This follows the paper's description (gated layers of 300 units, 40 latents
per layer); the exact wiring of the two-input networks is this package's choice.

Importance sampling. ``posterior(x)`` is the joint q(z1, z2 | x) over z = [z1, z2], a
``vaelab.core.posteriors.TwoLevel`` (z2 drawn first, then z1 given it), and ``log_joint(x, z)`` is
log p(x, z1, z2), so ``vaelab.evaluation.likelihood`` importance-samples this model as any other. The x-dependent
parts of the encoder (q(z2 | x) and the x-branch of q(z1 | x, z2)) run once per data point.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from vaelab.core.validate import positive_int
from vaelab.core.densities import log_bernoulli, log_normal_diag
from vaelab.core.nets import GatedDense, gated_mlp
from vaelab.core.posteriors import DiagonalNormal, TwoLevel, normal, over_draws, reparameterise
from vaelab.models.priors import StandardNormal
from vaelab.models.vamp import VampPrior, _hidden_sizes

__all__ = ["HVAE", "TwoInputGated", "hvae", "HVAE_PRIORS"]

HVAE_PRIORS = ("vamp", "standard")


class TwoInputGated(nn.Module):
    """f(a, b) = head([GatedDense(a), GatedDense(b)]): one gated layer per input, concatenated, then ``head``.

    ``embed_a(a)`` and ``from_embedded(h_a, b)`` split the computation so that a branch that does not
    change (x, while z2 is resampled) is computed once.
    """

    def __init__(self, in_a: int, in_b: int, hidden: int, head_sizes: Sequence[int]):
        super().__init__()
        self.branch_a = GatedDense(in_a, hidden)
        self.branch_b = GatedDense(in_b, hidden)
        self.head = gated_mlp([2 * hidden, *head_sizes])

    def embed_a(self, a: torch.Tensor) -> torch.Tensor:
        return self.branch_a(a)

    def from_embedded(self, h_a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h_b = self.branch_b(b)
        h_a = h_a.expand(*h_b.shape[:-1], h_a.shape[-1])
        return self.head(torch.cat([h_a, h_b], dim=-1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.from_embedded(self.embed_a(a), b)


class HVAE(nn.Module):
    """Two stochastic layers z1 (bottom, next to x) and z2 (top): Tomczak & Welling (2018) Eqs. 10-15; chapter 03.

    Networks (each outputs a mean and a log-variance concatenated, except ``p_x``):
    ``q_z2``: x (B, D) -> 2*k2; ``q_z1``: a ``TwoInputGated`` (x, z2) -> 2*k1; ``p_z1``: z2 -> 2*k1;
    ``p_x``: a ``TwoInputGated`` (z1, z2) -> D Bernoulli logits. ``prior`` is p(z2): a
    ``VampPrior`` (bound here to ``encode_z2``) or any prior with ``log_prob``/``sample``.
    Parameter names start with ``q_`` (inference), ``p_`` (generative) and ``prior.``.
    """

    def __init__(self, q_z2: nn.Module, q_z1: TwoInputGated, p_z1: nn.Module, p_x: TwoInputGated, z1_dim: int,
                 z2_dim: int, data_shape: Sequence[int], prior: nn.Module | None = None):
        super().__init__()
        self.q_z2, self.q_z1, self.p_z1, self.p_x = q_z2, q_z1, p_z1, p_x
        self.z1_dim = positive_int("z1_dim", z1_dim)
        self.z2_dim = positive_int("z2_dim", z2_dim)
        self.data_shape = tuple(data_shape)
        self.prior = prior if prior is not None else StandardNormal(z2_dim)
        if hasattr(self.prior, "bind"):  # a prior made of the encoder's posteriors (the VampPrior)
            self.prior.bind(self.encode_z2)

    # -- the four conditionals ---------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, self.data_shape))})")

    def encode_z2(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, log sigma^2 of q(z2 | x), each (batch, k2). Also the VampPrior's q(z2 | u_k)."""
        return self.q_z2(x.flatten(1)).split(self.z2_dim, dim=-1)

    def encode_z1(self, x: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, log sigma^2 of q(z1 | x, z2), each (batch, k1)."""
        return self.q_z1(x.flatten(1), z2).split(self.z1_dim, dim=-1)

    def prior_z1(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, log-variance of p(z1 | z2), each (..., k1)."""
        return self.p_z1(z2).split(self.z1_dim, dim=-1)

    def decode(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x | z1, z2), shaped (batch, *data_shape)."""
        return self.p_x(z1, z2).view(z1.shape[0], *self.data_shape)

    def log_likelihood(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x | z1, z2) per example from the decoder's logits."""
        return log_bernoulli(x, logits, event_dims=len(self.data_shape))

    def mean_image(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """E[x | z1, z2] = sigmoid(logits)."""
        return torch.sigmoid(self.decode(z1, z2))

    # -- training terms --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example ``rec`` and ``reg`` (one sample; see the module docstring) and diagnostics.

        ``kl_z1`` = log q(z1|x,z2) - log p(z1|z2) and ``kl_z2`` = log q(z2|x) - log p(z2): one-sample
        estimates of each layer's KL term, with ``reg = kl_z1 + kl_z2``. Also returns the samples
        ``z1``, ``z2`` and the posterior parameters ``mu1, logvar1, mu2, logvar2`` (batch, k).
        """
        self._check_input(x)
        flat = x.flatten(1)
        mu2, logvar2 = self.q_z2(flat).split(self.z2_dim, dim=-1)
        z2 = reparameterise(mu2, logvar2, torch.randn_like(mu2))
        mu1, logvar1 = self.q_z1(flat, z2).split(self.z1_dim, dim=-1)
        z1 = reparameterise(mu1, logvar1, torch.randn_like(mu1))
        pm1, plogvar1 = self.prior_z1(z2)
        rec = -self.log_likelihood(x, self.decode(z1, z2))
        kl_z1 = log_normal_diag(z1, mu1, logvar1) - log_normal_diag(z1, pm1, plogvar1)
        kl_z2 = log_normal_diag(z2, mu2, logvar2) - self.prior.log_prob(z2)
        return {"rec": rec, "reg": kl_z1 + kl_z2, "kl_z1": kl_z1, "kl_z2": kl_z2, "z1": z1, "z2": z2,
                "mu1": mu1, "logvar1": logvar1, "mu2": mu2, "logvar2": logvar2}

    # -- encodings for diagnostics -----------------------------------------------------------------
    def encode_layers(self, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{"z2": (mu, logvar) of q(z2|x), "z1": (mu, logvar) of q(z1|x, z2 = mu of q(z2|x))}, each (batch, k).

        What per-layer active units need (Burda et al. 2016: Cov_x E_q[z] > 0.01): E[z2 | x] = mu2(x)
        exactly; for z1 the mean of q(z1 | x, z2) at z2 = mu2(x) stands in for E_{q(z2|x)}[mu1(x, z2)],
        as is usual for hierarchical VAEs. Use ``vaelab.evaluation.diagnostics.active_units(layers["z1"][0])``.
        """
        self._check_input(x)
        mu2, logvar2 = self.encode_z2(x)
        mu1, logvar1 = self.encode_z1(x, mu2)
        return {"z2": (mu2, logvar2), "z1": (mu1, logvar1)}

    def posterior(self, x: torch.Tensor) -> TwoLevel:
        """q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x) over z = [z1, z2] (batch shape (batch,), event (k1 + k2,)).

        The x-branch of q(z1 | x, z2) is computed here once; each draw of z2 runs only the rest.
        """
        self._check_input(x)
        flat = x.flatten(1)
        h_x = self.q_z1.embed_a(flat)                                            # (B, hidden)

        def z1_given(z2: torch.Tensor) -> DiagonalNormal:
            return DiagonalNormal(*self.q_z1.from_embedded(h_x, z2).split(self.z1_dim, dim=-1))

        return TwoLevel(DiagonalNormal(*self.q_z2(flat).split(self.z2_dim, dim=-1)), z1_given, self.z1_dim)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z1, z2) = log p(x | z1, z2) + log p(z1 | z2) + log p(z2) for draws z = [z1, z2]
        (S, batch, k1 + k2): shape (S, batch) (the numerator of an importance weight)."""
        s, b = z.shape[:2]
        z1, z2 = z[..., :self.z1_dim], z[..., self.z1_dim:]
        z1f, z2f = z1.reshape(s * b, -1), z2.reshape(s * b, -1)
        log_lik = self.log_likelihood(over_draws(x, s), self.decode(z1f, z2f).view(s, b, *self.data_shape))
        pm1, plogvar1 = self.prior_z1(z2)
        return log_lik + log_normal_diag(z1, pm1, plogvar1) + self.prior.log_prob(z2f).view(s, b)

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z1, z2] at the posterior means (z2 = mu2(x), z1 = mu1(x, mu2))."""
        layers = self.encode_layers(x)
        return self.mean_image(layers["z1"][0], layers["z2"][0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """E[x | z1, z2] for n ancestral draws z2 ~ p(z2), z1 ~ p(z1 | z2)."""
        z2 = self.prior.sample(n, generator=generator)
        pm1, plogvar1 = self.prior_z1(z2)
        return self.mean_image(reparameterise(pm1, plogvar1, normal(pm1.shape, pm1, generator)), z2)


def hvae(latent_dim: int = 40, hidden: int = 300, prior: str | nn.Module = "vamp", n_pseudo: int = 500,
         data_shape: Sequence[int] = (1, 28, 28), pseudo_init: str = "random", data=None,
         learn_pseudo_inputs: bool = True, weighted: bool = False) -> HVAE:
    """The paper's two-level model (Table 1, HVAE L = 2): 40 latents per layer, gated layers of 300 units.

    ``prior="vamp"`` puts a VampPrior (K = ``n_pseudo``; ``pseudo_init``, ``data``,
    ``learn_pseudo_inputs``, ``weighted`` as in ``vaelab.models.vamp.VampPrior``) on z2, bound to q(z2 | x);
    ``prior="standard"`` a standard normal; or pass a prior module with ``log_prob``/``sample`` on k2.
    """
    k = positive_int("latent_dim", latent_dim)
    h = positive_int("hidden", hidden)
    d = math.prod(data_shape)
    if isinstance(prior, str):
        if prior == "vamp":
            prior_mod = VampPrior(None, n_pseudo=n_pseudo, data_shape=data_shape, init=pseudo_init, data=data,
                                  weighted=weighted, learn_pseudo_inputs=learn_pseudo_inputs)
        elif prior == "standard":
            prior_mod = StandardNormal(k)
        else:
            raise ValueError(f"prior={prior!r} is unknown: use one of {HVAE_PRIORS} or pass a prior module")
    elif isinstance(prior, nn.Module):
        prior_mod = prior
    else:
        raise TypeError(f"prior must be one of {HVAE_PRIORS} or an nn.Module, got {type(prior).__name__}")
    sizes = _hidden_sizes(h)
    return HVAE(q_z2=gated_mlp([d, *sizes, 2 * k]),
                q_z1=TwoInputGated(d, k, h, [h, 2 * k]),
                p_z1=gated_mlp([k, *sizes, 2 * k]),
                p_x=TwoInputGated(k, k, h, [h, d]),
                z1_dim=k, z2_dim=k, data_shape=data_shape, prior=prior_mod)
