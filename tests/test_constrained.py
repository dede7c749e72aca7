"""GECO and REWO (vaelab.constrained): the update equations, the signs, the initial phase, resume, bad input."""
import io
import math

import pytest
import torch

import vaelab
from vaelab.constrained import (GECO, REWO, f_beta, geco_delta_beta, geco_delta_lambda, heaviside,
                                mse_from_gaussian_rec, rewo_delta_beta)
from vaelab.schedules import Schedule
from vaelab.train import fit
from toys import smooth_images


def terms(c, **extra):
    """What fit passes to update: batch means as detached 0-dim float32 tensors."""
    out = {"rec": torch.tensor(c, dtype=torch.float32), "reg": torch.tensor(1.0), "loss": torch.tensor(c + 1.0)}
    out.update({k: torch.tensor(v, dtype=torch.float32) for k, v in extra.items()})
    return out


def feed(schedule, cs, start=1):
    weights = []
    for t, c in enumerate(cs, start):
        schedule.update(terms(c), t)
        weights.append(float(schedule.weight))
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
    got = feed(geco, cs)
    assert got == pytest.approx(expected, rel=1e-6)
    assert float(geco.c_hat) == pytest.approx(c_hat, rel=1e-12)
    assert float(geco.lam) == pytest.approx(math.exp(log_lam), rel=1e-12)
    # the first step by hand: C_hat_1 = 5, lambda_1 = 2 exp(0.1 (5 - 2.25))
    assert got[0] == pytest.approx(1 / (2 * math.exp(0.1 * 2.75)), rel=1e-6)


def test_geco_linear_space_agrees_and_start_step_delays():
    cs = [5.0, 3.0, 4.0, 1.0]
    a = feed(GECO(1.5, 0.1, alpha=0.5, lambda_init=2.0), cs)
    b = feed(GECO(1.5, 0.1, alpha=0.5, lambda_init=2.0, log_space=False), cs)
    assert b == pytest.approx(a, rel=1e-5)
    late = GECO(1.5, 0.1, alpha=0.5, lambda_init=2.0, start_step=2)
    w = feed(late, cs)
    assert w[:2] == [0.5, 0.5]  # the multiplier waits for step > start_step ...
    c_hat3 = 0.5 * (0.5 * 5 + 0.5 * 3) + 0.5 * 4  # ... while the moving average runs from step 1
    assert w[2] == pytest.approx(1 / (2 * math.exp(0.1 * (c_hat3 - 2.25))), rel=1e-6)


def test_geco_clamp_and_log_space_recovery():
    # pitfall (d): a large initial error drives lambda up by exp(nu delta) per step
    big, small = [1e4] * 30, [0.0] * 30
    clamped = GECO(1.0, 1.0, alpha=0.0)
    w = feed(clamped, big)
    assert w[-1] == pytest.approx(1e-10, rel=1e-5)  # lambda capped at 1e10
    assert feed(clamped, small)[-1] > w[-1]  # and it comes back at once
    free_log = GECO(1.0, 1.0, alpha=0.0, clamp=None)
    assert feed(free_log, big)[-1] == 0.0  # beta = exp(-3e5) underflows in float32 ...
    assert float(free_log._mult) == pytest.approx(30 * (1e4 - 1))  # ... but log lambda is kept exactly
    free_lin = GECO(1.0, 1.0, alpha=0.0, clamp=None, log_space=False)
    feed(free_lin, big)
    assert math.isinf(float(free_lin.lam))  # lambda itself overflows to inf ...
    feed(free_lin, small * 10)
    assert math.isinf(float(free_lin.lam)) and float(free_lin.weight) == 0.0  # ... and never comes back


def test_geco_constraint_term_scale_and_shift():
    geco = GECO(0.1, 1.0, alpha=0.0, constraint="mse", scale=2.0, shift=-1.0)
    geco.update(terms(100.0, mse=0.5), 1)
    assert float(geco.c_hat) == pytest.approx(2.0 * 0.5 - 1.0)  # reads terms["mse"], not rec
    with pytest.raises(ValueError, match=r"constraint='mse'.*\['loss', 'rec', 'reg'\]"):
        GECO(0.1, 1.0, constraint="mse").update(terms(1.0), 1)


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
    geco.update({"rec": rec.mean()}, 1)
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
    torch.testing.assert_close(geco_delta_lambda(B, D, 0.5), B * (torch.exp(0.5 * D) - 1))
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
    assert rewo.frozen == ("prior.",) and rewo.weight == 1e-3
    # C_hat: 10, 7, 5, 4 (= kappa^2: still the phase, the test is strict), 2.5 (< 4: the phase ends)
    cs = [10.0, 4.0, 3.0, 3.0, 1.0, 100.0]
    seen = []
    for t, c in enumerate(cs, 1):
        rewo.update(terms(c), t)
        seen.append((rewo.frozen, float(rewo.weight)))
    assert [s[0] for s in seen[:4]] == [("prior.",)] * 4
    assert [s[1] for s in seen[:4]] == [1e-3] * 4
    # step 5: phase over, and beta is updated in the same step (Algorithm 1)
    d5 = 2.5 - 4.0
    b5 = 1e-3 * math.exp(0.5 * math.tanh(3.0 * (1e-3 - 1)) * d5)
    assert seen[4] == ((), pytest.approx(b5, rel=1e-6))
    # step 6: C_hat = 51.25 > kappa^2: beta falls, f_beta = -1; the prior stays trainable
    assert seen[5] == ((), pytest.approx(b5 * math.exp(-0.5 * (51.25 - 4.0)), rel=1e-5))


