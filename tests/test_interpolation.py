"""vaelab.evaluation.interpolation on a model whose decoder draws the pendulum at the polar angle of its code:
the graph path through prior samples on the circle turns evenly, the straight line through the
centre jumps."""
import math

import numpy as np
import pytest
import torch

from vaelab.evaluation.angle import _templates, circular_abs_error
from vaelab.evaluation.interpolation import far_pairs, interpolation_scores


class CircleModel(torch.nn.Module):
    """Codes on the unit circle at the image's angle; the prior is that circle; the decoder draws
    the pendulum at atan2(z2, z1) (the renderer behind vaelab.evaluation.angle's templates)."""

    def __init__(self, angles_of_images, size=16):
        super().__init__()
        self.angles = angles_of_images
        self.size = size
        grid, tmpl = _templates(size, 3600)
        self.grid, self.tmpl = torch.as_tensor(grid), tmpl
        model = self

        class Prior:
            def sample(self, n, generator=None):
                t = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi
                return torch.stack([t.cos(), t.sin()], 1).float()

        self.prior = Prior()

    def encode(self, x):
        idx = x[:, 0, 0, 0].long()
        a = torch.as_tensor(self.angles)[idx]
        return torch.stack([a.cos(), a.sin()], 1).float(), None

    def mean_image(self, z):
        phi = torch.atan2(z[:, 1].double(), z[:, 0].double()) % (2 * math.pi)
        best = (phi[:, None] - self.grid[None].double()).abs().argmin(1)
        return self.tmpl[best].reshape(len(z), 1, self.size, self.size)


def test_far_pairs_are_far_and_reproducible():
    angles = np.linspace(0, 2 * math.pi, 50, endpoint=False)
    pairs = far_pairs(angles, 20, seed=3)
    assert pairs == far_pairs(angles, 20, seed=3)
    assert all(circular_abs_error(angles[i], angles[j]) > math.pi / 2 for i, j in pairs)
    with pytest.raises(ValueError, match="covers the circle"):
        far_pairs(np.zeros(5), 1, seed=0)


def test_graph_path_turns_evenly_and_the_straight_line_jumps():
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    model = CircleModel(angles)
    images = torch.zeros(40, 1, 16, 16)
    images[:, 0, 0, 0] = torch.arange(40, dtype=torch.float32)  # the index rides in a pixel
    out = interpolation_scores(model, images, angles, seed=1, graph_samples=400, k=8, n_pairs=4, n_points=12)
    g, line = out["graph"], out["line"]
    # along the circle each step turns by about the even share; within two template steps
    assert g["max_jump"] < g["even_turn"] * 1.6 + 2 * (2 * math.pi / 3600)
    # the chord passes near the centre, where the polar angle swings: far larger jumps
    assert line["max_jump"] > 2 * g["max_jump"]
    assert len(out["first_pair"]["graph"]) == 12 and out["settings"]["n_pairs"] == 4
    assert model.training  # left as found


def test_per_pair_numbers_average_to_the_means():
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    images = torch.zeros(40, 1, 16, 16)
    images[:, 0, 0, 0] = torch.arange(40, dtype=torch.float32)
    plain = interpolation_scores(CircleModel(angles), images, angles, seed=1, graph_samples=300, k=8,
                                 n_pairs=3, n_points=10)
    out = interpolation_scores(CircleModel(angles), images, angles, seed=1, graph_samples=300, k=8,
                               n_pairs=3, n_points=10, per_pair=True)
    assert "per_pair" not in plain and plain["graph"] == out["graph"]
    for kind in ("graph", "line"):
        rows = out["per_pair"][kind]
        assert len(rows) == 3
        assert math.isclose(np.mean([r["max_jump"] for r in rows]), out[kind]["max_jump"])
