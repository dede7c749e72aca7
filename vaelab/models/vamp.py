"""Mixture priors of Tomczak & Welling (2018), "VAE with a VampPrior", derived in chapter 03.

* ``MixtureOfGaussians``: p(z) = sum_k w_k N(z | m_k, diag exp(l_k)) with learnable means and
  log-variances (the MoG prior the paper compares with, Sec. 3; w_k = 1/K or learned).
  ``ScaledMixtureOfGaussians`` is the same prior moved ``speed`` times faster by the optimiser.
* ``VampPrior``: the variational mixture of posteriors (Eq. 9)

      p(z) = 1/K sum_k q(z | u_k),

  the encoder's posterior evaluated at K learnable pseudo-inputs u_k, an approximation of the
  optimal prior, the aggregated posterior 1/N sum_n q(z | x_n). With ``weighted=True`` the
  weights are learned, w = softmax(logits) (the weighted VampPrior, Eq. 16).
* ``vamp_vae`` / ``std_vae`` / ``mog_vae``: the paper's one-level model (gated dense encoder and
  decoder 784-300-300, 40 latents, Bernoulli decoder) with each prior, for the paper's comparison.

Both priors follow ``vaelab.models.priors.StandardNormal``: ``log_prob(z)`` of shape (batch,) and
``sample(n, generator=None)`` of shape (n, latent).

The mixture density is evaluated with matrix products: for diagonal components

    sum_j (z_j - m_kj)^2 / v_kj = (z*z) @ (1/v)^T - 2 z @ (m/v)^T + sum_j m_kj^2 / v_kj,

a (batch, K) matrix from (batch, k) x (k, K) products, instead of a (batch, K, k) broadcast; both products
and the constant are one ``addmm`` of [z*z, z] (batch, 2k) with [-1/(2v), m/v] (2k, K).
The price is cancellation: the three terms are each larger than their sum, so in float32 the
absolute error grows with |z|^2 / v (measured: up to 2e-4 nats for z ~ N(0, 1.5^2 I), k = 40 and
variances ~ 0.02-0.3; evaluate in float64 where exactness matters).

Binding the VampPrior to the encoder
------------------------------------
The prior needs the encoder's q(z | u) but must not own it: registering the encoder as a
submodule of the prior would put its weights twice in ``state_dict`` and (with
``named_parameters(remove_duplicate=False)``) twice in optimisers built from it. So the prior
keeps a plain reference to a function ``encode(u) -> (mu, logvar)``, stored outside
``nn.Module``'s registry:

    prior = VampPrior(None, n_pseudo=500, data_shape=(1, 28, 28))
    vae = VAE(encoder, decoder, 40, (1, 28, 28), prior=prior)
    prior.bind(vae)          # or prior.bind(vae.encode), or VampPrior(vae.encode, ...)

``bind`` takes a model with an ``encode`` method returning (mu, logvar) or any such callable. The
builders (``vamp_vae``, ``vaelab.models.hvae.hvae``) bind for you. The prior's own parameters are only the
pseudo-inputs (and the weight logits); the gradient of log p(z) still reaches the encoder's
weights through q(z | u_k), the coupling of prior and posterior discussed in the paper's
supplement (Eqs. 17-21).

The official code passes the encoder's log-variance through Hardtanh(-6, 2). This design does not
need that bound and does not impose it (the VAE's encoder is used as it is); a very small
component variance only makes the float32 cancellation above larger.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.core.validate import positive_int
from vaelab.core.densities import LOG_2PI
from vaelab.core.nets import gated_mlp
from vaelab.core.posteriors import normal, reparameterise
from vaelab.models.vae import VAE

__all__ = ["log_normal_diag_pairwise", "log_mixture_diag", "MixtureOfGaussians", "ScaledMixtureOfGaussians",
           "VampPrior", "vamp_vae", "std_vae", "mog_vae", "PSEUDO_INITS"]

PSEUDO_INITS = ("random", "data")


def log_normal_diag_pairwise(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log N(z_b | m_k, diag exp(l_k)) for every pair (b, k): shape (batch, K), by matrix products.

    ``z`` (batch, k), ``means`` and ``logvars`` (K, k). Uses the expansion of the module docstring:
    one (batch, 2k) @ (2k, K) product and no (batch, K, k) intermediate. Computed in float32 (or float64)
    also under bf16 autocast and for half-precision inputs: the expansion's cancellation would cost whole
    nats in bfloat16.
    """
    if z.ndim != 2 or means.ndim != 2 or means.shape != logvars.shape or z.shape[1] != means.shape[1]:
        raise ValueError(f"expected z (batch, k) and means, logvars (K, k) with the same k, got z {tuple(z.shape)}, "
                         f"means {tuple(means.shape)}, logvars {tuple(logvars.shape)}")
    dtype = torch.promote_types(z.dtype, means.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32  # the expansion cancels (module docstring): never in half precision
    with torch.autocast(z.device.type, enabled=False):  # nor in autocast's bf16 products (bf16 training)
        z, means, logvars = z.to(dtype), means.to(dtype), logvars.to(dtype)
        prec = torch.exp(-logvars)                                                # (K, k)
        m_prec = means * prec
        const = -0.5 * (means.shape[1] * LOG_2PI + logvars.sum(1) + (means * m_prec).sum(1))  # (K,)
        # const - 1/2 (z*z) @ prec^T + z @ (m/v)^T as ONE product: [z*z, z] (batch, 2k) @ [-prec/2, m/v]^T,
        # with const added by addmm: one pass over the (batch, K) result instead of four
        return torch.addmm(const, torch.cat([z * z, z], 1), torch.cat([-0.5 * prec, m_prec], 1).T)  # (batch, K)


def log_mixture_diag(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor,
                     log_weights: torch.Tensor | None = None) -> torch.Tensor:
    """log sum_k w_k N(z | m_k, diag exp(l_k)), shape (batch,); ``log_weights`` (K,), default log(1/K)."""
    log_comp = log_normal_diag_pairwise(z, means, logvars)
    if log_weights is None:
        return torch.logsumexp(log_comp, dim=1) - math.log(means.shape[0])
    return torch.logsumexp(log_comp + log_weights, dim=1)


def _sample_mixture(n: int, means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor | None,
                    generator: torch.Generator | None) -> torch.Tensor:
    """n draws: k ~ Categorical(softmax(logits)) (uniform when ``logits`` is None), then z ~ N(m_k, diag exp(l_k))."""
    n = positive_int("n", n)
    num_k = means.shape[0]
    gdev = generator.device if generator is not None else means.device
    if logits is None:
        idx = torch.randint(0, num_k, (n,), generator=generator, device=gdev)
    else:
        probs = torch.softmax(logits.detach().to(gdev, torch.float64), 0)
        idx = torch.multinomial(probs, n, replacement=True, generator=generator)
    idx = idx.to(means.device)
    return reparameterise(means[idx], logvars[idx], normal((n, means.shape[1]), means, generator))


class MixtureOfGaussians(nn.Module):
    """p(z) = sum_k w_k N(z | m_k, diag exp(l_k)), the MoG prior of Tomczak & Welling (2018, Sec. 3; chapter 03).

    Learnable means (K, k), initialised N(0, init_scale^2), and log-variances (K, k), initialised 0;
    weights uniform, w_k = 1/K, or with ``learn_weights=True`` w = softmax(logits), logits initialised 0.
    """

    def __init__(self, latent_dim: int, n_components: int, init_scale: float = 1.0, learn_weights: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.n_components = positive_int("n_components", n_components)
        if not (isinstance(init_scale, (int, float)) and init_scale >= 0 and math.isfinite(init_scale)):
            raise ValueError(f"init_scale must be a finite number >= 0, got {init_scale!r}")
        self.means = nn.Parameter(init_scale * torch.randn(n_components, latent_dim, generator=generator))
        self.logvars = nn.Parameter(torch.zeros(n_components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(n_components)) if learn_weights else None

    def log_weights(self) -> torch.Tensor:
        """log w_k, shape (K,)."""
        if self.logits is None:
            return torch.full((self.n_components,), -math.log(self.n_components), device=self.means.device,
                              dtype=self.means.dtype)
        return torch.log_softmax(self.logits, 0)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, log-variances) of the K components, each (K, latent), as ``VampPrior.components``."""
        return self.means, self.logvars

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), shape (batch,), by ``log_mixture_diag`` (matrix products, no (batch, K, k) tensor)."""
        _check_z(z, self.latent_dim)
        lw = None if self.logits is None else torch.log_softmax(self.logits, 0)
        return log_mixture_diag(z, self.means, self.logvars, lw)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws (n, latent): a component k ~ w, then z ~ N(m_k, diag exp(l_k))."""
        return _sample_mixture(n, self.means, self.logvars, self.logits, generator)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, n_components={self.n_components}, learn_weights={self.logits is not None}"


class ScaledMixtureOfGaussians(MixtureOfGaussians):
    """``MixtureOfGaussians`` with its means and log-variances stored divided by ``speed``: the same density
    and initial values, but an optimiser that moves every parameter by about the same step (Adam) moves
    the prior's ``speed`` times faster, a per-parameter learning rate ``speed`` times the others'
    (chapter 03's check of the K = 1 anomaly). ``components()`` gives the effective (means, log-variances)."""

    def __init__(self, latent_dim: int, n_components: int, speed: float, init_scale: float = 1.0,
                 learn_weights: bool = False, generator: torch.Generator | None = None):
        super().__init__(latent_dim, n_components, init_scale=init_scale, learn_weights=learn_weights,
                         generator=generator)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        self.speed = float(speed)
        with torch.no_grad():
            self.means.div_(self.speed)
            self.logvars.div_(self.speed)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.speed * self.means, self.speed * self.logvars

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        _check_z(z, self.latent_dim)
        lw = None if self.logits is None else torch.log_softmax(self.logits, 0)
        return log_mixture_diag(z, *self.components(), lw)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return _sample_mixture(n, *self.components(), self.logits, generator)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, speed={self.speed:g}"


def _check_z(z: torch.Tensor, latent_dim: int | None) -> None:
    if z.ndim != 2 or (latent_dim is not None and z.shape[1] != latent_dim):
        want = "k" if latent_dim is None else str(latent_dim)
        raise ValueError(f"z has shape {tuple(z.shape)}, expected (batch, {want})")


class VampPrior(nn.Module):
    """The VampPrior p(z) = sum_k w_k q(z | u_k) (Tomczak & Welling 2018, Eq. 9; weighted: Eq. 16; chapter 03).

    Arguments:

    * ``encoder_fn``: ``encode(u) -> (mu, logvar)`` (each (K, latent)), or a model with such an
      ``encode`` method, or ``None`` to ``bind`` later. It is *not* registered as a submodule (see the
      module docstring): the encoder's parameters belong to the VAE only.
    * ``n_pseudo``: K, the number of pseudo-inputs (500 in the paper).
    * ``data_shape``: the shape of one data point; the pseudo-inputs are passed to ``encoder_fn`` as
      (K, *data_shape).
    * ``init``: ``"random"``: pseudo-inputs initialised N(0.05, 0.01^2) per pixel (the official code);
      ``"data"``: initialised from the first K images of ``data`` (a float tensor (N, *data_shape) in
      [0, 1], or a ``vaelab.data.ImageData``) plus N(0, 0.01^2) noise.
    * ``learn_pseudo_inputs``: ``True`` (default) learns the pseudo-inputs; ``False`` fixes them to the
      K images of ``data`` (no noise), the paper's "VampPrior data" variant. Fixed pseudo-inputs are a
      *buffer* (saved in ``state_dict``, never a parameter, so no optimiser and no ``requires_grad_``
      in the training loop can change them); they need ``init="data"``.
    * ``weighted``: learn the mixture weights w = softmax(logits) (Eq. 16) instead of w_k = 1/K.

    Learned pseudo-inputs are a (K, D) parameter ``pseudo_raw`` that is passed through Hardtanh(0, 1)
    (``pseudo_inputs()``), so the encoder always sees values in [0, 1]. The official code computes
    them as a bias-free linear map of a one-hot K-vector, i.e. this weight matrix times the
    identity; here the weight is used directly. As there, a raw value that leaves [0, 1] gets no
    gradient through the Hardtanh until the others move it back.
    """

    def __init__(self, encoder_fn: Callable | nn.Module | None = None, n_pseudo: int = 500,
                 data_shape: Sequence[int] = (1, 28, 28), init: str = "random", data=None, weighted: bool = False,
                 learn_pseudo_inputs: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        self.n_pseudo = positive_int("n_pseudo", n_pseudo)
        self.data_shape = tuple(int(s) for s in data_shape)
        if not self.data_shape or any(s < 1 for s in self.data_shape):
            raise ValueError(f"data_shape must be a non-empty shape of positive sizes, got {tuple(data_shape)}")
        if init not in PSEUDO_INITS:
            raise ValueError(f"init={init!r} is unknown: use one of {PSEUDO_INITS}")
        if not learn_pseudo_inputs and init != "data":
            raise ValueError("learn_pseudo_inputs=False fixes the pseudo-inputs to training images (the paper's "
                             "'VampPrior data'): pass init='data' and data=<training images>")
        d = math.prod(self.data_shape)
        self.init, self.learn_pseudo_inputs = init, bool(learn_pseudo_inputs)
        if init == "random":
            if data is not None:
                raise ValueError("data is used only with init='data'; drop it or pass init='data'")
            raw = 0.05 + 0.01 * torch.randn(self.n_pseudo, d, generator=generator)
        else:
            images = self._first_images(data)
            raw = images.reshape(self.n_pseudo, d).clone()
            if self.learn_pseudo_inputs:
                raw = raw + 0.01 * torch.randn(raw.shape, generator=generator, dtype=raw.dtype)
        if self.learn_pseudo_inputs:
            self.pseudo_raw = nn.Parameter(raw)
        else:
            self.register_buffer("pseudo_raw", raw)
        self.logits = nn.Parameter(torch.zeros(self.n_pseudo)) if weighted else None
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None
        object.__setattr__(self, "_encode", None)  # a plain attribute, outside nn.Module's registry
        if encoder_fn is not None:
            self.bind(encoder_fn)

    def _first_images(self, data) -> torch.Tensor:
        from vaelab.data.images import ImageData

        if data is None:
            raise ValueError("init='data' needs data=<training images>: a float tensor (N, *data_shape) in [0, 1] or "
                             "a vaelab.data.ImageData")
        if isinstance(data, ImageData):
            if len(data) < self.n_pseudo:
                raise ValueError(f"data holds {len(data)} images, fewer than n_pseudo={self.n_pseudo}")
            images = data.batch(torch.arange(self.n_pseudo, device=data.device)).float().cpu()
        elif isinstance(data, torch.Tensor):
            if not data.is_floating_point():
                raise TypeError(f"data must be a float tensor in [0, 1] (got {data.dtype}); wrap uint8 images in "
                                "vaelab.data.ImageData")
            if data.shape[0] < self.n_pseudo:
                raise ValueError(f"data holds {data.shape[0]} images, fewer than n_pseudo={self.n_pseudo}")
            images = data[: self.n_pseudo].detach().float().cpu()
        else:
            raise TypeError(f"data must be a float tensor or a vaelab.data.ImageData, got {type(data).__name__}")
        if tuple(images.shape[1:]) != self.data_shape:
            raise ValueError(f"data has images of shape {tuple(images.shape[1:])}, expected data_shape {self.data_shape}")
        if not bool(torch.isfinite(images).all()) or images.min() < 0 or images.max() > 1:
            raise ValueError("data must hold finite values in [0, 1] (the pseudo-inputs live in [0, 1])")
        return images

    # -- binding ---------------------------------------------------------------------------------
    def bind(self, target: Callable | nn.Module) -> "VampPrior":
        """Use ``target.encode`` (a model) or ``target`` (a callable ``u -> (mu, logvar)``) for q(z | u); returns self.

        The reference is kept outside ``nn.Module``'s registry, so the encoder's parameters are not
        duplicated in the prior (``state_dict``, ``parameters``).
        """
        fn = getattr(target, "encode", None)
        fn = fn if callable(fn) else target
        if not callable(fn):
            raise TypeError(f"bind needs a model with an encode(x) -> (mu, logvar) method or such a callable, "
                            f"got {type(target).__name__}")
        object.__setattr__(self, "_encode", fn)
        return self

    @property
    def is_bound(self) -> bool:
        return self._encode is not None

    # -- pieces ----------------------------------------------------------------------------------
    def pseudo_inputs(self) -> torch.Tensor:
        """The pseudo-inputs u_k = Hardtanh_{[0,1]}(pseudo_raw), shape (K, *data_shape) (pictures in chapter 03)."""
        u = F.hardtanh(self.pseudo_raw, 0.0, 1.0) if self.learn_pseudo_inputs else self.pseudo_raw
        return u.view(self.n_pseudo, *self.data_shape)

    def log_weights(self) -> torch.Tensor:
        """log w_k, shape (K,): log(1/K), or log softmax(logits) for the weighted VampPrior (Eq. 16)."""
        if self.logits is None:
            return torch.full((self.n_pseudo,), -math.log(self.n_pseudo), device=self.pseudo_raw.device,
                              dtype=self.pseudo_raw.dtype)
        return torch.log_softmax(self.logits, 0)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | u_k) for all k, each (K, latent): one encoder pass over the K pseudo-inputs."""
        if self._cached is not None:
            return self._cached
        if self._encode is None:
            raise RuntimeError("this VampPrior is not bound to an encoder: call prior.bind(vae) (a model with "
                               "encode(x) -> (mu, logvar)) or pass encoder_fn=vae.encode; the builders vamp_vae and "
                               "hvae do this")
        out = self._encode(self.pseudo_inputs())
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"the bound encoder returned {type(out).__name__}: expected (mu, logvar)")
        mu, logvar = out
        if mu.shape != logvar.shape or mu.ndim != 2 or mu.shape[0] != self.n_pseudo:
            raise ValueError(f"the bound encoder returned mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)}: "
                             f"expected two ({self.n_pseudo}, latent) tensors")
        return mu, logvar

    @contextlib.contextmanager
    def cache_components(self):
        """Inside the block, q(z | u_k) is computed once (without gradients) and reused by every ``log_prob``.

        For evaluation only, e.g. importance sampling, where ``log_prob`` runs once per chunk of samples
        while the weights do not change: ``with model.prior.cache_components(): ...``.
        """
        previous = self._cached
        with torch.no_grad():
            self._cached = None
            comps = self.components()
        self._cached = (comps[0].detach(), comps[1].detach())
        try:
            yield self
        finally:
            self._cached = previous

    # -- the density -----------------------------------------------------------------------------
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_k [log q(z | u_k) + log w_k], shape (batch,) (Eq. 9 / Eq. 16).

        Gradients flow to the pseudo-inputs, the weight logits and the bound encoder's parameters.
        """
        mu, logvar = self.components()
        _check_z(z, mu.shape[1])
        lw = None if self.logits is None else torch.log_softmax(self.logits, 0)
        return log_mixture_diag(z, mu, logvar, lw)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws (n, latent): k uniform (or ~ w), then z ~ q(z | u_k)."""
        mu, logvar = self.components()
        return _sample_mixture(n, mu, logvar, self.logits, generator)

    def extra_repr(self) -> str:
        return (f"n_pseudo={self.n_pseudo}, data_shape={self.data_shape}, init={self.init!r}, "
                f"learn_pseudo_inputs={self.learn_pseudo_inputs}, weighted={self.logits is not None}, "
                f"bound={self.is_bound}")


def _hidden_sizes(hidden) -> list[int]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        return [hidden, hidden]
    sizes = list(hidden)
    if not sizes or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in sizes):
        raise ValueError(f"hidden must be a positive integer (two layers of that width) or a list of them, got {hidden!r}")
    return sizes


def _gated_nets(latent_dim: int, hidden, data_shape: Sequence[int]) -> tuple[nn.Module, nn.Module]:
    d = math.prod(data_shape)
    h = _hidden_sizes(hidden)
    return gated_mlp([d, *h, 2 * latent_dim]), gated_mlp([latent_dim, *h[::-1], d])


def std_vae(latent_dim: int = 40, hidden: int | Sequence[int] = 300, data_shape: Sequence[int] = (1, 28, 28)) -> VAE:
    """The paper's one-level VAE with the standard normal prior (Table 1, "standard").

    Encoder D-300-300-2k and decoder k-300-300-D of gated dense layers (``vaelab.core.nets.gated_mlp``;
    ``hidden`` an int means two layers of that width), Bernoulli decoder. The decoder outputs logits
    and the likelihood is BCE-with-logits (``vaelab.core.densities.log_bernoulli``), which is finite for any
    logit: the official code's clamp of the Bernoulli mean to [1e-5, 1 - 1e-5] is not needed.
    """
    positive_int("latent_dim", latent_dim)
    enc, dec = _gated_nets(latent_dim, hidden, data_shape)
    return VAE(enc, dec, latent_dim, data_shape, likelihood="bernoulli")


def mog_vae(latent_dim: int = 40, n_components: int = 500, hidden: int | Sequence[int] = 300,
            data_shape: Sequence[int] = (1, 28, 28), learn_weights: bool = False, init_scale: float = 1.0) -> VAE:
    """``std_vae``'s networks with the mixture-of-Gaussians prior (``MixtureOfGaussians``; the paper's MoG row)."""
    positive_int("latent_dim", latent_dim)
    enc, dec = _gated_nets(latent_dim, hidden, data_shape)
    prior = MixtureOfGaussians(latent_dim, n_components, init_scale=init_scale, learn_weights=learn_weights)
    return VAE(enc, dec, latent_dim, data_shape, likelihood="bernoulli", prior=prior)


def vamp_vae(latent_dim: int = 40, n_pseudo: int = 500, hidden: int | Sequence[int] = 300,
             data_shape: Sequence[int] = (1, 28, 28), pseudo_init: str = "random", data=None,
             learn_pseudo_inputs: bool = True, weighted: bool = False) -> VAE:
    """The VampPrior paper's one-level model (Table 1, "VampPrior"): ``std_vae``'s networks with a VampPrior.

    The prior is bound to the VAE's own ``encode`` (it is the VAE's q(z | x) at the pseudo-inputs).
    ``pseudo_init="data"`` with ``data`` initialises the pseudo-inputs from training images;
    ``learn_pseudo_inputs=False`` fixes them there ("VampPrior data"); ``weighted=True`` learns the
    mixture weights (Eq. 16). See ``VampPrior``. The prior's parameters are named ``prior.pseudo_raw``
    (and ``prior.logits``).
    """
    positive_int("latent_dim", latent_dim)
    enc, dec = _gated_nets(latent_dim, hidden, data_shape)
    prior = VampPrior(None, n_pseudo=n_pseudo, data_shape=data_shape, init=pseudo_init, data=data,
                      weighted=weighted, learn_pseudo_inputs=learn_pseudo_inputs)
    vae = VAE(enc, dec, latent_dim, data_shape, likelihood="bernoulli", prior=prior)
    prior.bind(vae)
    return vae
