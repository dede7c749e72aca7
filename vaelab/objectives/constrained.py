"""The VAE as a constrained problem: GECO and REWO as schedules of the weight beta (chapter 04).

Rezende & Viola (2018, "Taming VAEs") minimise the KL term subject to a constraint on the
reconstruction, E[C] <= kappa^2, through the Lagrangian

    L(lambda) = E[KL] + lambda * (E[C] - kappa^2).

Divided by lambda (which does not move the minimiser in the network parameters) this is
``C + beta * KL`` up to a constant, with **beta = 1 / lambda**. The book trains one objective,
``rec + weight * reg`` (``vaelab.objectives.schedules``), so these schedules own ``weight = beta = 1 / lambda``.

Which term plays C (its scale decides everything: chapter 04, Section 4)
-----------------------------------------------------------------------
``C = scale * terms[constraint] + shift``, by default ``constraint="rec", scale=1, shift=0``: C is
the per-example reconstruction term of the model, the negative log-likelihood summed over pixels
(nats per image), and kappa^2 is in the same units. For C = the per-pixel squared error with a
Gaussian decoder of fixed ``obs_sigma`` over D pixels, ``rec = SSE / (2 sigma^2) + D/2 log(2 pi sigma^2)``
is affine in the per-pixel MSE, so ``mse_from_gaussian_rec(obs_sigma, D)`` gives the (scale, shift)
with ``C = MSE``. C only decides the violation delta = C_hat - kappa^2; the weight is always applied to
the book's ``reg`` next to ``rec``. With C = scale * rec + shift the exact Lagrangian multiplier of C is
lambda' = 1 / (beta * scale) (the gradients of rec + beta * KL and of lambda' (C - kappa^2) + KL are
proportional), and lambda' obeys the same multiplicative update as lambda, so GECO is exact in
either reading; only the meaning of ``lambda_init`` is in the book's units. For REWO it matters:
beta = 1 is then the book's objective rec + 1 * reg, the ELBO when rec is the NLL (Klushyn et al.'s
reason for pulling beta towards 1), whatever units C is measured in.

Timing (Klushyn et al.'s Algorithm 1). ``fit`` calls ``schedule.observe(terms, t)`` with the
current batch's terms right after the forward pass of step t (t counts from 1), *then* reads
``schedule.weight`` for that step's loss, and calls ``schedule.update(terms, t)`` after the optimiser
step (a no-op here). So C_t, C_hat_t and lambda_t / beta_t are computed in ``observe`` and the
gradient step at t uses beta_t, the value computed from C_hat_t of the very batch it trains on, as in
Algorithm 1 (and in Klushyn et al.'s statement of GECO's Eq. 5, with C_hat_t and lambda_t at step t).
There is no lag of one batch. A schedule that holds the prior fixed says so with ``freeze_prior``
(REWO's initial phase), read by ``fit`` after ``observe`` of the same step.

Cost. The state lives in 0-dim tensors on the terms' device (float64, float32 on MPS), so GECO
never copies to the host; REWO reads one boolean per step only during its initial phase.

Departures from the equations, each stated where it applies: GECO's optional ``clamp`` (not part of
Eq. 5) and REWO's ``beta_min`` floor (not part of Eq. 11 or Eq. 15). Where neither binds, the
updates are the paper's equations to rounding.

Klushyn et al.'s App. B.1 gives an alternative update (Eqs. 14-15), ``REWOB1`` here: GECO's Eq. 5 on
gamma = lambda - 1 with beta = 1 / (1 + tau gamma), so that beta <= 1; the paper reports that
Eq. 11 is easier to tune and gave better results, and shows one run of it (Fig. 10). Linear
warm-up (the WU baselines, App. B.2) is ``vaelab.objectives.schedules.LinearWarmup``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from vaelab.objectives.schedules import Schedule

__all__ = ["GECO", "REWO", "REWOB1", "f_beta", "rewo_delta_beta", "rewo_b1_delta_beta",
           "geco_delta_beta", "heaviside", "mse_from_gaussian_rec", "FLOAT32_TINY"]

FLOAT32_TINY = float(torch.finfo(torch.float32).tiny)  # 1.18e-38, the smallest normal float32


# ----------------------------------------------------------------------------- pure update rules
def _tensors(*xs):
    """The arguments as tensors of one floating dtype: the promotion of the tensor (or array) arguments,
    the default dtype if there are none; Python numbers follow it without rounding through float32."""
    xs = [x if isinstance(x, (bool, int, float)) else torch.as_tensor(x) for x in xs]
    dtype = None
    for x in xs:
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if dtype is None else torch.promote_types(dtype, x.dtype)
    if dtype is None or not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return [x.to(dtype) if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=dtype) for x in xs]


def heaviside(delta) -> torch.Tensor:
    """H(delta) = 1 for delta > 0, else 0; **H(0) = 0**: a constraint met with equality counts as satisfied.

    (Eq. 11 multiplies f_beta by delta, so the value of H(0) never changes the beta update.)
    """
    (delta,) = _tensors(delta)
    return (delta > 0).to(delta.dtype)


def f_beta(beta, delta, tau=3.0) -> torch.Tensor:
    """f_beta(beta, delta; tau) = (1 - H(delta)) tanh(tau (beta - 1)) - H(delta) (Klushyn et al. 2019, Eq. 12).

    Violated constraint (delta > 0): -1. Satisfied (delta <= 0): tanh(tau (beta - 1)), negative for
    beta < 1, positive for beta > 1. Vectorised (broadcasts over tensors).
    """
    beta, delta, tau = _tensors(beta, delta, tau)
    h = heaviside(delta)
    return (1 - h) * torch.tanh(tau * (beta - 1)) - h


def rewo_delta_beta(beta, delta, nu=1.0, tau=3.0) -> torch.Tensor:
    """Delta beta = beta_t - beta_{t-1} of the REWO update (Eq. 11) at beta_{t-1} = beta, delta = C_hat_t - kappa^2.

    beta_t = beta_{t-1} exp(nu f_beta(beta_{t-1}, delta; tau) delta), so
    Delta beta = beta (exp(nu f_beta(beta, delta; tau) delta) - 1). The factor delta in the exponent
    gives the signs: delta > 0 -> exp(-nu delta) < 1 (beta falls, as GECO's); delta < 0 and beta < 1 ->
    f_beta < 0, f_beta delta > 0 (beta rises towards 1); delta < 0 and beta > 1 -> beta falls towards 1.
    Klushyn et al.'s Fig. 1 plots this over a grid of (beta, C_hat - kappa^2) with nu = 1, tau = 3.
    """
    beta, delta, nu, tau = _tensors(beta, delta, nu, tau)
    return beta * torch.expm1(nu * f_beta(beta, delta, tau) * delta)


def geco_delta_beta(beta, delta, nu=1.0) -> torch.Tensor:
    """GECO's update seen on beta = 1 / lambda: beta_t = beta_{t-1} exp(-nu delta), Delta beta = beta (exp(-nu delta) - 1).

    It equals REWO's Delta beta wherever the constraint is violated (f_beta = -1), and keeps
    growing without bound where it is satisfied: the contrast of Klushyn et al.'s Fig. 1.
    """
    beta, delta, nu = _tensors(beta, delta, nu)
    return beta * torch.expm1(-nu * delta)


def rewo_b1_delta_beta(beta, delta, nu=1.0) -> torch.Tensor:
    """Delta beta = beta_t - beta_{t-1} of App. B.1's update (Klushyn et al. Eqs. 14-15) at beta_{t-1} = beta.

    Eq. 14: gamma_t = gamma_{t-1} exp(nu delta_t), delta_t = C_hat_t - kappa^2 (GECO's Eq. 5 on
    gamma = lambda - 1); Eq. 15: beta_t = 1 / (1 + tau gamma_t). Eliminating gamma_{t-1} =
    (1 / beta_{t-1} - 1) / tau gives

        beta_t = 1 / (1 + (1 / beta_{t-1} - 1) exp(nu delta_t)),  i.e.  logit beta_t = logit beta_{t-1} - nu delta_t,

    whatever tau: given beta_{t-1}, tau drops out (it only ties a start value gamma_0 to beta_0).
    So B.1 is GECO's step taken on logit beta instead of log beta: the same where beta << 1,
    and beta approaches 1 from below without ever reaching it while the constraint holds.
    Defined for 0 < beta < 1 (gamma > 0); NaN elsewhere. Vectorised. Chapter 04 draws it beside Fig. 1/9.
    """
    beta, delta, nu = _tensors(beta, delta, nu)
    inside = (beta > 0) & (beta < 1)
    b = torch.where(inside, beta, torch.full_like(beta, 0.5))
    new = torch.sigmoid(torch.logit(b) - nu * delta)
    return torch.where(inside, new - b, torch.full_like(new, math.nan))


def mse_from_gaussian_rec(obs_sigma: float, n_pixels: int) -> dict[str, float]:
    """``dict(scale=..., shift=...)`` with ``scale * rec + shift`` = the per-pixel squared error.

    For a Gaussian decoder N(x | mean, obs_sigma^2 I) over D = n_pixels values,
    rec = -log p(x|z) = SSE / (2 sigma^2) + (D / 2) log(2 pi sigma^2), so
    MSE = SSE / D = (2 sigma^2 / D) rec - sigma^2 log(2 pi sigma^2).
    Use as ``GECO(kappa, nu, **mse_from_gaussian_rec(sigma, D))``: kappa is then a per-pixel RMSE tolerance.
    """
    if not (isinstance(obs_sigma, (int, float)) and obs_sigma > 0 and math.isfinite(obs_sigma)):
        raise ValueError(f"obs_sigma must be a positive number, got {obs_sigma!r}")
    if not isinstance(n_pixels, int) or n_pixels < 1:
        raise ValueError(f"n_pixels must be a positive integer (values per image), got {n_pixels!r}")
    var = float(obs_sigma) ** 2
    return {"scale": 2.0 * var / n_pixels, "shift": -var * math.log(2.0 * math.pi * var)}


# ----------------------------------------------------------------------------- schedules
def _positive(name: str, value, hint: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}{hint}")
    return float(value)


def _state_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64



def _beta_floor(beta_min, beta_init: float) -> float | None:
    if beta_min is None:
        return None
    if isinstance(beta_min, bool) or not isinstance(beta_min, (int, float)) or not math.isfinite(beta_min) \
            or not 0 < beta_min <= beta_init:
        raise ValueError(f"beta_min must be None (no floor) or a number with 0 < beta_min <= beta_init={beta_init}, "
                         f"got {beta_min!r}")
    if beta_min < FLOAT32_TINY:
        raise ValueError(f"beta_min={beta_min!r} is below float32's smallest normal number {FLOAT32_TINY:.3g}: "
                         "the floor exists to keep the float32 weight out of that range; use e.g. 1e-20")
    return float(beta_min)


class _Constrained(Schedule):
    """Shared part: the constraint C from the terms, delta = C_hat - kappa^2, the moving average C_hat.

    Subclasses compute their weight in ``observe`` (called by ``fit`` before the weight of step t is
    read); ``update`` after the step is the base class's no-op.
    """

    def __init__(self, kappa, nu, alpha, constraint, scale, shift):
        self.kappa = _positive("kappa", kappa, ": kappa^2 is the tolerance of the constraint E[C] <= kappa^2")
        self.nu = _positive("nu", nu, ": nu is the step size of the multiplier update")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 1:
            raise ValueError(f"alpha must be in [0, 1) (the moving-average factor; 0 = no averaging), got {alpha!r}")
        self.alpha = float(alpha)
        if not isinstance(constraint, str) or not constraint:
            raise ValueError(f"constraint must be the name of a logged term (e.g. 'rec'), got {constraint!r}")
        self.constraint = constraint
        self.scale = _positive("scale", scale, ": C = scale * terms[constraint] + shift must grow with the term")
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
            raise ValueError(f"shift must be a finite number, got {shift!r}")
        self.shift = float(shift)
        self.c_hat: torch.Tensor | None = None  # C_hat_t, the moving average of C

    @property
    def kappa2(self) -> float:
        return self.kappa**2

    def constraint_value(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """C_t = scale * terms[constraint] + shift (a 0-dim tensor in the state dtype)."""
        if self.constraint not in terms:
            raise ValueError(f"constraint={self.constraint!r} is not among the logged terms {sorted(terms)}: "
                           "pass one of them as constraint=..., or make the model return it")
        c = torch.as_tensor(terms[self.constraint]).detach()
        if c.ndim != 0:
            c = c.mean()
        c = c.to(_state_dtype(c.device))
        return c * self.scale + self.shift

    def _average(self, c: torch.Tensor) -> torch.Tensor:
        """C_hat_t = alpha C_hat_{t-1} + (1 - alpha) C_t, C_hat_1 = C_1 (Algorithm 1's C_hat_0 = C_ba)."""
        if self.c_hat is None:
            self.c_hat = c
        else:
            self.c_hat = self.alpha * self.c_hat.to(c.device) + (1.0 - self.alpha) * c
        return self.c_hat

    def observe(self, terms: dict[str, torch.Tensor], step: int) -> None:
        """Read C_t of the current batch (before its gradient step) and compute the weight of step t."""
        raise NotImplementedError

    @property
    def delta(self) -> torch.Tensor | None:
        """C_hat - kappa^2 (None before the first ``observe``); > 0 means the constraint is violated."""
        return None if self.c_hat is None else self.c_hat - self.kappa2

    def _config(self) -> str:
        out = f"kappa={self.kappa}, nu={self.nu}, alpha={self.alpha}"
        if (self.constraint, self.scale, self.shift) != ("rec", 1.0, 0.0):
            out += f", constraint={self.constraint!r}, scale={self.scale}, shift={self.shift}"
        return out


def _clone(t):
    return None if t is None else t.detach().clone()


class GECO(_Constrained):
    """GECO (Rezende & Viola 2018; Klushyn et al. Eq. 5): weight beta = 1 / lambda, multiplicative multiplier update.

    In ``observe`` at step t, before that step's gradient: C_hat_t = alpha C_hat_{t-1} + (1 - alpha) C_t
    (C_hat_1 = C_1), then, for t > ``start_step``, lambda_t = lambda_{t-1} exp(nu (C_hat_t - kappa^2)),
    and step t trains with beta_t = 1 / lambda_t. lambda grows (beta falls) while the constraint is
    violated and shrinks (beta grows, without bound) while it is met.

    ``log_space=True`` keeps log lambda and adds nu (C_hat_t - kappa^2): the same update without over-
    or underflow, so a multiplier driven far up by a large initial error can come back. ``log_space=False``
    multiplies lambda in float32 as much public code does; lambda can then reach 0 or inf and stay there.

    ``clamp=(lo, hi)`` bounds lambda (public code often uses (1e-10, 1e10)); None leaves it free. The
    clamp is **not part of Eq. 5**: in a step where lambda_{t-1} exp(nu delta_t) leaves [lo, hi], lambda_t
    is the bound instead, and the following steps start from there; wherever it does not bind, the update
    is Eq. 5. The default also keeps the float32 weight >= 1e-10, far above float32's subnormal range
    (below 1.2e-38), where CPU steps become many times slower; with ``clamp=None`` a long violation drives
    the weight there (and to 0).

    ``lambda_init`` is lambda_0 (the weight is 1 / lambda_0 until the first update). Which term is C:
    module docstring (``constraint``, ``scale``, ``shift``).

    The "straight-through" loss C + stop_gradient(C_hat - C) of some public code changes only the
    loss value, not its gradient, so the book's objective rec + beta reg trains the same way.
    Derived in chapter 04.
    """

    def __init__(self, kappa: float, nu: float, alpha: float = 0.99, lambda_init: float = 1.0,
                 log_space: bool = True, clamp: Sequence[float] | None = (1e-10, 1e10), start_step: int = 0,
                 constraint: str = "rec", scale: float = 1.0, shift: float = 0.0):
        super().__init__(kappa, nu, alpha, constraint, scale, shift)
        self.lambda_init = _positive("lambda_init", lambda_init, ": the Lagrange multiplier starts positive")
        if not isinstance(log_space, bool):
            raise ValueError(f"log_space must be True or False, got {log_space!r}")
        self.log_space = log_space
        if clamp is not None:
            try:
                lo, hi = (float(v) for v in clamp)
            except (TypeError, ValueError):
                raise ValueError(f"clamp must be None or two numbers (lo, hi), got {clamp!r}") from None
            if not (0 < lo < hi < math.inf):
                raise ValueError(f"clamp=(lo, hi) needs 0 < lo < hi < inf (bounds on lambda), got {clamp!r}")
            if not lo <= self.lambda_init <= hi:
                raise ValueError(f"lambda_init={lambda_init} lies outside clamp={clamp!r}")
            clamp = (lo, hi)
        self.clamp = clamp
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"start_step must be an integer >= 0 (steps before the multiplier moves), got {start_step!r}")
        self.start_step = start_step
        self._mult: torch.Tensor | None = None  # log lambda (log_space) or lambda in float32; None: lambda_init

    @property
    def multiplier(self):
        """The current Lagrange multiplier lambda (a float before the first update, else a 0-dim tensor)."""
        if self._mult is None:
            return self.lambda_init
        return torch.exp(self._mult) if self.log_space else self._mult

    @property
    def weight(self):
        """beta = 1 / lambda: the weight of ``reg`` in rec + beta * reg (float32 0-dim tensor after the first update)."""
        if self._mult is None:
            return 1.0 / self.lambda_init
        if self.log_space:
            return torch.exp(-self._mult).float()
        return torch.reciprocal(self._mult)

    def observe(self, terms, step):
        c_hat = self._average(self.constraint_value(terms))
        if step <= self.start_step:
            return
        delta = c_hat - self.kappa2
        if self.log_space:
            log_lam = torch.full_like(c_hat, math.log(self.lambda_init)) if self._mult is None else self._mult.to(c_hat)
            log_lam = log_lam + self.nu * delta  # Eq. 5 in log space
            if self.clamp is not None:  # not part of Eq. 5
                log_lam = log_lam.clamp(math.log(self.clamp[0]), math.log(self.clamp[1]))
            self._mult = log_lam
        else:
            lam = torch.full((), self.lambda_init, dtype=torch.float32, device=c_hat.device) if self._mult is None \
                else self._mult.to(c_hat.device)
            lam = lam * torch.exp(self.nu * delta).float()
            if self.clamp is not None:
                lam = lam.clamp(*self.clamp)
            self._mult = lam

    def state_dict(self):
        return {"c_hat": _clone(self.c_hat), "mult": _clone(self._mult), "log_space": self.log_space}

    def load_state_dict(self, state):
        if bool(state["log_space"]) != self.log_space:
            raise ValueError(f"state was saved with log_space={state['log_space']}, this GECO has log_space={self.log_space}")
        self.c_hat, self._mult = _clone(state["c_hat"]), _clone(state["mult"])

    def __repr__(self):
        return (f"GECO({self._config()}, lambda_init={self.lambda_init}, log_space={self.log_space}, "
                f"clamp={self.clamp}, start_step={self.start_step})")


class _TwoPhase(_Constrained):
    """Algorithm 1's frame: an initial phase (beta = beta_init, prior frozen), then a beta update each step.

    ``observe`` at step t: C_hat_t; if still in the initial phase and C_hat_t < kappa^2 (strict), the
    phase ends for good; if the phase is over (including in this very step), the subclass's beta
    update runs with delta_t = C_hat_t - kappa^2. ``freeze_prior`` is True while the phase lasts, so the
    step that ends it already trains every parameter, with the updated beta.
    """

    def __init__(self, kappa, nu, alpha, beta_init, beta_min, constraint, scale, shift):
        super().__init__(kappa, nu, alpha, constraint, scale, shift)
        self.beta_init = _positive("beta_init", beta_init, " (the paper's beta << 1 of the initial phase)")
        self.beta_min = _beta_floor(beta_min, self.beta_init)
        self.initial_phase = True

    @property
    def freeze_prior(self) -> bool:
        """True during the initial phase: ``fit`` then keeps the parameters of ``model.prior`` fixed."""
        return self.initial_phase

    def observe(self, terms, step):
        c_hat = self._average(self.constraint_value(terms))
        if self.initial_phase:
            if not bool(c_hat < self.kappa2):  # the only host sync, and only in the initial phase
                return
            self.initial_phase = False
        self._advance(c_hat - self.kappa2)

    def _advance(self, delta: torch.Tensor) -> None:
        raise NotImplementedError


class REWO(_TwoPhase):
    """REWO (Klushyn et al. 2019, Algorithm 1, Eqs. 11-12): an initial phase, then a beta update pulled towards 1.

    * Initial phase: beta = ``beta_init`` (the paper's "beta << 1"; 1e-6 here, our choice) and the prior's
      parameters are not trained (``freeze_prior`` is True; ``fit`` holds the parameters of ``model.prior``):
      only encoder and decoder learn, essentially on reconstruction alone. It ends in the first step with
      C_hat_t < kappa^2 (strict; C_hat = kappa^2 stays in the phase), for good.
    * In that same step and every later one, all parameters are trained, with (``observe``, before the step)

          beta_t = beta_{t-1} exp(nu f_beta(beta_{t-1}, delta_t; tau) delta_t),  delta_t = C_hat_t - kappa^2   (Eq. 11)
          f_beta(beta, delta; tau) = (1 - H(delta)) tanh(tau (beta - 1)) - H(delta)                             (Eq. 12)

      computed as log beta += nu f_beta delta.

    Sign derivation. Violated (delta > 0): H = 1, f_beta = -1, exponent -nu delta < 0: beta falls,
    exactly as GECO's beta = 1 / lambda (the weight of the KL goes down, reconstruction improves).
    Satisfied (delta < 0): H = 0, f_beta = tanh(tau (beta - 1)), which is < 0 for beta < 1, so the
    exponent nu f_beta delta is > 0 and beta rises; for beta > 1 it falls: beta = 1 attracts. The
    factor delta is what does this: exp(nu f_beta) alone would push beta < 1 further down while
    the constraint is met, away from 1. Starting below 1, beta never overshoots 1 when
    nu tau |delta| <= 1, because tanh(tau (1 - beta)) <= tau (1 - beta) <= -tau log beta, so one step
    adds at most -log beta to log beta. For larger nu tau |delta| it may overshoot and oscillate
    (and from above 1 it may dip slightly below 1 on the way down).

    **The floor ``beta_min`` is not part of Eq. 11.** While the constraint stays violated, Eq. 11 divides
    beta by exp(nu delta) every step without limit; the float32 weight then reaches float32's subnormal
    numbers (below 1.18e-38; 5.5e-39 after 376 steps of a forced violation), where every CPU step is
    about 10 times slower, and finally 0. So log beta is clamped from below at log(beta_min): the update
    is max(Eq. 11, beta_min), identical to Eq. 11 in every step where Eq. 11's value is >= beta_min.
    The default 1e-20 lies 18 orders of magnitude above float32's smallest normal number, so beta
    times any term or gradient entry larger than 1e-18 in size stays a normal float32, and is so small
    that the KL term it weighs is negligible next to the reconstruction term (a KL of 1e6 nats weighs
    1e-14): where it binds, it changes how far beta has to climb back once the constraint holds
    (at most log(1 / beta_min) = 46 units of log beta), not the step it floors. ``beta_min=None``
    removes the floor (Eq. 11 exactly). Which term is C and why beta = 1 means the ELBO: module
    docstring. Derived in chapter 04.
    """

    def __init__(self, kappa: float, nu: float, tau: float = 3.0, alpha: float = 0.99, beta_init: float = 1e-6,
                 beta_min: float | None = 1e-20, constraint: str = "rec", scale: float = 1.0, shift: float = 0.0):
        super().__init__(kappa, nu, alpha, beta_init, beta_min, constraint, scale, shift)
        self.tau = _positive("tau", tau, ": tau sets how sharply beta is pulled towards 1")
        self._log_beta: torch.Tensor | None = None  # None: beta = beta_init

    @property
    def beta(self):
        """The current beta (a float before the first beta update, else a float64/float32 0-dim tensor)."""
        return self.beta_init if self._log_beta is None else torch.exp(self._log_beta)

    @property
    def weight(self):
        if self._log_beta is None:
            return self.beta_init
        return torch.exp(self._log_beta).float()

    def _advance(self, delta):
        log_beta = torch.full_like(delta, math.log(self.beta_init)) if self._log_beta is None \
            else self._log_beta.to(delta)
        log_beta = log_beta + self.nu * f_beta(torch.exp(log_beta), delta, self.tau) * delta  # Eq. 11
        if self.beta_min is not None:  # not part of Eq. 11
            log_beta = log_beta.clamp_min(math.log(self.beta_min))
        self._log_beta = log_beta

    def state_dict(self):
        return {"c_hat": _clone(self.c_hat), "log_beta": _clone(self._log_beta), "initial_phase": self.initial_phase}

    def load_state_dict(self, state):
        self.c_hat, self._log_beta = _clone(state["c_hat"]), _clone(state["log_beta"])
        self.initial_phase = bool(state["initial_phase"])

    def __repr__(self):
        return f"REWO({self._config()}, tau={self.tau}, beta_init={self.beta_init}, beta_min={self.beta_min})"


class REWOB1(_TwoPhase):
    """REWO's initial phase with the alternative beta update of Klushyn et al. App. B.1 (Eqs. 14-15).

    App. B.1 keeps beta <= 1 (lambda >= 1) by applying GECO's Eq. 5 to gamma = lambda - 1:

        lambda_t = 1 + gamma_t,   gamma_t = gamma_{t-1} exp(nu (C_hat_t - kappa^2))      (Eq. 14)
        beta_t = 1 / (1 + tau gamma_t)                                                   (Eq. 15)

    with tau a slope parameter. While the constraint is violated gamma grows and beta falls (for
    beta << 1 by the same factor exp(-nu delta) as GECO's and REWO's); while it holds gamma shrinks
    towards 0 and beta rises towards 1, from below, reaching it only in the limit. The paper reports
    that Eq. 11 is easier to tune and gave better results, and shows one such run in Fig. 10, titled
    "VHP + REWO (with different beta-update scheme)": so this schedule keeps Algorithm 1's initial phase
    (``freeze_prior``, beta = ``beta_init`` until C_hat_t < kappa^2 first holds) and replaces only the line
    that updates beta.

    What the paper leaves open, and our choices:

    * **gamma's start value.** Not given. We set gamma_0 = (1 / beta_init - 1) / tau, so that Eq. 15 gives
      beta_0 = beta_init: beta is continuous when the initial phase ends, as in REWO. This needs
      0 < beta_init < 1 (beta_init = 1 would make gamma_0 = 0, which a multiplicative update never moves),
      in line with the paper's remark that Eq. 11, unlike this scheme, allows any beta > 0 as a start.
    * **tau.** Not given for this scheme. Given beta_{t-1}, Eq. 15 yields
      beta_t = 1 / (1 + (1 / beta_{t-1} - 1) exp(nu delta_t)) whatever tau (``rewo_b1_delta_beta``): with
      gamma_0 tied to beta_init as above, tau changes no beta at all, only gamma and lambda = 1 + gamma.
      Default tau = 1.
    * **beta and lambda.** Eq. 14 defines lambda_t = 1 + gamma_t and Eq. 15 beta_t = 1 / (1 + tau gamma_t):
      beta = 1 / lambda only for tau = 1. The weight used here is Eq. 15's beta (``weight``, ``beta``);
      ``multiplier`` is Eq. 14's lambda.

    State: log gamma in float64. ``beta_min`` (default 1e-20) is a floor on beta that is **not part of
    Eq. 15**, for the reason given in ``REWO``: log gamma is capped where beta would fall below it.
    ``beta_min=None`` removes it. Derived in chapter 04.
    """

    def __init__(self, kappa: float, nu: float, tau: float = 1.0, alpha: float = 0.99, beta_init: float = 1e-6,
                 beta_min: float | None = 1e-20, constraint: str = "rec", scale: float = 1.0, shift: float = 0.0):
        if isinstance(beta_init, (int, float)) and not isinstance(beta_init, bool) and beta_init >= 1:
            raise ValueError(f"beta_init must be < 1 for App. B.1's update (beta = 1 / (1 + tau gamma) with gamma > 0), "
                             f"got {beta_init!r}")
        super().__init__(kappa, nu, alpha, beta_init, beta_min, constraint, scale, shift)
        self.tau = _positive("tau", tau, ": tau is Eq. 15's slope, beta = 1 / (1 + tau gamma)")
        self.log_gamma_init = math.log((1.0 / self.beta_init - 1.0) / self.tau)
        self._log_gamma_max = None if self.beta_min is None else math.log((1.0 / self.beta_min - 1.0) / self.tau)
        self._log_gamma: torch.Tensor | None = None  # None: gamma_0

    @property
    def gamma(self):
        """gamma of Eq. 14 (a float before the first update, else a 0-dim tensor)."""
        return math.exp(self.log_gamma_init) if self._log_gamma is None else torch.exp(self._log_gamma)

    @property
    def multiplier(self):
        """lambda = 1 + gamma (Eq. 14); equal to 1 / beta only when tau = 1."""
        return 1.0 + self.gamma

    @property
    def beta(self):
        """beta = 1 / (1 + tau gamma) (Eq. 15): a float before the first update, else a 0-dim tensor."""
        if self._log_gamma is None:
            return self.beta_init
        return torch.sigmoid(-(self._log_gamma + math.log(self.tau)))

    @property
    def weight(self):
        if self._log_gamma is None:
            return self.beta_init
        return self.beta.float()

    def _advance(self, delta):
        log_gamma = torch.full_like(delta, self.log_gamma_init) if self._log_gamma is None \
            else self._log_gamma.to(delta)
        log_gamma = log_gamma + self.nu * delta  # Eq. 14
        if self._log_gamma_max is not None:  # beta >= beta_min: not part of Eq. 15
            log_gamma = log_gamma.clamp_max(self._log_gamma_max)
        self._log_gamma = log_gamma

    def state_dict(self):
        return {"c_hat": _clone(self.c_hat), "log_gamma": _clone(self._log_gamma), "initial_phase": self.initial_phase}

    def load_state_dict(self, state):
        self.c_hat, self._log_gamma = _clone(state["c_hat"]), _clone(state["log_gamma"])
        self.initial_phase = bool(state["initial_phase"])

    def __repr__(self):
        return f"REWOB1({self._config()}, tau={self.tau}, beta_init={self.beta_init}, beta_min={self.beta_min})"
