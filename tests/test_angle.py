"""The pendulum angle scores (vaelab.evaluation.angle, Klushyn et al. Sec. 4.1, App. B.3): value checks of both."""
import math

import numpy as np
import pytest
import torch

from vaelab.evaluation.angle import (angle_regression, arcsin_regression, circular_abs_error, latent_polar_angle,
                          max_angle_jump, read_pendulum_angles, unwrap_at_largest_gap, wrap_angle)

RNG = np.random.default_rng(0)
THETA = RNG.uniform(0, 2 * math.pi, 4000)


def test_wrap_and_circular_error():
    np.testing.assert_allclose(wrap_angle([0, math.pi, -math.pi, 3 * math.pi, 0.5 + 2 * math.pi, -0.5]),
                               [0, math.pi, math.pi, math.pi, 0.5, -0.5], atol=1e-12)
    np.testing.assert_allclose(circular_abs_error([0.1, 6.2, math.pi], [6.2, 0.1, 0.0]),
                               [0.1 + 2 * math.pi - 6.2, 0.1 + 2 * math.pi - 6.2, math.pi], atol=1e-12)


def test_polar_angle_and_unwrap_use_the_codes_only():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) + 3.0
    np.testing.assert_allclose(latent_polar_angle(z), [0, math.pi / 2, math.pi, -math.pi / 2], atol=1e-12)
    # angles clustered in [5.5, 2 pi) and [0, 1): the largest gap is between 1 and 5.5, so the cut goes there
    u = unwrap_at_largest_gap(np.array([5.5, 6.0, 0.2, 0.9]))
    np.testing.assert_allclose(u, [5.5, 6.0, 0.2 + 2 * math.pi, 0.9 + 2 * math.pi], atol=1e-12)


@pytest.mark.parametrize("sign,offset,centre", [(1, 0.0, (0, 0)), (-1, 2.5, (4, -3)), (1, -1.0, (-2, 7))])
def test_recovers_a_known_angle_map(sign, offset, centre):
    """Codes on a circle at polar angle sign * theta + offset: about the true centre the regression is exact;
    about the codes' mean (the default, which misses the centre by O(1/sqrt(N))) nearly so."""
    phi = sign * THETA + offset
    z = np.stack([np.cos(phi), np.sin(phi)], 1) * 1.7 + np.array(centre)
    assert angle_regression(z, THETA).error < 0.01
    fit = angle_regression(z, THETA, center=np.array(centre, dtype=float))
    assert fit.error < 1e-8
    assert fit.orientation == sign and abs(abs(fit.slope) - 1) < 1e-8
    np.testing.assert_allclose(circular_abs_error(fit.predictions, THETA), 0, atol=1e-7)


def test_noisy_map_and_an_arc_with_another_speed():
    """Noise on the code's angle gives an error near the noise's mean |.|; an arc covering half the circle is
    fitted with slope 2 (the slope is free, not forced to +-1)."""
    sd = 0.1
    phi = THETA + RNG.normal(0, sd, len(THETA))
    fit = angle_regression(np.stack([np.cos(phi), np.sin(phi)], 1), THETA)
    assert abs(fit.error - sd * math.sqrt(2 / math.pi)) < 0.01
    half = THETA / 2 - 1.0                                 # codes on a half circle, theta = 2 u + const
    fit = angle_regression(np.stack([np.cos(half), np.sin(half)], 1), THETA, center=np.zeros(2))
    assert fit.error < 1e-6 and abs(fit.slope - 2) < 1e-6


@pytest.mark.parametrize("kind", ["gaussian", "circle_shuffled"])
def test_uninformative_latent_scores_about_half_pi(kind):
    """A latent that carries no angle information must score about pi/2, not about 1 (as it would if the true
    angles chose where the latent angle wraps)."""
    if kind == "gaussian":
        z = RNG.normal(size=(len(THETA), 2))
    else:                                                   # a perfect circle, but in an order unrelated to theta
        phi = RNG.permutation(THETA)
        z = np.stack([np.cos(phi), np.sin(phi)], 1)
    fit = angle_regression(z, THETA)
    assert 1.45 < fit.error < 1.65, fit.error


GRID = np.arange(100_000) * (2 * math.pi / 100_000)  # angles evenly over [0, 2 pi)


def ring(theta, turn=0.0, sign=1, radius=1.7):
    phi = sign * theta + turn
    return radius * np.stack([np.cos(phi), np.sin(phi)], 1)


