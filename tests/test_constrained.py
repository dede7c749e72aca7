"""GECO, REWO and App. B.1's REWO (vaelab.objectives.constrained): the update equations in Algorithm 1's order, the signs,
the initial phase, the beta floor, resume, bad input.

``drive`` calls a schedule exactly as ``vaelab.fit`` does (observe, read the weight, step, update); the
tests at the end go through ``fit`` itself and need its new order (observe before the weight is read).
"""
import io
import math

import pytest
import torch

import vaelab
from vaelab.objectives.constrained import (FLOAT32_TINY, GECO, REWO, REWOB1, f_beta, geco_delta_beta,
                                heaviside, mse_from_gaussian_rec, rewo_b1_delta_beta, rewo_delta_beta)
from vaelab.objectives.schedules import Schedule
from vaelab.training.train import fit
from toys import smooth_images


def terms(c, **extra):
    """What fit passes to observe and update: batch means as detached 0-dim float32 tensors."""
    out = {"rec": torch.tensor(c, dtype=torch.float32), "reg": torch.tensor(1.0), "loss": torch.tensor(c + 1.0)}
    out.update({k: torch.tensor(v, dtype=torch.float32) for k, v in extra.items()})
    return out


def drive(schedule, cs, start=1, freeze=None):
    """Step t as fit runs it: observe(terms_t, t); w_t = weight (the weight of step t's loss); the
    optimiser step (with the prior frozen iff freeze_prior); update(terms_t, t). Returns [w_t]."""
    weights = []
    for t, c in enumerate(cs, start):
        batch = terms(c)
        schedule.observe(batch, t)
        weights.append(float(schedule.weight))
        if freeze is not None:
            freeze.append(schedule.freeze_prior)
        schedule.update(batch, t)
    return weights



def f32(x):
    return float(torch.tensor(x, dtype=torch.float64).float())


# ------------------------------------------------------------------ GECO
def test_geco_matches_the_update_by_hand():
    cs = [5.0, 3.0, 4.0, 1.0, 0.5]
    kappa, nu, alpha, lam0 = 1.5, 0.1, 0.5, 2.0
    geco = GECO(kappa, nu, alpha=alpha, lambda_init=lam0)
    assert geco.weight == 1 / lam0  # before any update: 1 / lambda_init
    c_hat, log_lam, expected = None, math.log(lam0), []
    for c in cs:
        c = f32(c)
        c_hat = c if c_hat is None else alpha * c_hat + (1 - alpha) * c  # moving average, started at C_1
        log_lam += nu * (c_hat - kappa**2)  # lambda_t = lambda_{t-1} exp(nu (C_hat_t - kappa^2))
        expected.append(math.exp(-log_lam))  # weight = beta = 1 / lambda
    got = drive(geco, cs)
    assert got == pytest.approx(expected, rel=1e-6)
    assert float(geco.c_hat) == pytest.approx(c_hat, rel=1e-12)
    assert float(geco.multiplier) == pytest.approx(math.exp(log_lam), rel=1e-12)
    # the first step by hand: C_hat_1 = 5, lambda_1 = 2 exp(0.1 (5 - 2.25))
    assert got[0] == pytest.approx(1 / (2 * math.exp(0.1 * 2.75)), rel=1e-6)


def test_geco_linear_space_agrees_and_start_step_delays():
    cs = [5.0, 3.0, 4.0, 1.0]
    a = drive(GECO(1.5, 0.1, alpha=0.5, lambda_init=2.0), cs)
    b = drive(GECO(1.5, 0.1, alpha=0.5, lambda_init=2.0, log_space=False), cs)
    assert b == pytest.approx(a, rel=1e-5)
    late = GECO(1.5, 0.1, alpha=0.5, lambda_init=2.0, start_step=2)
    w = drive(late, cs)
    assert w[:2] == [0.5, 0.5]  # the multiplier waits for step > start_step ...
    c_hat3 = 0.5 * (0.5 * 5 + 0.5 * 3) + 0.5 * 4  # ... while the moving average runs from step 1
    assert w[2] == pytest.approx(1 / (2 * math.exp(0.1 * (c_hat3 - 2.25))), rel=1e-6)


