"""How well a latent code carries the pendulum's angle (Klushyn et al. 2019, Sec. 4.1, App. B.3, Table 1; chapter 04).

The pendulum images have one degree of freedom, the angle theta in [0, 2 pi). A good 2-D latent
space lays the images out on a closed curve around some centre, ordered by angle. Sec. 4.1 of the
paper scores this by "a linear regression after transforming the latent space to polar
coordinates" whose absolute error is Table 1; App. B.3 adds that the regression is of the joint
angle on arcsin(z_2 / r), "where z_2 is the second component of the latent space and the radius r is
estimated from the learned latent representation". Two scores are here; they measure different things.

``arcsin_regression``: App. B.3 as written
------------------------------------------
x = arcsin(z_2 / r) with r the mean distance of the codes from the origin (our estimate of "the
radius": B.3 uses z_2 itself, so the ring is taken to be centred at 0; z_2 / r is clipped to
[-1, 1]), then OLS theta ~ a x + b and the mean absolute residual mean |theta - (a x + b)|. For codes on
a circle, x = arcsin(sin phi) is the polar angle phi *folded* onto [-pi/2, pi/2]: phi and pi - phi give
the same x. So it measures how linearly theta follows the code's height on the ring, and it cannot
tell the left half of a ring from the right. Values for theta uniform on [0, 2 pi):

* a perfect circle z = r (cos theta, sin theta): x = theta, pi - theta or theta - 2 pi on the three
  stretches of [0, 2 pi); OLS gives slope -3/2 and intercept pi, and the mean absolute error is
  0.275 pi = 0.864 rad (the reflected circle: slope +3/2, the same error). The same circle turned by
  pi/2, z = r (-sin theta, cos theta), has x = arcsin(cos theta), uncorrelated with theta: slope 0,
  error pi/2 = 1.571, the score of no information; other turns lie in between. So as written the
  score of a full ring depends on how the ring is turned and never falls below 0.864; the paper does
  not say how its 0.054 (VHP + REWO) handles the fold.
* codes that carry no angle (noise, or a ring in an order unrelated to theta): slope 0, and the
  prediction is the mean angle pi: error E|theta - pi| = pi/2.
* codes on a half circle, theta in [-pi/2, pi/2]: x = theta, error 0: the case B.3's formula fits.

``angle_regression``: the polar angle, unwrapped from the codes alone (our reading of Sec. 4.1)
---------------------------------------------------------------------------------------------
phi(z) = atan2(z_2 - c_2, z_1 - c_1) over the full circle, which predicts theta up to a rotation, a
reflection and a change of speed. Two angles on a circle cannot be regressed naively: both wrap at
2 pi, and where each wraps is arbitrary. ``angle_regression`` never uses theta to choose where phi
wraps (unwrapping phi with the true angles makes even a latent without any angle information score
about 1 instead of pi/2):

1. ``c`` is the mean of the codes (not a function of theta); phi is cut at the **largest gap** between
   the sorted latent angles, so u = phi unwrapped lies in [g, g + 2 pi) and increases along the curve.
   This uses the codes only.
2. For each orientation s in {+1, -1}: the circular least-squares offset b = arg(mean exp(i (theta - s u)))
   (the rotation that best maps the codes' unit vectors onto the angles' unit vectors), then OLS
   theta_lift ~ a u + c0, where theta_lift = pred + wrap(theta - pred) is theta lifted to the branch
   nearest the current prediction pred (first s u + b, then a u + c0; ``n_iter`` rounds). Only the
   *target* is lifted, by its own residual, as every circular regression does.
3. The score is the mean **circular** absolute error mean |wrap(theta - (a u + c0))|, in radians, of the
   orientation with the smaller error. It lies in [0, pi]. A perfect circle scores 0 however it is
   turned or reflected; a prediction independent of theta scores pi/2 in expectation (the mean of |U|
   for U uniform on (-pi, pi]).

``read_pendulum_angles`` reads the angle off *images* (decoded samples, interpolations) by matching them
against finely rendered pendulum images, so that the smoothness of an interpolation can be measured.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from vaelab.core.validate import positive_int

__all__ = ["wrap_angle", "circular_abs_error", "latent_polar_angle", "unwrap_at_largest_gap",
           "AngleFit", "angle_regression", "ArcsinFit", "arcsin_regression", "read_pendulum_angles",
           "max_angle_jump"]

TWO_PI = 2.0 * math.pi


def _numpy(x, name: str, ndim: int | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def wrap_angle(a) -> np.ndarray:
    """a mapped to (-pi, pi] (numpy, elementwise)."""
    a = np.asarray(a, dtype=np.float64)
    out = np.mod(a + math.pi, TWO_PI) - math.pi
    return np.where(out == -math.pi, math.pi, out)


def circular_abs_error(a, b) -> np.ndarray:
    """|wrap(a - b)| in [0, pi]: the angular distance between a and b (radians), elementwise."""
    return np.abs(wrap_angle(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def latent_polar_angle(z, center=None) -> np.ndarray:
    """phi = atan2(z_2 - c_2, z_1 - c_1) in (-pi, pi] of 2-D codes ``z`` (N, 2); ``center`` c defaults to the mean of z."""
    z = _numpy(z, "z", 2)
    if z.shape[1] != 2:
        raise ValueError(f"z must have shape (N, 2) (a 2-D latent space), got {z.shape}")
    c = z.mean(0) if center is None else _numpy(center, "center", 1)
    return np.arctan2(z[:, 1] - c[1], z[:, 0] - c[0])


def unwrap_at_largest_gap(phi) -> np.ndarray:
    """phi lifted to [g, g + 2 pi), g = the angle just after the largest gap between the sorted angles.

    Uses only ``phi`` itself: for codes on a closed curve with one sparse stretch (or none) the cut falls
    where there are fewest codes, so u increases along the curve everywhere else.
    """
    phi = np.mod(_numpy(phi, "phi", 1), TWO_PI)
    if len(phi) < 2:
        raise ValueError("at least two angles are needed")
    s = np.sort(phi)
    gaps = np.diff(np.concatenate([s, [s[0] + TWO_PI]]))
    start = s[(int(np.argmax(gaps)) + 1) % len(s)]
    return start + np.mod(phi - start, TWO_PI)


class AngleFit(NamedTuple):
    """Result of ``angle_regression``: ``error`` (mean circular absolute error, radians), the fitted
    ``slope`` a and ``intercept`` c0 of theta ~ a u + c0, the ``orientation`` s (+1 or -1), ``predictions``
    (N,) in [0, 2 pi) and the per-example ``errors`` (N,)."""

    error: float
    slope: float
    intercept: float
    orientation: int
    predictions: np.ndarray
    errors: np.ndarray


def angle_regression(z, angles, center=None, n_iter: int = 3) -> AngleFit:
    """OLS of the true angle on the full latent polar angle, circular-safe: our reading of Klushyn et al.'s Sec. 4.1.

    ``z`` (N, 2) codes (e.g. posterior means), ``angles`` (N,) true angles in radians. Returns an
    ``AngleFit``; ``error`` is a mean absolute error in radians like Table 1's: about pi/2 for codes that
    carry no angle information and 0 for codes whose polar angle is an affine function of the angle (a
    perfect circle, turned or reflected in any way). App. B.3's formula as written: ``arcsin_regression``.
    """
    theta = _numpy(angles, "angles", 1)
    phi = latent_polar_angle(z, center)
    if len(phi) != len(theta):
        raise ValueError(f"z has {len(phi)} rows but angles has {len(theta)}")
    if len(theta) < 3:
        raise ValueError("angle_regression needs at least 3 examples")
    positive_int("n_iter", n_iter)
    u = unwrap_at_largest_gap(phi)
    design = np.stack([u, np.ones_like(u)], 1)
    best = None
    for s in (1, -1):
        b = math.atan2(np.mean(np.sin(theta - s * u)), np.mean(np.cos(theta - s * u)))
        coef = np.array([float(s), b])
        for _ in range(n_iter):
            pred = design @ coef
            lifted = pred + wrap_angle(theta - pred)
            coef, *_ = np.linalg.lstsq(design, lifted, rcond=None)
        pred = design @ coef
        errors = circular_abs_error(theta, pred)
        fit = AngleFit(float(errors.mean()), float(coef[0]), float(coef[1]), s, np.mod(pred, TWO_PI), errors)
        if best is None or fit.error < best.error:
            best = fit
    return best


class ArcsinFit(NamedTuple):
    """Result of ``arcsin_regression``: ``error`` (mean absolute residual, radians), the fitted ``slope`` a and
    ``intercept`` b of theta ~ a x + b, the ``radius`` r used, the fraction ``clipped`` of codes with
    |z_2| > r (their x is +-pi/2), ``predictions`` a x + b (N,) and the per-example ``errors`` (N,)."""

    error: float
    slope: float
    intercept: float
    radius: float
    clipped: float
    predictions: np.ndarray
    errors: np.ndarray


def arcsin_regression(z, angles, radius: float | None = None) -> ArcsinFit:
    """Klushyn et al. App. B.3 as written: OLS of the joint angle on x = arcsin(z_2 / r).

    ``z`` (N, 2) codes, ``angles`` (N,) true angles in radians. ``radius`` r defaults to the mean distance
    of the codes from the origin (the paper estimates r "from the learned latent representation" without
    saying how); z_2 / r is clipped to [-1, 1]. ``error`` is the mean absolute residual |theta - (a x + b)|
    of the OLS fit, in radians (a plain, not circular, difference: the regression is linear). What it
    measures, and its values for a perfect circle (0.864 to pi/2, depending on how the circle is turned)
    and for noise (pi/2): module docstring. Chapter 04 reports it beside ``angle_regression``.
    """
    z = _numpy(z, "z", 2)
    if z.shape[1] != 2:
        raise ValueError(f"z must have shape (N, 2) (a 2-D latent space), got {z.shape}")
    theta = _numpy(angles, "angles", 1)
    if len(z) != len(theta):
        raise ValueError(f"z has {len(z)} rows but angles has {len(theta)}")
    if len(theta) < 3:
        raise ValueError("arcsin_regression needs at least 3 examples")
    if radius is None:
        r = float(np.linalg.norm(z, axis=1).mean())
    else:
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) \
                or radius <= 0:
            raise ValueError(f"radius must be a finite number > 0 (or None: the codes' mean norm), got {radius!r}")
        r = float(radius)
    if r <= 0:
        raise ValueError("all codes are at the origin: the radius r of App. B.3 is 0")
    ratio = z[:, 1] / r
    x = np.arcsin(np.clip(ratio, -1.0, 1.0))
    design = np.stack([x, np.ones_like(x)], 1)
    coef, *_ = np.linalg.lstsq(design, theta, rcond=None)
    pred = design @ coef
    errors = np.abs(theta - pred)
    return ArcsinFit(float(errors.mean()), float(coef[0]), float(coef[1]), r, float(np.mean(np.abs(ratio) > 1)),
                     pred, errors)


_TEMPLATES: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _templates(size: int, n_grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    key = (size, n_grid)
    if key not in _TEMPLATES:
        from vaelab.data.pendulum import render  # the renderer of the data set itself

        grid = np.arange(n_grid) * (TWO_PI / n_grid)
        imgs = torch.as_tensor(render(grid, size=size)).float().div_(255.0).flatten(1)
        _TEMPLATES[key] = (torch.as_tensor(grid), imgs)
    return _TEMPLATES[key]


def read_pendulum_angles(images: torch.Tensor, n_grid: int = 3600) -> tuple[np.ndarray, np.ndarray]:
    """The angle shown in pendulum images (N, 1, S, S) in [0, 1], read by template matching.

    Renders ``n_grid`` pendulum images at angles k 2 pi / n_grid with the data set's own renderer and
    returns, per image, the angle of the nearest one in squared distance (resolution 2 pi / n_grid) and
    the root-mean-square pixel distance to it (``rmse``: how far the image is from every real pendulum
    image; blurred or doubled images score high). Returns (angles (N,), rmse (N,)) as numpy arrays.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1 \
            or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be a tensor (N, 1, S, S), got {getattr(images, 'shape', type(images))}")
    grid, tmpl = _templates(images.shape[-1], n_grid)
    x = images.detach().float().cpu().flatten(1)
    d2 = (x * x).sum(1, keepdim=True) - 2 * x @ tmpl.T + (tmpl * tmpl).sum(1)[None]
    best = d2.argmin(1)
    rmse = (d2.gather(1, best[:, None]).squeeze(1).clamp_min(0) / x.shape[1]).sqrt()
    return grid[best].numpy(), rmse.numpy()


def max_angle_jump(angles) -> float:
    """The largest angular step |wrap(theta_{i+1} - theta_i)| along a sequence of angles (radians).

    The smoothness measure of an interpolation (chapter 04): for a path that turns the pendulum by
    Delta in m equal steps it is Delta / m; a jump across the circle scores up to pi.
    """
    a = _numpy(angles, "angles", 1)
    if len(a) < 2:
        raise ValueError("max_angle_jump needs at least two angles")
    return float(circular_abs_error(a[1:], a[:-1]).max())
