"""How much of a study's spread the seed explains, and how much the method (chapter 04b).

In the pendulum study of chapter 04b every method is trained once per seed, and one seed gives
every method the same initial weights and the same sequence of batches. The angle errors of S
seeds and M methods then form an S x M table y[s, m], and two questions can be asked of it.

``seed_method_anova``: the additive two-way model without replication,
y[s, m] = mu + a_s + b_m + e[s, m]. Its sums of squares split the total exactly,

    SS_total  = sum_{s,m} (y[s, m] - ybar)^2
    SS_seed   = M sum_s (ybar[s, .] - ybar)^2                    (S - 1 degrees of freedom)
    SS_method = S sum_m (ybar[., m] - ybar)^2                    (M - 1)
    SS_resid  = SS_total - SS_seed - SS_method                   ((S - 1)(M - 1))

and F = (SS_effect / df_effect) / (SS_resid / df_resid) tests each effect against the residual
(Fisher's F distribution under normal errors). With one run per cell, the seed x method
interaction cannot be told apart from noise: it *is* the residual. The fractions SS_seed / SS_total
and SS_method / SS_total say, without any distributional assumption, how much of the spread each
factor accounts for; the p-values lean on normal errors, which bimodal errors (a run finds the ring
or it does not) do not have, so ``friedman`` gives the rank-based test of the method effect beside it.

``paired_gap``: one method against a reference on the seeds both were run with: the mean
difference, its paired standard error sd(d) / sqrt(n), and on how many seeds the reference is
lower.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["SeedMethodAnova", "seed_method_anova", "friedman", "PairedGap", "paired_gap"]


class SeedMethodAnova(NamedTuple):
    ss_seed: float
    ss_method: float
    ss_resid: float
    ss_total: float
    df_seed: int
    df_method: int
    df_resid: int
    f_seed: float
    f_method: float
    p_seed: float
    p_method: float

    @property
    def seed_share(self) -> float:
        """SS_seed / SS_total: the part of the spread that the seed accounts for."""
        return self.ss_seed / self.ss_total

    @property
    def method_share(self) -> float:
        """SS_method / SS_total: the part of the spread that the method accounts for."""
        return self.ss_method / self.ss_total


def _table(y, name: str = "y") -> np.ndarray:
    t = np.asarray(y, dtype=float)
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D table (seeds x methods), got shape {t.shape}")
    if t.shape[0] < 2 or t.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 seeds (rows) and 2 methods (columns), got shape "
                         f"{t.shape}: keep only seeds that every method was run with")
    if not np.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or infinite values: drop the seeds (rows) with a missing run")
    return t


def seed_method_anova(y) -> SeedMethodAnova:
    """The two-way analysis of variance of an S x M table (rows: seeds, columns: methods)."""
    t = _table(y)
    s, m = t.shape
    grand = t.mean()
    ss_total = float(((t - grand) ** 2).sum())
    ss_seed = float(m * ((t.mean(axis=1) - grand) ** 2).sum())
    ss_method = float(s * ((t.mean(axis=0) - grand) ** 2).sum())
    ss_resid = max(ss_total - ss_seed - ss_method, 0.0)
    df_seed, df_method, df_resid = s - 1, m - 1, (s - 1) * (m - 1)
    ms_resid = ss_resid / df_resid
    with np.errstate(divide="ignore", invalid="ignore"):
        f_seed = float(np.divide(ss_seed / df_seed, ms_resid))
        f_method = float(np.divide(ss_method / df_method, ms_resid))
    p_seed = float(stats.f.sf(f_seed, df_seed, df_resid)) if math.isfinite(f_seed) else 0.0
    p_method = float(stats.f.sf(f_method, df_method, df_resid)) if math.isfinite(f_method) else 0.0
    return SeedMethodAnova(ss_seed, ss_method, ss_resid, ss_total, df_seed, df_method, df_resid,
                           f_seed, f_method, p_seed, p_method)


def friedman(y) -> tuple[float, float]:
    """Friedman's rank test of the method effect (columns), seeds (rows) as blocks: (statistic, p)."""
    t = _table(y)
    if t.shape[1] < 3:
        raise ValueError(f"friedman needs at least 3 methods (columns), got {t.shape[1]}: "
                         "compare two methods with paired_gap")
    res = stats.friedmanchisquare(*t.T)
    return float(res.statistic), float(res.pvalue)


class PairedGap(NamedTuple):
    n: int
    mean: float  # mean of other - reference
    se: float  # sd(other - reference, ddof=1) / sqrt(n)
    reference_lower: int  # seeds on which the reference's error is lower


def paired_gap(reference, other) -> PairedGap:
    """``other`` minus ``reference`` seed by seed (equal-length sequences over the same seeds)."""
    a = np.asarray(reference, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"reference and other must be 1-D and of one length (the shared seeds), got "
                         f"shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"paired_gap needs at least 2 shared seeds, got {len(a)}")
    d = b - a
    return PairedGap(len(d), float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), int((d > 0).sum()))