def test_geco_clamp_and_log_space_recovery():
    # pitfall (d): a large initial error drives lambda up by exp(nu delta) per step
    big, small = [1e4] * 30, [0.0] * 30
    clamped = GECO(1.0, 1.0, alpha=0.0)
    w = drive(clamped, big)
    assert w[-1] == pytest.approx(1e-10, rel=1e-5)  # lambda capped at 1e10
    assert drive(clamped, small)[-1] > w[-1]  # and it comes back at once
    free_log = GECO(1.0, 1.0, alpha=0.0, clamp=None)
    assert drive(free_log, big)[-1] == 0.0  # beta = exp(-3e5) underflows in float32 ...
    assert float(free_log._mult) == pytest.approx(30 * (1e4 - 1))  # ... but log lambda is kept exactly
    free_lin = GECO(1.0, 1.0, alpha=0.0, clamp=None, log_space=False)
    drive(free_lin, big)
    assert math.isinf(float(free_lin.multiplier))  # lambda itself overflows to inf ...
    drive(free_lin, small * 10)
    assert math.isinf(float(free_lin.multiplier)) and float(free_lin.weight) == 0.0  # ... and never comes back


def test_geco_constraint_term_scale_and_shift():
    geco = GECO(0.1, 1.0, alpha=0.0, constraint="mse", scale=2.0, shift=-1.0)
    geco.observe(terms(100.0, mse=0.5), 1)
    assert float(geco.c_hat) == pytest.approx(2.0 * 0.5 - 1.0)  # reads terms["mse"], not rec
    with pytest.raises(ValueError, match=r"constraint='mse'.*\['loss', 'rec', 'reg'\]"):
        GECO(0.1, 1.0, constraint="mse").observe(terms(1.0), 1)


def test_mse_from_gaussian_rec_is_the_per_pixel_squared_error():
    torch.manual_seed(0)
    sigma, shape = 0.02, (1, 4, 4)
    vae = vaelab.mlp_vae(latent_dim=2, data_shape=shape, enc_hidden=(8,), dec_hidden=(8,),
                         likelihood="gaussian", obs_sigma=sigma)
    x = torch.rand(5, *shape)
    mean = torch.rand(5, *shape)
    rec = -vae.log_likelihood(x, mean)  # what VAE.forward returns as "rec"
    m = mse_from_gaussian_rec(sigma, 16)
    mse = ((x - mean) ** 2).flatten(1).mean(1)
    torch.testing.assert_close((m["scale"] * rec.double() + m["shift"]), mse.double(), rtol=1e-4, atol=1e-7)
    geco = GECO(sigma, 1.0, alpha=0.0, **m)  # kappa = per-pixel RMSE tolerance
    geco.observe({"rec": rec.mean()}, 1)
    assert float(geco.c_hat) == pytest.approx(float(mse.mean()), rel=1e-4)