def test_rewo_qualitative_behaviour():
    kappa2, nu, tau = 1.0, 1.0, 3.0
    rewo = REWO(kappa=1.0, nu=nu, tau=tau, alpha=0.0, beta_init=1e-6)
    c_ok = kappa2 - 1.0 / (nu * tau)  # satisfied with nu tau |delta| = 1: no overshoot guaranteed
    w = feed(rewo, [c_ok] * 400)
    assert all(b > a for a, b in zip(w, w[1:]) if a < 1 - 1e-9)  # rises towards 1 ...
    assert max(w) <= 1 + 1e-6  # ... never overshooting (float32 weight)
    assert w[-1] == pytest.approx(1.0, abs=1e-4)
    down = feed(rewo, [kappa2 + 0.5] * 10, start=401)  # violated: falls, by exp(-nu delta) per step
    assert all(b < a for a, b in zip([w[-1]] + down, down))
    assert down[-1] == pytest.approx(w[-1] * math.exp(-10 * 0.5), rel=1e-5)
    above = REWO(kappa=1.0, nu=nu, tau=tau, alpha=0.0, beta_init=3.0)  # started above 1: falls to 1
    wa = feed(above, [c_ok] * 300)  # (the no-overshoot bound holds from below only: here 3 -> ... -> 0.998 -> 1)
    assert wa[0] < 3.0 and min(wa) > 0.99 and wa[-1] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("make", [lambda: GECO(1.0, 0.3, alpha=0.9, lambda_init=0.5),
                                  lambda: REWO(1.5, 0.3, alpha=0.9),
                                  lambda: GECO(1.0, 0.3, alpha=0.9, log_space=False, start_step=3)])
def test_state_dict_round_trip(make):
    g = torch.Generator().manual_seed(0)
    cs = (1.0 + 3.0 * torch.rand(40, generator=g)).tolist()
    a = make()
    feed(a, cs[:20])
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # what a checkpoint holds, read back as fit reads it
    buf.seek(0)
    b = make()
    b.load_state_dict(torch.load(buf, weights_only=True))
    wa, wb = feed(a, cs[20:], 21), feed(b, cs[20:], 21)
    assert wa == wb
    assert a.frozen == b.frozen


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
    with pytest.raises(ValueError, match="frozen"):
        REWO(1.0, 1.0, frozen=("prior.", ""))
    with pytest.raises(ValueError, match=r"constraint='nll'.*\['loss', 'rec', 'reg'\]"):
        REWO(1.0, 1.0, constraint="nll").update(terms(1.0), 1)
    with pytest.raises(ValueError, match="n_pixels"):
        mse_from_gaussian_rec(0.1, 0)
    with pytest.raises(ValueError, match="log_space"):
        GECO(1.0, 1.0).load_state_dict(GECO(1.0, 1.0, log_space=False).state_dict())
    assert isinstance(GECO(1.0, 1.0), Schedule) and isinstance(REWO(1.0, 1.0), Schedule)


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
                                  lambda: REWO(5.029, 0.05, alpha=0.5, beta_init=1e-2)])
def test_resume_through_fit_is_bit_identical(tmp_path, make):
    full_model, full = run(tmp_path / "full", 4, make())
    run(tmp_path / "part", 2, make())  # "killed" after epoch 2
    part_model, part = run(tmp_path / "part", 4, make())  # a fresh schedule object resumes from the checkpoint
    assert full.steps["weight"] == part.steps["weight"]
    assert full.steps == part.steps
    for (name, a), (_, b) in zip(full_model.state_dict().items(), part_model.state_dict().items()):
        assert torch.equal(a, b), name
    w = full.steps["weight"]
    assert len(set(w)) > 2  # the weight did move
    # the weight recorded at step t is the one the schedule held after step t - 1
    sched = make()
    for t, rec in enumerate(full.steps["rec"][:-1], 1):
        sched.update({"rec": torch.tensor(rec)}, t)
        assert w[t] == pytest.approx(float(sched.weight), rel=1e-6)
