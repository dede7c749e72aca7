"""vaelab.evaluation.seed_effects (chapter 04b): the seed x method decomposition checked against least squares with
dummy variables, its F test's size by simulation, Friedman's test and the paired gap by hand."""
import math

import numpy as np
import pytest
from scipy import stats

from vaelab.evaluation.seed_effects import friedman, paired_gap, seed_method_anova


def _rss(y: np.ndarray, seeds: bool, methods: bool) -> float:
    """Residual sum of squares of OLS on an intercept and the chosen factors' dummy columns."""
    s, m = y.shape
    cols = [np.ones(s * m)]
    rows, colidx = np.divmod(np.arange(s * m), m)
    if seeds:
        cols += [(rows == i).astype(float) for i in range(1, s)]
    if methods:
        cols += [(colidx == j).astype(float) for j in range(1, m)]
    x = np.stack(cols, 1)
    beta, *_ = np.linalg.lstsq(x, y.ravel(), rcond=None)
    return float(((y.ravel() - x @ beta) ** 2).sum())


@pytest.mark.parametrize("shape", [(5, 6), (2, 2), (7, 3)])
def test_sums_of_squares_are_the_least_squares_reductions(shape):
    y = np.random.default_rng(sum(shape)).gamma(2.0, 0.2, size=shape)
    a = seed_method_anova(y)
    full = _rss(y, True, True)
    assert a.ss_resid == pytest.approx(full, rel=1e-9, abs=1e-12)
    assert a.ss_method == pytest.approx(_rss(y, True, False) - full, rel=1e-9)
    assert a.ss_seed == pytest.approx(_rss(y, False, True) - full, rel=1e-9)
    assert a.ss_total == pytest.approx(_rss(y, False, False), rel=1e-12)
    assert a.ss_seed + a.ss_method + a.ss_resid == pytest.approx(a.ss_total, rel=1e-12)
    s, m = shape
    assert (a.df_seed, a.df_method, a.df_resid) == (s - 1, m - 1, (s - 1) * (m - 1))
    f = (a.ss_method / (m - 1)) / (a.ss_resid / ((s - 1) * (m - 1)))
    assert a.f_method == pytest.approx(f) and a.p_method == pytest.approx(stats.f.sf(f, m - 1, (s - 1) * (m - 1)))


def test_a_table_of_seed_effects_only_is_all_seed():
    seed_effect = np.array([0.1, 0.7, 0.3, 0.05, 0.5])[:, None]
    y = seed_effect + np.zeros((1, 6))
    a = seed_method_anova(y)
    assert a.seed_share == pytest.approx(1.0) and a.method_share == pytest.approx(0.0, abs=1e-15)
    assert a.p_seed == 0.0  # no residual at all: F is infinite


def test_f_test_has_its_size_under_the_null_and_power_against_a_method_effect():
    """No method effect, normal errors and arbitrary seed effects: P(p_method < 0.05) = 0.05."""
    rng = np.random.default_rng(1)
    n = 4000
    p_null = np.array([seed_method_anova(rng.normal(size=(5, 1)) * 3 + rng.normal(size=(5, 6))).p_method
                       for _ in range(n)])
    rate = (p_null < 0.05).mean()
    assert abs(rate - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    shift = np.array([0.0, 0, 0, 0, 0, 2.0])  # one method 2 noise s.d. worse
    p_alt = np.array([seed_method_anova(rng.normal(size=(5, 6)) + shift).p_method for _ in range(400)])
    assert (p_alt < 0.05).mean() > 0.5


def test_friedman_and_paired_gap_by_hand():
    y = np.array([[0.1, 0.3, 0.2], [0.2, 0.6, 0.4], [0.05, 0.5, 0.9], [0.3, 0.4, 0.8]])
    # ranks per row: (1,3,2), (1,3,2), (1,2,3), (1,2,3): rank sums 4, 10, 10; n=4, k=3
    r = np.array([4.0, 10, 10])
    q = 12 / (4 * 3 * 4) * (r ** 2).sum() - 3 * 4 * 4
    stat, p = friedman(y)
    assert stat == pytest.approx(q) and p == pytest.approx(stats.chi2.sf(q, 2))
    g = paired_gap(y[:, 0], y[:, 1])
    d = y[:, 1] - y[:, 0]
    assert g.n == 4 and g.mean == pytest.approx(d.mean()) and g.reference_lower == 4
    assert g.se == pytest.approx(math.sqrt(((d - d.mean()) ** 2).sum() / 3 / 4))


@pytest.mark.parametrize("bad,match", [
    (np.ones(5), "2-D table"),
    (np.ones((1, 4)), "at least 2 seeds"),
    (np.array([[0.1, np.nan], [0.2, 0.3]]), "NaN"),
])
def test_bad_tables_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        seed_method_anova(bad)


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        paired_gap([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2 shared seeds"):
        paired_gap([0.1], [0.2])
    with pytest.raises(ValueError, match="at least 3 methods"):
        friedman(np.ones((4, 2)))