# ------------------------------------------------------------------ the pure update rules
def test_f_beta_on_a_grid():
    betas = torch.tensor([1e-6, 0.01, 0.3, 0.9, 1.0, 1.5, 4.0], dtype=torch.float64)
    deltas = torch.tensor([-5.0, -0.1, 0.0, 0.1, 5.0], dtype=torch.float64)
    B, D = torch.meshgrid(betas, deltas, indexing="ij")
    got = f_beta(B, D, 3.0)
    for i, b in enumerate(betas.tolist()):
        for j, d in enumerate(deltas.tolist()):
            h = 1.0 if d > 0 else 0.0  # H(0) = 0
            assert got[i, j].item() == pytest.approx((1 - h) * math.tanh(3.0 * (b - 1)) - h, abs=1e-15)
    assert heaviside(torch.tensor([-1.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 1.0]
    dbeta = rewo_delta_beta(B, D, 1.0, 3.0)
    torch.testing.assert_close(dbeta, B * (torch.exp(f_beta(B, D, 3.0) * D) - 1))
    torch.testing.assert_close(geco_delta_beta(B, D, 0.5), B * (torch.exp(-0.5 * D) - 1))
    assert f_beta(0.5, 1.0).item() == -1.0  # plain floats work too


def test_rewo_signs_over_the_grid():
    """Violated -> beta falls; satisfied -> beta moves towards 1; delta = 0 -> no change (Fig. 1, nu = 1, tau = 3)."""
    beta = torch.logspace(-6, 1, 50, dtype=torch.float64)
    delta = torch.linspace(-2, 2, 41, dtype=torch.float64)
    B, D = torch.meshgrid(beta, delta, indexing="ij")
    db = rewo_delta_beta(B, D, 1.0, 3.0)
    assert (db[D > 0] < 0).all()
    assert (db[(D < 0) & (B < 1)] > 0).all()
    assert (db[(D < 0) & (B > 1)] < 0).all()
    assert (db[D == 0] == 0).all()
    # where violated REWO and GECO agree; where satisfied GECO's beta keeps growing past 1
    torch.testing.assert_close(db[D > 0], geco_delta_beta(B, D, 1.0)[D > 0])
    assert (geco_delta_beta(B, D, 1.0)[(D < 0) & (B > 1)] > 0).all()


# ------------------------------------------------------------------ REWO as a schedule
def test_rewo_initial_phase_then_update():
    rewo = REWO(kappa=2.0, nu=0.5, tau=3.0, alpha=0.5, beta_init=1e-3)
    assert rewo.freeze_prior is True and rewo.weight == 1e-3
    # C_hat: 10, 7, 5, 4 (= kappa^2: still the phase, the test is strict), 2.5 (< 4: the phase ends)
    cs = [10.0, 4.0, 3.0, 3.0, 1.0, 100.0]
    freeze = []
    w = drive(rewo, cs, freeze=freeze)
    assert freeze == [True] * 4 + [False, False]
    assert w[:4] == [1e-3] * 4
    # step 5: the phase ends in observe, and step 5 itself trains everything with the updated beta
    d5 = 2.5 - 4.0
    b5 = 1e-3 * math.exp(0.5 * math.tanh(3.0 * (1e-3 - 1)) * d5)
    assert w[4] == pytest.approx(b5, rel=1e-6)
    # step 6: C_hat = 51.25 > kappa^2: beta falls, f_beta = -1; the prior stays trainable
    assert w[5] == pytest.approx(b5 * math.exp(-0.5 * (51.25 - 4.0)), rel=1e-5)


def algorithm1(cs, kappa, nu, tau, alpha, beta_init):
    """Klushyn et al.'s Algorithm 1 in plain floats: per step, the beta and the phase its gradient step uses."""
    beta, initial_phase, c_hat, out = beta_init, True, None, []
    for c_ba in cs:
        c_hat = c_ba if c_hat is None else (1 - alpha) * c_ba + alpha * c_hat  # C_hat_0 = C_ba
        if c_hat < kappa**2:
            initial_phase = False
        if not initial_phase:
            delta = c_hat - kappa**2
            h = 1.0 if delta > 0 else 0.0  # Heaviside
            f = (1 - h) * math.tanh(tau * (beta - 1)) - h  # Eq. 12, at beta_{t-1}
            beta = beta * math.exp(nu * f * delta)  # Eq. 11
        out.append((beta, initial_phase))  # "Optimise L_VHP(...; beta)" w.r.t. (theta, phi) or all
    return out


def recorded_errors():
    """A recorded-like sequence of batch errors: high, falling below kappa^2 = 1, a violation, then met."""
    g = torch.Generator().manual_seed(3)
    trend = torch.cat([torch.linspace(3.0, 0.3, 40), torch.full((60,), 0.3), torch.full((30,), 1.6),
                       torch.full((70,), 0.4)])
    cs = trend + 0.15 * torch.randn(len(trend), generator=g)
    return [f32(c) for c in cs.tolist()]  # what fit passes: float32 batch means


def test_rewo_weights_are_algorithm_1_in_fit_order():
    """Every weight w_t read after observe(terms_t, t) is Algorithm 1's beta for step t; no lag."""
    cs = recorded_errors()
    kappa, nu, tau, alpha, beta_init = 1.0, 2.0, 3.0, 0.9, 1e-3
    rewo = REWO(kappa, nu, tau=tau, alpha=alpha, beta_init=beta_init)
    freeze = []
    got = drive(rewo, cs, freeze=freeze)
    expected = algorithm1(cs, kappa, nu, tau, alpha, beta_init)
    assert got == pytest.approx([b for b, _ in expected], rel=1e-6)
    assert freeze == [phase for _, phase in expected]
    ends = freeze.index(False)
    assert 0 < ends < 100 and got[ends] != beta_init  # the step that ends the phase uses the new beta
    assert max(got) > 0.9 and min(got[110:140]) < 0.01  # it rose towards 1, and fell in the violation
    # the old order (weight of step t from C_hat_{t-1}) would be off by one batch: not what we produce
    assert got[ends + 1:] != pytest.approx([b for b, _ in expected[ends:-1]], rel=1e-6)


def test_geco_weights_are_eq_5_in_fit_order():
    cs = recorded_errors()
    kappa, nu, alpha, lam0 = 1.0, 0.3, 0.9, 2.0
    geco = GECO(kappa, nu, alpha=alpha, lambda_init=lam0, clamp=None)
    got = drive(geco, cs)
    lam, c_hat, expected = lam0, None, []
    for c in cs:
        c_hat = c if c_hat is None else (1 - alpha) * c + alpha * c_hat
        lam = lam * math.exp(nu * (c_hat - kappa**2))  # Eq. 5 with C_hat_t of this step's batch
        expected.append(1 / lam)  # the weight of step t: beta_t = 1 / lambda_t
    assert got == pytest.approx(expected, rel=1e-6)


def test_rewo_beta_floor_under_a_long_violation():
    """Forced: the constraint met for a while, then violated for 2,000 steps. Without the floor the float32 weight
    becomes subnormal and then 0; with it beta stays >= beta_min, and every step is Eq. 11 where the floor does
    not bind."""
    kappa, nu, tau, beta_min = 1.0, 0.25, 3.0, 1e-20
    cs = [0.5] * 50 + [1.5] * 2000 + [0.2] * 300
    rewo = REWO(kappa, nu, tau=tau, alpha=0.0, beta_init=1e-3, beta_min=beta_min)
    w = drive(rewo, cs)
    assert min(w) >= beta_min * (1 - 1e-6) and min(w) >= FLOAT32_TINY  # a normal float32 throughout
    beta, floored = 1e-3, 0
    for c, wt in zip(cs, w):  # Eq. 11 by hand in floats, then the floor
        d = c - kappa**2
        eq11 = beta * math.exp(nu * (math.tanh(tau * (beta - 1)) if d <= 0 else -1.0) * d)
        if eq11 >= beta_min:
            assert wt == pytest.approx(eq11, rel=1e-5)  # the floor does not bind: Eq. 11 exactly
        else:
            floored += 1
            assert wt == pytest.approx(beta_min, rel=1e-6)
        beta = max(eq11, beta_min)
    assert floored > 1500
    assert w[-1] == pytest.approx(1.0, abs=1e-3)  # and beta comes back to 1 once the constraint holds
    free = REWO(kappa, nu, tau=tau, alpha=0.0, beta_init=1e-3, beta_min=None)  # Eq. 11 alone
    wf = drive(free, cs[:2050])
    assert 0 < min(x for x in wf if x > 0) < FLOAT32_TINY and wf[-1] == 0.0  # subnormal, then 0 in float32


def test_geco_clamp_binds_only_at_its_bound():
    cs = [5.0] * 40 + [0.0] * 40
    a = drive(GECO(1.0, 1.0, alpha=0.0, clamp=(1e-3, 1e3)), cs)
    b = drive(GECO(1.0, 1.0, alpha=0.0, clamp=None), cs)
    assert a[:1] == pytest.approx(b[:1])  # lambda_1 = e^4 < 1e3: Eq. 5
    assert min(a) == pytest.approx(1e-3, rel=1e-5) and max(a) == pytest.approx(1e3, rel=1e-5)
    assert min(b) < 1e-30  # without the clamp: Eq. 5 alone


# ------------------------------------------------------------------ App. B.1 (Eqs. 14-15)
def test_rewo_b1_matches_eqs_14_15_by_hand():
    kappa, nu, tau, alpha, beta_init = 1.0, 0.5, 2.0, 0.5, 0.01
    cs = [3.0, 0.2, 0.4, 2.0, 0.1, 0.2, 5.0, 0.3]  # C_hat: 3, 1.6, 1.0 (= kappa^2: still the phase), 1.5, 0.8 (ends)
    sched = REWOB1(kappa, nu, tau=tau, alpha=alpha, beta_init=beta_init)
    freeze = []
    got = drive(sched, cs, freeze=freeze)
    gamma = (1 / beta_init - 1) / tau  # our start value: beta_0 = beta_init
    c_hat, phase, expected = None, True, []
    for c in map(f32, cs):
        c_hat = c if c_hat is None else 0.5 * c + 0.5 * c_hat
        phase = phase and not c_hat < kappa**2
        if not phase:
            gamma = gamma * math.exp(nu * (c_hat - kappa**2))  # Eq. 14
        expected.append(1 / (1 + tau * gamma))  # Eq. 15
    assert freeze == [True] * 4 + [False] * 4
    assert got[:4] == [beta_init] * 4 and got[4] > beta_init
    assert got == pytest.approx(expected, rel=1e-6)
    assert float(sched.gamma) == pytest.approx(gamma, rel=1e-12)
    assert float(sched.multiplier) == pytest.approx(1 + gamma, rel=1e-12)  # lambda of Eq. 14 ...
    assert float(sched.multiplier) != pytest.approx(1 / float(sched.beta))  # ... is not 1 / beta for tau != 1
    one = REWOB1(kappa, nu, tau=1.0, alpha=alpha, beta_init=beta_init)
    drive(one, cs)
    assert float(one.multiplier) == pytest.approx(1 / float(one.beta), rel=1e-12)  # tau = 1: beta = 1 / lambda
    assert drive(REWOB1(kappa, nu, tau=7.0, alpha=alpha, beta_init=beta_init), cs) == \
        pytest.approx(got, rel=1e-6)  # with gamma_0 tied to beta_init, tau changes no beta


def test_rewo_b1_keeps_beta_below_one_and_has_a_floor():
    sched = REWOB1(1.0, 1.0, alpha=0.0, beta_init=0.5, beta_min=1e-20)
    w = drive(sched, [0.0] * 200)  # satisfied by 1 every step: logit beta rises by 1 per step
    assert all(b > a for a, b in zip(w, w[1:]) if a < 1 - 1e-6) and max(w) <= 1.0
    assert w[5] == pytest.approx(1 / (1 + math.exp(-6)), rel=1e-6)
    w = drive(sched, [3.0] * 200, start=201)  # violated by 2: beta falls to the floor, not below
    assert min(w) == pytest.approx(1e-20, rel=1e-6)
    free = REWOB1(1.0, 1.0, alpha=0.0, beta_init=0.5, beta_min=None)
    assert drive(free, [0.0] + [3.0] * 100)[-1] == 0.0  # Eq. 15 alone underflows in float32


def test_rewo_b1_delta_beta_is_the_update_by_hand():
    betas = torch.tensor([1e-6, 0.01, 0.3, 0.9, 0.999], dtype=torch.float64)
    deltas = torch.tensor([-5.0, -0.1, 0.0, 0.1, 5.0], dtype=torch.float64)
    B, D = torch.meshgrid(betas, deltas, indexing="ij")
    got = rewo_b1_delta_beta(B, D, nu=0.7)
    for i, b in enumerate(betas.tolist()):
        for j, d in enumerate(deltas.tolist()):
            for tau in (1.0, 3.0):  # gamma_{t-1} from beta_{t-1} by Eq. 15, then Eqs. 14-15: tau cancels
                gamma = (1 / b - 1) / tau
                assert got[i, j].item() == pytest.approx(1 / (1 + tau * gamma * math.exp(0.7 * d)) - b,
                                                         rel=1e-9, abs=1e-15)
    assert (got[D > 0] < 0).all() and (got[D < 0] > 0).all() and (got[D == 0].abs() < 1e-15).all()
    assert ((B + got) < 1).all()
    # for beta << 1 it is GECO's step (beta_t ~ beta exp(-nu delta))
    torch.testing.assert_close(got[0], geco_delta_beta(B[0], D[0], 0.7), rtol=1e-4, atol=1e-15)
    assert torch.isnan(rewo_b1_delta_beta(torch.tensor([0.0, 1.0, 2.0]), 0.1)).all()  # outside 0 < beta < 1


def test_rewo_qualitative_behaviour():
    kappa2, nu, tau = 1.0, 1.0, 3.0
    rewo = REWO(kappa=1.0, nu=nu, tau=tau, alpha=0.0, beta_init=1e-6)
    c_ok = kappa2 - 1.0 / (nu * tau)  # satisfied with nu tau |delta| = 1: no overshoot guaranteed
    w = drive(rewo, [c_ok] * 400)
    assert all(b > a for a, b in zip(w, w[1:]) if a < 1 - 1e-9)  # rises towards 1 ...
    assert max(w) <= 1 + 1e-6  # ... never overshooting (float32 weight)
    assert w[-1] == pytest.approx(1.0, abs=1e-4)
    down = drive(rewo, [kappa2 + 0.5] * 10, start=401)  # violated: falls, by exp(-nu delta) per step
    assert all(b < a for a, b in zip([w[-1]] + down, down))
    assert down[-1] == pytest.approx(w[-1] * math.exp(-10 * 0.5), rel=1e-5)
    above = REWO(kappa=1.0, nu=nu, tau=tau, alpha=0.0, beta_init=3.0)  # started above 1: falls to 1
    wa = drive(above, [c_ok] * 300)  # (the no-overshoot bound holds from below only: here 3 -> ... -> 0.998 -> 1)
    assert wa[0] < 3.0 and min(wa) > 0.99 and wa[-1] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("make", [lambda: GECO(1.0, 0.3, alpha=0.9, lambda_init=0.5),
                                  lambda: REWO(1.5, 0.3, alpha=0.9),
                                  lambda: REWOB1(1.5, 0.3, tau=2.0, alpha=0.9),
                                  lambda: GECO(1.0, 0.3, alpha=0.9, log_space=False, start_step=3)])
def test_state_dict_round_trip(make):
    g = torch.Generator().manual_seed(0)
    cs = (1.0 + 3.0 * torch.rand(40, generator=g)).tolist()
    a = make()
    drive(a, cs[:20])
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # what a checkpoint holds, read back as fit reads it
    buf.seek(0)
    b = make()
    b.load_state_dict(torch.load(buf, weights_only=True))
    wa, wb = drive(a, cs[20:], 21), drive(b, cs[20:], 21)
    assert wa == wb
    assert a.freeze_prior == b.freeze_prior
    assert len(set(wa)) > 2  # the weight moved after the resume point


def test_bad_inputs():
    with pytest.raises(ValueError, match="kappa"):
        GECO(0.0, 1.0)
    with pytest.raises(ValueError, match="kappa"):
        REWO(-1.0, 1.0)
    with pytest.raises(ValueError, match="nu"):
        GECO(1.0, 0.0)
    with pytest.raises(ValueError, match="nu"):
        REWO(1.0, -0.1)
    for alpha in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            GECO(1.0, 1.0, alpha=alpha)
        with pytest.raises(ValueError, match="alpha"):
            REWO(1.0, 1.0, alpha=alpha)
    with pytest.raises(ValueError, match="tau"):
        REWO(1.0, 1.0, tau=0.0)
    with pytest.raises(ValueError, match="beta_init"):
        REWO(1.0, 1.0, beta_init=0.0)
    with pytest.raises(ValueError, match="lambda_init"):
        GECO(1.0, 1.0, lambda_init=-1.0)
    with pytest.raises(ValueError, match="clamp"):
        GECO(1.0, 1.0, clamp=(1.0, 0.1))
    with pytest.raises(ValueError, match="start_step"):
        GECO(1.0, 1.0, start_step=-1)
    with pytest.raises(ValueError, match="scale"):
        GECO(1.0, 1.0, scale=-2.0)
    with pytest.raises(TypeError):
        REWO(1.0, 1.0, frozen=("prior.",))  # replaced by the freeze_prior property
    for bad in (0.0, 1e-3, 1e-40, -1.0):
        with pytest.raises(ValueError, match="beta_min"):
            REWO(1.0, 1.0, beta_init=1e-4, beta_min=bad)
    for bad in (1.0, 2.0, 0.0):
        with pytest.raises(ValueError, match="beta_init"):
            REWOB1(1.0, 1.0, beta_init=bad)
    with pytest.raises(ValueError, match="tau"):
        REWOB1(1.0, 1.0, tau=-1.0)
    with pytest.raises(ValueError, match=r"constraint='nll'.*\['loss', 'rec', 'reg'\]"):
        REWO(1.0, 1.0, constraint="nll").observe(terms(1.0), 1)
    with pytest.raises(ValueError, match="n_pixels"):
        mse_from_gaussian_rec(0.1, 0)
    with pytest.raises(ValueError, match="log_space"):
        GECO(1.0, 1.0).load_state_dict(GECO(1.0, 1.0, log_space=False).state_dict())
    for sched in (GECO(1.0, 1.0), REWO(1.0, 1.0), REWOB1(1.0, 1.0)):
        assert isinstance(sched, Schedule)
    assert GECO(1.0, 1.0).freeze_prior is False


# ------------------------------------------------------------------ through vaelab.fit
def toy_data(n=200, seed=0):
    return smooth_images(n, seed=seed)


def toy_vae():
    torch.manual_seed(0)
    return vaelab.mlp_vae(latent_dim=2, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,))


def run(out, epochs, schedule):
    model = toy_vae()
    hist = fit(model, toy_data(), epochs=epochs, batch_size=50, schedule=schedule, out_dir=out, progress=False)
    return model, hist


@pytest.mark.parametrize("make", [lambda: GECO(4.5, 0.05, alpha=0.5),
                                  lambda: REWO(5.029, 0.05, alpha=0.5, beta_init=1e-2),
                                  lambda: REWOB1(5.029, 0.05, alpha=0.5, beta_init=1e-2)])
def test_resume_through_fit_is_bit_identical(tmp_path, make):
    """Needs fit's order (observe before the weight is read)."""
    full_model, full = run(tmp_path / "full", 4, make())
    run(tmp_path / "part", 2, make())  # "killed" after epoch 2
    part_model, part = run(tmp_path / "part", 4, make())  # a fresh schedule object resumes from the checkpoint
    assert full.steps["weight"] == part.steps["weight"]
    assert full.steps == part.steps
    for (name, a), (_, b) in zip(full_model.state_dict().items(), part_model.state_dict().items()):
        assert torch.equal(a, b), name
    w = full.steps["weight"]
    assert len(set(w)) > 2  # the weight did move
    # the weight recorded at step t is the one the schedule computed from step t's own batch
    sched = make()
    for t, rec in enumerate(full.steps["rec"], 1):
        sched.observe({"rec": torch.tensor(rec)}, t)
        assert w[t - 1] == pytest.approx(float(sched.weight), rel=1e-6)
