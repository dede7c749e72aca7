"""Schedules own the weight in the one objective ``rec + weight * reg``.

VAE's KL weight lambda (beta-VAE), HEBAE's and WAE's lambda, a linear KL warm-up, and later
GECO's and REWO's Lagrange multiplier beta (chapter 04) are all schedules, so a chapter swaps
them without touching the loop. In every step ``fit`` calls, in this order (Algorithm 1 of
Klushyn et al. 2019): ``observe(terms, t)`` with the current batch's terms (batch means,
detached), reads ``weight`` for this step's loss, takes the gradient step, then calls
``update(record, t)``; ``end_epoch(epoch)`` after every epoch.

GECO and REWO live in ``vaelab.objectives.constrained``. A schedule may freeze the prior for a while (REWO's
initial phase trains only encoder and decoder): while ``freeze_prior`` is True, ``fit`` does not
update the parameters of ``model.prior``.
"""
from __future__ import annotations

import math

import torch

__all__ = ["Schedule", "Constant", "LinearWarmup", "objective"]


def objective(terms: dict[str, torch.Tensor], weight) -> torch.Tensor:
    """The trained loss: mean(rec) + weight * mean(reg) (``reg`` may be per example or per batch)."""
    return terms["rec"].mean() + weight * terms["reg"].mean()


def _check_weight(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}: the regulariser's weight cannot be negative")
    return float(value)


class Schedule:
    """Base class: a constant weight of 1 that never changes and freezes nothing."""

    freeze_prior: bool = False

    @property
    def weight(self):
        return 1.0

    def observe(self, terms: dict[str, torch.Tensor], step: int) -> None:
        """Called in step ``step`` (from 1) with this batch's logged terms, before ``weight`` is read."""

    def update(self, terms: dict[str, torch.Tensor], step: int) -> None:
        """Called after every optimisation step with the batch means of the logged terms (detached)."""

    def end_epoch(self, epoch: int) -> None:
        """Called after every epoch (``epoch`` counts from 1)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Constant(Schedule):
    """The same weight throughout: 1 gives the ELBO, another value the beta-VAE's (chapter 01's lambda).

    Chapters call this value lambda (their parameter ``lam``); here it is ``weight`` like every schedule's.
    """

    def __init__(self, weight: float = 1.0):
        self._weight = _check_weight("weight", weight)

    @property
    def weight(self):
        return self._weight

    def __repr__(self):
        return f"Constant(weight={self._weight})"


class LinearWarmup(Schedule):
    """weight = initial + (final - initial) * min(1, t / length), t counted in steps or epochs.

    The VampPrior paper's warm-up is ``LinearWarmup(100, unit="epoch")`` (beta = epoch / 100,
    Tomczak & Welling 2018, Sec. 5); Klushyn et al.'s WU baselines are the same over 20 or 200 epochs.
    """

    def __init__(self, length: int, final: float = 1.0, initial: float = 0.0, unit: str = "step"):
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer number of {unit}s, got {length!r}")
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit={unit!r} is unknown: use 'step' or 'epoch'")
        self.length, self.unit = length, unit
        self.final = _check_weight("final", final)
        self.initial = _check_weight("initial", initial)
        self.t = 0

    @property
    def weight(self):
        return self.initial + (self.final - self.initial) * min(1.0, self.t / self.length)

    def update(self, terms, step):
        if self.unit == "step":
            self.t += 1

    def end_epoch(self, epoch):
        if self.unit == "epoch":
            self.t += 1

    def state_dict(self):
        return {"t": self.t}

    def load_state_dict(self, state):
        self.t = int(state["t"])

    def __repr__(self):
        return f"LinearWarmup(length={self.length}, final={self.final}, initial={self.initial}, unit={self.unit!r})"