def test_both_scores_on_a_perfect_circle():
    """B.3 as written folds the ring: slope -3/2, intercept pi, error 0.275 pi = 0.864 (by hand in the module
    docstring), pi/2 once the ring is turned by a quarter; the polar score is 0 for every turn and reflection."""
    fit = arcsin_regression(ring(GRID), GRID)
    assert fit.radius == pytest.approx(1.7, rel=1e-12) and fit.clipped < 1e-4  # (rounding at the top and bottom)
    assert fit.slope == pytest.approx(-1.5, abs=1e-4) and fit.intercept == pytest.approx(math.pi, abs=1e-4)
    assert fit.error == pytest.approx(0.275 * math.pi, abs=1e-4)
    np.testing.assert_allclose(fit.predictions, fit.intercept + fit.slope * np.arcsin(np.sin(GRID)), atol=1e-9)
    mirrored = arcsin_regression(ring(GRID, sign=-1), GRID)
    assert mirrored.slope == pytest.approx(1.5, abs=1e-4) and mirrored.error == pytest.approx(0.275 * math.pi, abs=1e-4)
    turned = arcsin_regression(ring(GRID, turn=math.pi / 2), GRID)
    assert turned.slope == pytest.approx(0.0, abs=1e-4) and turned.error == pytest.approx(math.pi / 2, abs=1e-4)
    for turn in (0.0, math.pi / 2, 2.0):
        for sign in (1, -1):
            assert angle_regression(ring(GRID[::20], turn, sign), GRID[::20]).error < 1e-6


def test_both_scores_on_codes_without_angle():
    """Noise: both scores are about E|theta - pi| = pi/2 (B.3: slope 0, prediction the mean angle pi)."""
    z = RNG.normal(size=(len(THETA), 2))
    fit = arcsin_regression(z, THETA)
    assert fit.radius == pytest.approx(math.sqrt(math.pi / 2), rel=0.03)  # mean norm of N(0, I) in 2-D
    assert abs(fit.slope) < 0.1 and fit.intercept == pytest.approx(math.pi, abs=0.1)
    assert fit.error == pytest.approx(math.pi / 2, abs=0.05)
    assert fit.clipped == pytest.approx(0.21, abs=0.02)  # P(|z_2| > sqrt(pi / 2)) = 0.21 for a standard normal
    assert angle_regression(z, THETA).error == pytest.approx(math.pi / 2, abs=0.1)


def test_arcsin_score_fits_half_a_turn_exactly():
    """Angles over half a turn, codes on the right half of a ring: x = theta, the case B.3's formula fits."""
    half = GRID / 2 - math.pi / 2  # [-pi/2, pi/2)
    fit = arcsin_regression(ring(half, radius=0.3), half)
    assert fit.error < 1e-9 and fit.slope == pytest.approx(1.0) and abs(fit.intercept) < 1e-9
    fit = arcsin_regression(ring(half, radius=0.3), half + 1.0, radius=0.3)
    assert fit.error < 1e-9 and fit.intercept == pytest.approx(1.0)


def test_arcsin_regression_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        arcsin_regression(np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(ValueError, match="rows"):
        arcsin_regression(np.ones((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="radius"):
        arcsin_regression(np.ones((10, 2)), np.zeros(10), radius=0.0)
    with pytest.raises(ValueError, match="origin"):
        arcsin_regression(np.zeros((10, 2)), np.zeros(10))


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        angle_regression(np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(ValueError, match="rows"):
        angle_regression(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="NaN"):
        angle_regression(np.full((10, 2), np.nan), np.zeros(10))


def test_read_angles_from_rendered_images_and_max_jump():
    from vaelab.data.pendulum import render

    angles = np.array([0.0, 1.0, 2.5, 4.0, 6.0])
    imgs = torch.as_tensor(render(angles, size=16)).float() / 255
    read, rmse = read_pendulum_angles(imgs, n_grid=3600)
    assert circular_abs_error(read, angles).max() <= math.pi / 3600 + 1e-9
    assert rmse.max() < 0.01
    # a blend of two pendulums is far from every real one
    _, rmse_blend = read_pendulum_angles(0.5 * (imgs[:1] + imgs[3:4]))
    assert rmse_blend[0] > 0.1
    assert max_angle_jump([0.1, 0.3, 6.2, 0.0]) == pytest.approx(0.3 + 2 * math.pi - 6.2)
