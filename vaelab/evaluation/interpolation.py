"""Klushyn et al. (2019), Sec. 4.1 and Figs. 3-4, as a score: does a path through the learned prior
turn the pendulum smoothly where a straight line in latent space jumps? (chapter 04 and its study).

For pairs of test images whose angles lie at least 90 degrees apart, two paths join their codes:
the A* shortest path through the k-nearest-neighbour graph of prior samples
(``vaelab.evaluation.graph_interp``: 1,000 samples and k = 18 in the paper) and the straight line. Each path
is resampled to ``n_points`` codes evenly spaced by arc length and decoded; the angle each decoded
image shows is read off against finely rendered pendulum images (``vaelab.evaluation.angle``).
**Smoothness** is the largest angle jump between consecutive decoded images (an evenly turning
pendulum gives ``|Delta theta| / (n_points - 1)``, the "even turn"); **realism** is the RMS pixel
distance of each decoded image to the nearest true pendulum image.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vaelab.evaluation.angle import circular_abs_error, max_angle_jump, read_pendulum_angles
from vaelab.evaluation.graph_interp import graph_interpolation, resample_polyline, straight_line

__all__ = ["far_pairs", "interpolation_scores"]


def far_pairs(angles, n_pairs: int, seed: int, min_gap: float = math.pi / 2) -> list[tuple[int, int]]:
    """``n_pairs`` index pairs of ``angles`` (radians) at least ``min_gap`` apart, drawn with ``seed``."""
    a = np.asarray(angles, dtype=np.float64)
    if np.ptp(a) < min_gap:
        raise ValueError(f"no two angles are {min_gap:.2f} rad apart: give a test set that covers the circle")
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n_pairs:
        i, j = rng.choice(len(a), 2, replace=False)
        if circular_abs_error(a[i], a[j]) > min_gap:
            pairs.append((int(i), int(j)))
    return pairs


@torch.no_grad()
def interpolation_scores(model, images: torch.Tensor, angles, *, seed: int = 0, graph_samples: int = 1000,
                         k: int = 18, n_pairs: int = 10, n_points: int = 16, per_pair: bool = False) -> dict:
    """Graph path against straight line on ``n_pairs`` pairs of ``images`` (with true ``angles``).

    ``model`` needs ``encode(x)[0]`` (posterior means), ``prior.sample(n, generator=)`` and
    ``mean_image(z)``. Returns, for ``"graph"`` and ``"line"``, the means over pairs of
    ``max_jump``, ``even_turn`` (both radians) and ``rmse``, and ``first_pair``: the decoded angles
    along both paths between the first pair's images (for a figure); with ``per_pair=True`` also
    ``per_pair``: for each kind, the list of every pair's numbers (for paired comparisons).
    """
    was_training = model.training
    model.eval()
    try:
        dev = images.device
        codes = model.encode(images)[0].double().cpu().numpy()
        samples = model.prior.sample(graph_samples, generator=torch.Generator(dev).manual_seed(seed))
        samples = samples.double().cpu().numpy()
        rows = {"graph": [], "line": []}
        first = {}
        for p, (i, j) in enumerate(far_pairs(angles, n_pairs, seed)):
            path = graph_interpolation(samples, codes[i], codes[j], k=k).codes
            for kind, pts in (("graph", resample_polyline(path, n_points)),
                              ("line", straight_line(codes[i], codes[j], n_points))):
                z = torch.as_tensor(pts, dtype=torch.float32, device=dev)
                ang, rmse = read_pendulum_angles(model.mean_image(z).clamp(0, 1).cpu())
                rows[kind].append({"max_jump": max_angle_jump(ang),
                                   "even_turn": float(circular_abs_error(ang[0], ang[-1]) / (n_points - 1)),
                                   "rmse": float(rmse.mean())})
                if p == 0:
                    first[kind] = [float(a) for a in ang]
    finally:
        model.train(was_training)
    out = {kind: {key: float(np.mean([r[key] for r in rs])) for key in rs[0]} for kind, rs in rows.items()}
    if per_pair:
        out["per_pair"] = rows
    out.update(first_pair=first, settings={"graph_samples": graph_samples, "k": k, "n_pairs": n_pairs,
                                           "n_points": n_points, "seed": seed})
    return out
